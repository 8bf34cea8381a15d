"""Turning what people hand over into raw inputs: files, folders, zip archives, CSV/TSV tables,
texts and uploads (``sources``, ``uploads``), decoded images and sampled video frames (``media``, ``video``).
"""

from core.inputs.media import (
    ARCHIVE_SUFFIXES,
    IMAGE_SUFFIXES,
    TABLE_SUFFIXES,
    TEXT_SUFFIXES,
    VIDEO_SUFFIXES,
    RawInput,
    ReadConfig,
    VideoConfig,
    decode_image,
    make_thumbnail,
    open_video,
    read_inputs,
    read_texts,
    sample_frames,
)
from core.inputs.sources import describe_zip_bomb
from core.inputs.uploads import count_upload_items, describe_progress, format_duration, read_camera_photo, read_uploads

__all__ = [
    "ARCHIVE_SUFFIXES",
    "IMAGE_SUFFIXES",
    "RawInput",
    "ReadConfig",
    "TABLE_SUFFIXES",
    "TEXT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoConfig",
    "count_upload_items",
    "decode_image",
    "describe_progress",
    "describe_zip_bomb",
    "format_duration",
    "make_thumbnail",
    "open_video",
    "read_camera_photo",
    "read_inputs",
    "read_texts",
    "read_uploads",
    "sample_frames",
]
