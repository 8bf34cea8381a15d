"""Zip archives, entry by entry, with the checks that keep a hostile archive harmless: entry counts and
unpacked sizes, compression ratios, overlapping entries, paths that leave the archive, links, encryption.
"""

from __future__ import annotations

import logging
import re
import stat
import zipfile
from collections.abc import Iterator

from core.errors import InputError
from core.inputs.raw import (
    ARCHIVE_SUFFIXES,
    KIND_BY_SUFFIX,
    TABLE_SUFFIXES,
    TEXT_SUFFIXES,
    ZIP_ERRORS,
    RawInput,
    ReadConfig,
    clean_concept,
    describe_text_too_large,
    describe_unsupported,
    format_bytes,
    is_hidden,
    make_input,
    max_text_bytes,
    suffix_of,
)
from core.inputs.tables import read_table

logger = logging.getLogger(__name__)

# Small entries compress extremely well without being dangerous (a blank text, a flat PNG),
# so the ratio cap only applies to entries big enough to hurt.
_RATIO_CHECK_MIN_BYTES = 1024**2
# A local file header is at least this long: an entry's data cannot start before it ends.
_LOCAL_HEADER_BYTES = 30


def read_zip(name: str, config: ReadConfig) -> Iterator[RawInput | InputError]:
    """Yield one raw input (or one error) per file in the archive ``name``, or one error for the whole archive."""
    declared = _count_zip_entries(name)
    if declared is not None and declared > config.max_zip_entries:
        yield InputError(name, f"too many entries ({declared:,}, limit {config.max_zip_entries:,})")
        return
    try:
        archive = zipfile.ZipFile(name)
    except (OSError, *ZIP_ERRORS) as e:
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
            limit = format_bytes(config.max_zip_total_bytes)
            yield InputError(name, f"too large when unpacked ({format_bytes(total)}, limit {limit})")
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
    suffix = suffix_of(path)
    reason = None
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        reason = "absolute path in archive"
    elif ".." in parts:
        reason = "path leads outside the archive ('..')"
    elif any(is_hidden(part) for part in parts):
        return  # hidden files and __MACOSX resource forks are skipped silently, as in folders
    elif stat.S_ISLNK(info.external_attr >> 16):
        reason = "symbolic link in archive"
    elif suffix in ARCHIVE_SUFFIXES:
        reason = "archives inside archives are not supported"
    elif suffix not in KIND_BY_SUFFIX and suffix not in TABLE_SUFFIXES:
        reason = describe_unsupported(suffix)
    elif info.flag_bits & 0x1:
        reason = "encrypted entry"
    elif info.file_size == 0:
        reason = "empty file"
    elif info.file_size > config.max_file_bytes and suffix not in TABLE_SUFFIXES:
        reason = f"file too large ({format_bytes(info.file_size)}, limit {format_bytes(config.max_file_bytes)})"
    elif info.file_size >= _RATIO_CHECK_MIN_BYTES and info.file_size > config.max_zip_ratio * info.compress_size:
        ratio = info.file_size / max(info.compress_size, 1)
        reason = f"compressed too much ({ratio:,.0f} to 1, limit {config.max_zip_ratio:g}), possibly a zip bomb"
    elif suffix in TEXT_SUFFIXES and info.file_size > max_text_bytes(config):
        reason = describe_text_too_large(info.file_size, config)
    if reason is not None:
        yield InputError(name, reason)
        return
    concept = clean_concept(parts[-2]) if config.labels_from_folders and len(parts) > 1 else None
    try:
        with archive.open(info) as stream:
            if suffix in TABLE_SUFFIXES:
                yield from read_table(name, stream, suffix, concept, config)
                return
            data = stream.read()
    except (OSError, *ZIP_ERRORS) as e:
        logger.debug("cannot read %s: %s", name, e)
        yield InputError(name, "damaged archive entry")
        return
    yield make_input(name, data, suffix, concept, config)


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
