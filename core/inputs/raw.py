"""What every reader here produces, and the small rules they share: a raw input (bytes, kind, name,
concept), the read limits, which suffix is which kind, and how a text's bytes become a checked text.
"""

from __future__ import annotations

import codecs
import hashlib
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from core.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".avi", ".mkv"})
TEXT_SUFFIXES = frozenset({".txt"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv"})
ARCHIVE_SUFFIXES = frozenset({".zip"})

Kind = Literal["image", "video", "text"]
KIND_BY_SUFFIX: dict[str, Kind] = {
    **{suffix: "image" for suffix in IMAGE_SUFFIXES},
    **{suffix: "video" for suffix in VIDEO_SUFFIXES},
    **{suffix: "text" for suffix in TEXT_SUFFIXES},
}
SKIPPED_FOLDERS = frozenset({"__MACOSX"})
# Errors zipfile raises on damaged or hostile archives, besides OSError.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)
# Without a byte order mark a text is UTF-8; with one it may be UTF-16 or UTF-32 (Windows "Unicode" files).
# UTF-32's little-endian mark starts with UTF-16's, so it is checked first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


@dataclass(frozen=True)
class ReadConfig:
    """How ``read_inputs`` reads tables, names concepts, and which limits protect it."""

    text_column: str | None = None
    label_column: str | None = None
    labels_from_folders: bool = False
    follow_links: bool = False  # read files that links inside a folder point to outside it
    keep_paths: bool = False  # store each input under its path as given, not relative to the folder or file given
    max_text_chars: int = 20_000
    max_file_bytes: int = 2 * 1024**3
    max_zip_entries: int = 20_000
    max_zip_total_bytes: int = 8 * 1024**3
    max_zip_ratio: float = 250.0
    max_table_rows: int = 100_000  # rows per CSV/TSV table, header not counted
    max_inputs: int = 250_000  # inputs per batch (one read_inputs or read_uploads call)

    def __post_init__(self) -> None:
        limits = (
            self.max_text_chars,
            self.max_file_bytes,
            self.max_zip_entries,
            self.max_zip_total_bytes,
            self.max_table_rows,
            self.max_inputs,
        )
        if min(limits) < 1 or self.max_zip_ratio <= 0:
            raise ValueError(f"ReadConfig limits must be positive: {self}")


@dataclass(frozen=True)
class RawInput:
    """One usable input, not yet decoded: the bytes, what they are, and where they came from."""

    name: str
    kind: Kind
    data: bytes = field(repr=False)
    sha256: str
    suffix: str
    concept: str | None = None
    text: str | None = None
    # The name the project keeps, when it differs from ``name``: relative to what was ingested
    # (``photos/cats/a.jpg`` for ``/home/me/photos``), so a gallery never shows a visitor local paths.
    stored_name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "video", "text"):
            raise ValueError(f"unknown kind {self.kind!r}")
        if (self.kind == "text") != (self.text is not None):
            raise ValueError("text is set exactly when kind is 'text'")


def limit_inputs(items: Iterable[RawInput | InputError], config: ReadConfig) -> Iterator[RawInput | InputError]:
    """``items`` up to ``config.max_inputs`` inputs; the first one past the limit becomes the one error that ends the batch.

    Errors do not count: a batch of bad files is still read to the end, each with its line.
    """
    count = 0
    for item in items:
        if isinstance(item, RawInput):
            if count == config.max_inputs:
                yield InputError(
                    item.name,
                    f"more than {config.max_inputs:,} inputs in one batch: this one and the rest were not read (add them in another batch)",
                )
                return
            count += 1
        yield item


def make_input(name: str, data: bytes, suffix: str, concept: str | None, config: ReadConfig) -> RawInput | InputError:
    """The raw input for a whole file's ``data`` (a text is decoded and checked), or why it cannot be one."""
    if not data:
        return InputError(name, "empty file")
    kind = KIND_BY_SUFFIX[suffix]
    if kind != "text":
        return RawInput(name, kind, data, hashlib.sha256(data).hexdigest(), suffix, concept)
    encoding, label = detect_encoding(data[:4])
    try:
        text = data.decode(encoding)
    except UnicodeError:
        return InputError(name, f"not {label} text")
    checked = make_text_input(name, text, concept, config.max_text_chars)
    if isinstance(checked, InputError):
        return checked
    # A text file keeps its original bytes (and their hash); only the text is stripped.
    return RawInput(name, "text", data, hashlib.sha256(data).hexdigest(), ".txt", concept, checked.text)


def make_text_input(name: str, text: str, concept: str | None, max_chars: int) -> RawInput | InputError:
    """A text input of ``text``, stripped, or why it is not a usable text (empty, binary, too long)."""
    if not isinstance(text, str):
        return InputError(name, "not text")
    text = text.strip()
    if not text:
        return InputError(name, "empty text")
    if "\0" in text:
        return InputError(name, "binary data, not text (it holds NUL characters)")
    if len(text) > max_chars:
        return InputError(name, f"text too long ({len(text):,} characters, limit {max_chars:,})")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return InputError(name, "not valid Unicode text")
    return RawInput(name, "text", data, hashlib.sha256(data).hexdigest(), ".txt", concept, text)


def detect_encoding(head: bytes) -> tuple[str, str]:
    """(codec, name people know) for a text starting with ``head``: UTF-16/32 by byte order mark, else UTF-8."""
    for bom, codec, label in _BOMS:
        if head.startswith(bom):
            return codec, label
    return "utf-8-sig", "UTF-8"


def max_text_bytes(config: ReadConfig) -> int:
    """The most bytes a text file within the character limit can take."""
    # UTF-8 and UTF-16 take at most 4 bytes per character; a little room for a BOM and surrounding blanks.
    return 4 * config.max_text_chars + 4096


def describe_text_too_large(size: int, config: ReadConfig) -> str:
    """The reason given for a text file of ``size`` bytes over the limit."""
    return f"text too long ({format_bytes(size)}, limit {config.max_text_chars:,} characters)"


def suffix_of(name: str) -> str:
    """The lower-case extension of a file name (``".jpg"``), or ``""``; a dot file has none."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    return f".{extension.lower()}" if dot and stem else ""


def describe_unsupported(suffix: str) -> str:
    """The reason given for a file type no reader takes."""
    return f"unsupported file type {suffix}" if suffix else "unsupported file type (no extension)"


def is_hidden(name: str) -> bool:
    """Whether a file or folder is skipped when walking (dot files, macOS resource forks)."""
    return name.startswith(".") or name in SKIPPED_FOLDERS


def clean_concept(concept: str | None) -> str | None:
    """A concept name as found in a folder or a cell, stripped; None when blank."""
    concept = concept.strip() if concept else ""
    return concept or None


def format_bytes(size: int) -> str:
    """A size as people read it: ``"3.5 MB"``."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"
