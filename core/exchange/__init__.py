"""Model files in and out: export a version to share it, import one as a new version (zip of JSON + ``.npy``, no pickle)."""

from core.exchange.model_file import (
    FILE_FORMAT,
    FILE_FORMAT_VERSION,
    FOREIGN_ID_OFFSET,
    ExchangeLimits,
    ImportResult,
    ModelFile,
    read_model_file,
)
from core.exchange.transfer import export_model, export_model_to, import_model

__all__ = [
    "FILE_FORMAT",
    "FILE_FORMAT_VERSION",
    "FOREIGN_ID_OFFSET",
    "ExchangeLimits",
    "ImportResult",
    "ModelFile",
    "export_model",
    "export_model_to",
    "import_model",
    "read_model_file",
]
