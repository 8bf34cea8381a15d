"""Files handed over in memory (browser uploads, a camera photo) as raw inputs.

Photos, videos and texts are read from memory; archives and tables, which ``sources.py`` expands
from a path, are written to a private temporary folder under their own names, read from there,
and renamed back, so every input and every error names the file the way the person sent it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePath

from core.errors import InputError
from core.inputs.raw import ARCHIVE_SUFFIXES, TABLE_SUFFIXES, RawInput, ReadConfig, limit_inputs, suffix_of
from core.inputs.sources import read_file_bytes, read_inputs

_UNSAFE = re.compile(r"[^\w .()+-]")


def _safe_name(name: str, taken: set[str]) -> str:
    """A file name that cannot leave the folder, unique within it, keeping the suffix."""
    base = _UNSAFE.sub("_", PurePath(name.replace("\\", "/")).name).strip(" .") or "upload"
    stem, suffix = os.path.splitext(base)
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem} ({n}){suffix}"
    taken.add(candidate.lower())
    return candidate


def read_uploads(files: Iterable[tuple[str, bytes]], config: ReadConfig = ReadConfig()) -> Iterator[RawInput | InputError]:
    """Read (file name, bytes) pairs like ``read_inputs`` reads paths.

    Zip archives and CSV/TSV tables are expanded as usual; names in inputs and errors are the
    uploaded file names (``photos.zip/cats/a.jpg``, ``notes.csv:row 3``), never temporary paths.
    """
    yield from limit_inputs(_read_each_upload(files, config), config)


def _read_each_upload(files: Iterable[tuple[str, bytes]], config: ReadConfig) -> Iterator[RawInput | InputError]:
    folder: str | None = None  # made for the first archive or table only: a photo is read from memory
    taken: set[str] = set()
    try:
        for original, data in files:
            safe = _safe_name(original, taken)
            shown = PurePath(original.replace("\\", "/")).name or safe
            if suffix_of(safe) not in ARCHIVE_SUFFIXES | TABLE_SUFFIXES:
                yield read_file_bytes(shown, data, None, config)
                continue
            folder = folder or tempfile.mkdtemp(prefix="conceptlab-upload-")
            path = os.path.join(folder, safe)
            with open(path, "wb") as f:
                f.write(data)
            for item in read_inputs([path], config):
                yield _rename(item, path, shown)
            os.unlink(path)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _rename(item: RawInput | InputError, temp_name: str, shown: str) -> RawInput | InputError:
    def fix(name: str) -> str:
        return shown + name[len(temp_name) :] if name.startswith(temp_name) else name

    if isinstance(item, InputError):
        return InputError(fix(item.name), item.reason)
    return dataclasses.replace(item, name=fix(item.name), stored_name=None)  # an upload's name holds no local path


def read_camera_photo(data: bytes, name: str = "camera photo") -> RawInput | InputError:
    """A photo from the browser's camera as an image input."""
    if not data:
        return InputError(name, "empty file")
    return RawInput(name=name, kind="image", data=data, sha256=hashlib.sha256(data).hexdigest(), suffix=".jpg")


def count_upload_items(files: Iterable[tuple[str, bytes]]) -> int:
    """A quick estimate of how many inputs the uploads hold (archive entries, table rows), for progress bars."""
    total = 0
    for name, data in files:
        suffix = os.path.splitext(name)[1].lower()
        if suffix in ARCHIVE_SUFFIXES:
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    total += sum(1 for info in archive.infolist() if not info.is_dir())
            except (zipfile.BadZipFile, OSError, ValueError):
                total += 1
        elif suffix in TABLE_SUFFIXES:
            total += max(data.count(b"\n") - (0 if data.endswith(b"\n") else -1) - 1, 1)
        else:
            total += 1
    return total


def format_duration(seconds: float) -> str:
    """A short, rounded duration for people: ``8 s``, ``2 min``, ``1 h 5 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def describe_progress(done: int, total: int, elapsed_s: float, noun: str = "inputs") -> tuple[float, str]:
    """The fraction for a progress bar and its line: ``12 of 40 inputs · about 30 s left``.

    ``total`` is an estimate (``count_upload_items``): when more items turn up, it grows to ``done``.
    The time left extrapolates the rate so far and is left out until there is a rate to go on.
    """
    total = max(total, done, 1)
    fraction = min(done / total, 1.0)
    text = f"{done} of {total} {noun}"
    if 0 < done < total and elapsed_s > 0:
        text += f" · about {format_duration(elapsed_s / done * (total - done))} left"
    return fraction, text
