"""Turning what people hand over into raw inputs: files and folders (``sources``), zip archives (``archives``),
CSV/TSV tables (``tables``), typed texts and uploads (``sources``, ``uploads``), all as the ``RawInput`` of ``raw``;
then decoded images (``media``) and sampled video frames (``video_plan`` probes and plans, ``video`` decodes).
"""

from core.inputs.archives import describe_zip_bomb
from core.inputs.media import decode_image, make_thumbnail
from core.inputs.raw import ARCHIVE_SUFFIXES, IMAGE_SUFFIXES, TABLE_SUFFIXES, TEXT_SUFFIXES, VIDEO_SUFFIXES, RawInput, ReadConfig
from core.inputs.sources import read_inputs, read_texts
from core.inputs.uploads import count_upload_items, describe_progress, format_duration, read_camera_photo, read_uploads
from core.inputs.video import VideoFrames, VideoStream, open_video, sample_frames
from core.inputs.video_plan import VideoConfig

__all__ = [
    "ARCHIVE_SUFFIXES",
    "IMAGE_SUFFIXES",
    "RawInput",
    "ReadConfig",
    "TABLE_SUFFIXES",
    "TEXT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoConfig",
    "VideoFrames",
    "VideoStream",
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
