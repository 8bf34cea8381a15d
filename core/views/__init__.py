"""What the pages show, shaped but not drawn (no Streamlit here): gallery pages, label suggestions,
report tables and the sample project.
"""

from core.views.gallery import (
    GalleryFilter,
    count_labels,
    label_inputs,
    list_gallery,
    load_thumbnail,
    load_video_moments,
    preview_text,
)
from core.views.reports import build_confusion_chart, build_quality_rows, read_evaluations
from core.views.samples import add_sample_data, build_sample_inputs
from core.views.suggestions import Suggestions, suggest_labels

__all__ = [
    "GalleryFilter",
    "Suggestions",
    "add_sample_data",
    "build_confusion_chart",
    "build_quality_rows",
    "build_sample_inputs",
    "count_labels",
    "label_inputs",
    "list_gallery",
    "load_thumbnail",
    "load_video_moments",
    "preview_text",
    "read_evaluations",
    "suggest_labels",
]
