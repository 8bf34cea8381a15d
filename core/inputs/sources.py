"""Turn what people hand over (files, folders, zip archives, CSV/TSV tables, typed texts) into raw inputs.

Nothing here decodes an image or a video (``core.inputs.media`` does that later); this module only finds the
bytes, names them the way a person would recognise, and attaches a concept when the layout says one.
Every bad item becomes exactly one ``InputError`` yielded in its place, and the walk goes on.
Everything is lazy: one file, archive entry or table row at a time.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Literal

from core.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".avi", ".mkv"})
TEXT_SUFFIXES = frozenset({".txt"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv"})
ARCHIVE_SUFFIXES = frozenset({".zip"})

Kind = Literal["image", "video", "text"]
_KIND_BY_SUFFIX: dict[str, Kind] = {
    **{suffix: "image" for suffix in IMAGE_SUFFIXES},
    **{suffix: "video" for suffix in VIDEO_SUFFIXES},
    **{suffix: "text" for suffix in TEXT_SUFFIXES},
}
_SKIPPED_FOLDERS = frozenset({"__MACOSX"})
# Small entries compress extremely well without being dangerous (a blank text, a flat PNG),
# so the ratio cap only applies to entries big enough to hurt.
_RATIO_CHECK_MIN_BYTES = 1024**2
# Errors zipfile raises on damaged or hostile archives, besides OSError.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)
# The csv module reads a whole physical line before looking at it (and caps one field at 131,072
# characters): a table with no line breaks would otherwise be read into memory in one piece.
MAX_LINE_CHARS = 1024**2
# Without a byte order mark a text is UTF-8; with one it may be UTF-16 or UTF-32 (Windows "Unicode" files).
# UTF-32's little-endian mark starts with UTF-16's, so it is checked first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
# A local file header is at least this long: an entry's data cannot start before it ends.
_LOCAL_HEADER_BYTES = 30


@dataclass(frozen=True)
class ReadConfig:
    """How ``read_inputs`` reads tables, names concepts, and which limits protect it."""

    text_column: str | None = None
    label_column: str | None = None
    labels_from_folders: bool = False
    max_text_chars: int = 20_000
    max_file_bytes: int = 2 * 1024**3
    max_zip_entries: int = 20_000
    max_zip_total_bytes: int = 8 * 1024**3
    max_zip_ratio: float = 250.0

    def __post_init__(self) -> None:
        limits = (self.max_text_chars, self.max_file_bytes, self.max_zip_entries, self.max_zip_total_bytes)
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

    def __post_init__(self) -> None:
        if self.kind not in ("image", "video", "text"):
            raise ValueError(f"unknown kind {self.kind!r}")
        if (self.kind == "text") != (self.text is not None):
            raise ValueError("text is set exactly when kind is 'text'")


def read_inputs(paths: Iterable[str | os.PathLike[str]], config: ReadConfig = ReadConfig()) -> Iterator[RawInput | InputError]:
    """Yield one raw input (or one error) per file, archive entry or table row found under ``paths``.

    Folders are walked recursively in sorted order, skipping hidden files and folders and ``__MACOSX``.
    Zip archives are expanded entry by entry; CSV/TSV tables give one text per row; a ``.txt`` file is
    one text. Images and videos are not decoded here. The generator is lazy: it reads nothing before
    it is asked for the next item.

    Args:
        paths: files and folders, as the person gave them (their spelling is kept in names).
        config: table columns, folder concepts and safety limits.

    Yields:
        ``RawInput`` for each usable item, ``InputError`` (yielded, not raised) for each bad one.
    """
    for path in paths:
        yield from _read_path(str(os.fspath(path)), config)


def read_texts(texts: Iterable[str], concept: str | None = None) -> Iterator[RawInput | InputError]:
    """Yield one text input per text a person typed, named ``text 1``, ``text 2``, ...

    Args:
        texts: the texts; each is stripped, and an empty one gives an ``InputError``.
        concept: the concept for all of them, or None.

    Yields:
        ``RawInput`` (kind ``"text"``, suffix ``".txt"``) or ``InputError`` per text, in order.
    """
    concept = _clean_concept(concept)
    for number, text in enumerate(texts, start=1):
        yield _text_input(f"text {number}", text, concept, ReadConfig().max_text_chars)


def _read_path(name: str, config: ReadConfig) -> Iterator[RawInput | InputError]:
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        yield InputError(name, "no such file or folder")
        return
    except OSError as e:
        yield InputError(name, f"cannot read ({e.strerror or e})")
        return
    if stat.S_ISDIR(mode):
        yield from _walk_folder(name, config)
    elif stat.S_ISREG(mode):
        yield from _read_file(name, None, config)
    else:
        yield InputError(name, "not a regular file")


def _walk_folder(root: str, config: ReadConfig) -> Iterator[RawInput | InputError]:
    # An explicit stack of sorted listings rather than recursion: any depth, same order, still lazy.
    folders: list[str] = []
    listings: list[Iterator[os.DirEntry[str]]] = []
    listing = _list_folder(root)
    if isinstance(listing, InputError):
        yield listing
        return
    folders.append(root)
    listings.append(listing)
    while listings:
        entry = next(listings[-1], None)
        if entry is None:
            folders.pop()
            listings.pop()
            continue
        folder = folders[-1]
        path = os.path.join(folder, entry.name)
        try:
            is_folder = entry.is_dir(follow_symlinks=False)
            is_file = entry.is_file()  # follows links to files; FIFOs and devices are never opened
        except OSError as e:
            yield InputError(path, f"cannot read ({e.strerror or e})")
            continue
        if is_folder:
            listing = _list_folder(path)
            if isinstance(listing, InputError):
                yield listing
            else:
                folders.append(path)
                listings.append(listing)
        elif is_file:
            concept = _clean_concept(os.path.basename(folder)) if config.labels_from_folders and folder != root else None
            yield from _read_file(path, concept, config)
        elif entry.is_symlink():
            yield InputError(path, "link to a folder or to nothing (not followed)")
        else:
            yield InputError(path, "not a regular file")


def _list_folder(folder: str) -> Iterator[os.DirEntry[str]] | InputError:
    try:
        with os.scandir(folder) as scan:
            return iter(sorted((e for e in scan if not _is_hidden(e.name)), key=lambda e: e.name))
    except OSError as e:
        return InputError(folder, f"cannot read folder ({e.strerror or e})")


def _read_file(name: str, concept: str | None, config: ReadConfig) -> Iterator[RawInput | InputError]:
    suffix = _suffix(name)
    if suffix not in _KIND_BY_SUFFIX and suffix not in TABLE_SUFFIXES and suffix not in ARCHIVE_SUFFIXES:
        yield InputError(name, _unsupported_reason(suffix))
        return
    try:
        size = os.path.getsize(name)
        if size == 0:
            yield InputError(name, "empty file")
        elif suffix in ARCHIVE_SUFFIXES:
            yield from _read_zip(name, config)
        elif suffix in TABLE_SUFFIXES:
            with open(name, "rb") as stream:
                yield from _read_table(name, stream, suffix, concept, config)
        elif size > config.max_file_bytes:
            yield InputError(name, f"file too large ({_format_bytes(size)}, limit {_format_bytes(config.max_file_bytes)})")
        elif suffix in TEXT_SUFFIXES and size > _max_text_bytes(config):
            yield InputError(name, _text_file_too_large(size, config))
        else:
            with open(name, "rb") as stream:
                data = stream.read()
            yield _make_input(name, data, suffix, concept, config)
    except OSError as e:
        yield InputError(name, f"cannot read ({e.strerror or e})")


def _read_zip(name: str, config: ReadConfig) -> Iterator[RawInput | InputError]:
    declared = _count_zip_entries(name)
    if declared is not None and declared > config.max_zip_entries:
        yield InputError(name, f"too many entries ({declared:,}, limit {config.max_zip_entries:,})")
        return
    try:
        archive = zipfile.ZipFile(name)
    except (OSError, *_ZIP_ERRORS) as e:
        logger.debug("cannot open %s as a zip archive: %s", name, e)
        yield InputError(name, "not a readable zip archive")
        return
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > config.max_zip_entries:
            yield InputError(name, f"too many entries ({len(infos):,}, limit {config.max_zip_entries:,})")
            return
        total = sum(info.file_size for info in infos)
        if total > config.max_zip_total_bytes:
            limit = _format_bytes(config.max_zip_total_bytes)
            yield InputError(name, f"too large when unpacked ({_format_bytes(total)}, limit {limit})")
            return
        reason = describe_zip_bomb(infos)
        if reason is not None:
            yield InputError(name, reason)
            return
        found = 0
        for info in sorted(infos, key=lambda info: info.filename):
            for item in _read_zip_entry(archive, info, name, config):
                found += 1
                yield item
        if not found:
            yield InputError(name, "no files in the archive")


def describe_zip_bomb(infos: list[zipfile.ZipInfo]) -> str | None:
    """Why the archive as a whole looks like a zip bomb, or None.

    Per-entry ratios miss the "overlapping entries" bomb: many directory entries share one compressed
    stream, each looking harmless, and together unpack to far more than the archive could hold. In an
    honest archive every entry's data ends before the next entry's header begins.
    """
    spans = sorted((info.header_offset, info.header_offset + _LOCAL_HEADER_BYTES + info.compress_size) for info in infos)
    if any(start < previous_end for (_, previous_end), (start, _) in zip(spans, spans[1:])):
        return "entries overlap each other, possibly a zip bomb"
    return None


def _read_zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, zip_name: str, config: ReadConfig) -> Iterator[RawInput | InputError]:
    path = info.filename.replace("\\", "/")
    name = f"{zip_name}/{path.lstrip('/')}"
    parts = [part for part in path.split("/") if part not in ("", ".")]
    suffix = _suffix(path)
    reason = None
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        reason = "absolute path in archive"
    elif ".." in parts:
        reason = "path leads outside the archive ('..')"
    elif any(_is_hidden(part) for part in parts):
        return  # hidden files and __MACOSX resource forks are skipped silently, as in folders
    elif stat.S_ISLNK(info.external_attr >> 16):
        reason = "symbolic link in archive"
    elif suffix in ARCHIVE_SUFFIXES:
        reason = "archives inside archives are not supported"
    elif suffix not in _KIND_BY_SUFFIX and suffix not in TABLE_SUFFIXES:
        reason = _unsupported_reason(suffix)
    elif info.flag_bits & 0x1:
        reason = "encrypted entry"
    elif info.file_size == 0:
        reason = "empty file"
    elif info.file_size > config.max_file_bytes and suffix not in TABLE_SUFFIXES:
        reason = f"file too large ({_format_bytes(info.file_size)}, limit {_format_bytes(config.max_file_bytes)})"
    elif info.file_size >= _RATIO_CHECK_MIN_BYTES and info.file_size > config.max_zip_ratio * info.compress_size:
        ratio = info.file_size / max(info.compress_size, 1)
        reason = f"compressed too much ({ratio:,.0f} to 1, limit {config.max_zip_ratio:g}), possibly a zip bomb"
    elif suffix in TEXT_SUFFIXES and info.file_size > _max_text_bytes(config):
        reason = _text_file_too_large(info.file_size, config)
    if reason is not None:
        yield InputError(name, reason)
        return
    concept = _clean_concept(parts[-2]) if config.labels_from_folders and len(parts) > 1 else None
    try:
        with archive.open(info) as stream:
            if suffix in TABLE_SUFFIXES:
                yield from _read_table(name, stream, suffix, concept, config)
                return
            data = stream.read()
    except (OSError, *_ZIP_ERRORS) as e:
        logger.debug("cannot read %s: %s", name, e)
        yield InputError(name, "damaged archive entry")
        return
    yield _make_input(name, data, suffix, concept, config)


class _BoundedLines:
    """The lines of a text stream, none longer than ``limit`` characters: a longer one is skipped.

    ``cut`` turns true when a line was skipped, so the caller can report the row it belonged to.
    """

    def __init__(self, stream: io.TextIOBase, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.cut = False

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._stream.readline(self._limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self._limit and not line.endswith(("\n", "\r")):
            self.cut = True
            while (rest := self._stream.readline(self._limit)) and not rest.endswith(("\n", "\r")):
                pass
            return "\n"
        return line


def _read_table(name: str, stream: IO[bytes], suffix: str, concept: str | None, config: ReadConfig) -> Iterator[RawInput | InputError]:
    columns: tuple[int, int] | None = None
    label = "UTF-8"
    try:
        peek = getattr(stream, "peek", None)
        encoding, label = _encoding_of(peek(4)[:4] if peek else b"")
        lines = _BoundedLines(io.TextIOWrapper(stream, encoding=encoding, newline=""), MAX_LINE_CHARS)
        reader = csv.reader(lines, delimiter="\t" if suffix == ".tsv" else ",")
        # Rows are numbered as a spreadsheet shows them: the header is row 1.
        for row_number, row in enumerate(_rows(reader, lines), start=1):
            if columns is None:
                found = _find_columns(row, config)
                if isinstance(found, str):
                    yield InputError(name, found)
                    return
                columns = found
                continue
            row_name = f"{name}:row {row_number}"
            if isinstance(row, csv.Error):
                yield InputError(row_name, f"malformed row ({row})")
            elif any(cell.strip() for cell in row):  # blank lines (often trailing) are not rows anyone meant
                text_index, label_index = columns
                text = row[text_index] if text_index < len(row) else ""
                row_concept = concept
                if label_index >= 0:
                    row_concept = _clean_concept(row[label_index] if label_index < len(row) else "")
                yield _text_input(row_name, text, row_concept, config.max_text_chars)
    except UnicodeError as e:
        # Decoding runs ahead in chunks, so the failing row cannot be named reliably.
        logger.debug("%s is not %s: %s", name, label, e)
        yield InputError(name, f"not {label} text")
        return
    except (OSError, *_ZIP_ERRORS) as e:
        logger.debug("cannot read %s: %s", name, e)
        yield InputError(name, "damaged file (stopped reading here)")
        return
    if columns is None:
        yield InputError(name, "empty file")


def _rows(reader: Iterator[list[str]], lines: _BoundedLines) -> Iterator[list[str] | csv.Error]:
    """Yield each row, or the ``csv.Error`` of a malformed one (the reader resumes on the next line)."""
    while True:
        try:
            row: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            row = e
        if lines.cut:
            lines.cut = False
            row = csv.Error(f"a line longer than {MAX_LINE_CHARS:,} characters")
        yield row


def _find_columns(row: list[str] | csv.Error, config: ReadConfig) -> tuple[int, int] | str:
    """Return (text column index, label column index or -1), or the reason the header row does not fit."""
    if isinstance(row, csv.Error):
        return f"malformed header row ({row})"
    header = [cell.strip() for cell in row]
    if not any(header):
        return "no header row (the first line is empty)"
    columns = _describe_columns(header)
    if config.text_column is not None:
        text_index = _column_index(header, config.text_column)
        wanted = config.text_column
    else:
        text_index = _column_index(header, "text")
        if text_index < 0 and len(header) == 1:
            text_index = 0
        wanted = "text"
    if text_index < 0:
        return f"column '{wanted}' not found (columns: {columns})"
    label_index = -1
    if config.label_column is not None:
        label_index = _column_index(header, config.label_column)
        if label_index < 0:
            return f"column '{config.label_column}' not found (columns: {columns})"
    return text_index, label_index


def _describe_columns(header: list[str], most: int = 12, longest: int = 40) -> str:
    """The header for a message: a hostile one may have a hundred thousand columns, or megabyte-long names."""
    shown = [cell if len(cell) <= longest else cell[: longest - 1] + "…" for cell in header[:most]]
    more = f", … ({len(header) - most:,} more)" if len(header) > most else ""
    return ", ".join(shown) + more


def _column_index(header: list[str], wanted: str) -> int:
    """Exact match first, then a case-insensitive one if it is unambiguous; -1 when absent."""
    wanted = wanted.strip()
    if wanted in header:
        return header.index(wanted)
    folded = [i for i, column in enumerate(header) if column.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else -1


def _make_input(name: str, data: bytes, suffix: str, concept: str | None, config: ReadConfig) -> RawInput | InputError:
    if not data:
        return InputError(name, "empty file")
    kind = _KIND_BY_SUFFIX[suffix]
    if kind != "text":
        return RawInput(name, kind, data, hashlib.sha256(data).hexdigest(), suffix, concept)
    encoding, label = _encoding_of(data[:4])
    try:
        text = data.decode(encoding)
    except UnicodeError:
        return InputError(name, f"not {label} text")
    checked = _text_input(name, text, concept, config.max_text_chars)
    if isinstance(checked, InputError):
        return checked
    # A text file keeps its original bytes (and their hash); only the text is stripped.
    return RawInput(name, "text", data, hashlib.sha256(data).hexdigest(), ".txt", concept, checked.text)


def _text_input(name: str, text: str, concept: str | None, max_chars: int) -> RawInput | InputError:
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


def _encoding_of(head: bytes) -> tuple[str, str]:
    """(codec, name people know) for a text starting with ``head``: UTF-16/32 by byte order mark, else UTF-8."""
    for bom, codec, label in _BOMS:
        if head.startswith(bom):
            return codec, label
    return "utf-8-sig", "UTF-8"


def _max_text_bytes(config: ReadConfig) -> int:
    # UTF-8 and UTF-16 take at most 4 bytes per character; a little room for a BOM and surrounding blanks.
    return 4 * config.max_text_chars + 4096


def _text_file_too_large(size: int, config: ReadConfig) -> str:
    return f"text too long ({_format_bytes(size)}, limit {config.max_text_chars:,} characters)"


def _count_zip_entries(name: str) -> int | None:
    """Read the entry count from the archive's end record, before zipfile loads the whole directory.

    A tiny archive can declare millions of entries; zipfile would build them all in memory first.
    Uses zipfile's private end-record reader; if that ever changes, the check after opening still holds.
    """
    try:
        with open(name, "rb") as stream:
            end = zipfile._EndRecData(stream)  # type: ignore[attr-defined]
        return None if end is None else int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]
    except Exception as e:  # noqa: BLE001 - only a pre-check; zipfile itself decides below
        logger.debug("could not pre-count entries of %s: %s", name, e)
        return None


def _suffix(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    return f".{extension.lower()}" if dot and stem else ""


def _unsupported_reason(suffix: str) -> str:
    return f"unsupported file type {suffix}" if suffix else "unsupported file type (no extension)"


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_FOLDERS


def _clean_concept(concept: str | None) -> str | None:
    concept = concept.strip() if concept else ""
    return concept or None


def _format_bytes(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"
