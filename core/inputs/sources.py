"""Turn what people hand over (files, folders, typed texts) into raw inputs; archives and tables found on the
way are handed to ``core.inputs.archives`` and ``core.inputs.tables``.

Nothing here decodes an image or a video (``core.inputs.media`` does that later); this module only finds the
bytes, names them the way a person would recognise, and attaches a concept when the layout says one.
Every bad item becomes exactly one ``InputError`` yielded in its place, and the walk goes on.
Everything is lazy: one file, archive entry or table row at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import Iterable, Iterator

from core.errors import InputError
from core.inputs.archives import read_zip
from core.inputs.raw import (
    ARCHIVE_SUFFIXES,
    KIND_BY_SUFFIX,
    TABLE_SUFFIXES,
    TEXT_SUFFIXES,
    RawInput,
    ReadConfig,
    clean_concept,
    describe_text_too_large,
    describe_unsupported,
    format_bytes,
    is_hidden,
    limit_inputs,
    make_input,
    make_text_input,
    max_text_bytes,
    suffix_of,
)
from core.inputs.tables import read_table

logger = logging.getLogger(__name__)


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
    yield from limit_inputs((item for path in paths for item in _read_given(str(os.fspath(path)), config)), config)


def _read_given(given: str, config: ReadConfig) -> Iterator[RawInput | InputError]:
    """What ``_read_path`` reads, each input with the name to store: relative to where ``given`` lies.

    ``/home/me/photos`` gives ``photos/cats/a.jpg``, ``../notes.csv`` gives ``notes.csv:row 2``: what was
    ingested, as its owner would recognise it, without the folders above it (errors keep the path as
    given: they are read by the person who gave it).
    """
    label = os.path.basename(os.path.normpath(os.path.abspath(given))) or given
    for item in _read_path(given, config):
        if isinstance(item, RawInput) and not config.keep_paths and item.name.startswith(given):
            rest = item.name[len(given) :]
            if given.endswith(os.sep) and rest:
                rest = os.sep + rest  # "photos/" + "a.jpg": the separator belongs to what follows the label
            item = dataclasses.replace(item, stored_name=label + rest)
        yield item


def read_texts(texts: Iterable[str], concept: str | None = None) -> Iterator[RawInput | InputError]:
    """Yield one text input per text a person typed, named ``text 1``, ``text 2``, ...

    Args:
        texts: the texts; each is stripped, and an empty one gives an ``InputError``.
        concept: the concept for all of them, or None.

    Yields:
        ``RawInput`` (kind ``"text"``, suffix ``".txt"``) or ``InputError`` per text, in order.
    """
    concept = clean_concept(concept)
    for number, text in enumerate(texts, start=1):
        yield make_text_input(f"text {number}", text, concept, ReadConfig().max_text_chars)


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
        elif is_file and entry.is_symlink() and not config.follow_links and not _inside(path, root):
            # A link in a shared folder (passwd.txt -> /etc/passwd) must not put that file in front of every visitor.
            yield InputError(path, "link to a file outside the folder (not followed; --follow-links reads it)")
        elif is_file:
            concept = clean_concept(os.path.basename(folder)) if config.labels_from_folders and folder != root else None
            yield from _read_file(path, concept, config)
        elif entry.is_symlink():
            yield InputError(path, "link to a folder or to nothing (not followed)")
        else:
            yield InputError(path, "not a regular file")


def _list_folder(folder: str) -> Iterator[os.DirEntry[str]] | InputError:
    try:
        with os.scandir(folder) as scan:
            return iter(sorted((e for e in scan if not is_hidden(e.name)), key=lambda e: e.name))
    except OSError as e:
        return InputError(folder, f"cannot read folder ({e.strerror or e})")


def _read_file(name: str, concept: str | None, config: ReadConfig) -> Iterator[RawInput | InputError]:
    suffix = suffix_of(name)
    if suffix not in KIND_BY_SUFFIX and suffix not in TABLE_SUFFIXES and suffix not in ARCHIVE_SUFFIXES:
        yield InputError(name, describe_unsupported(suffix))
        return
    try:
        size = os.path.getsize(name)
        refused = _refuse_by_size(name, suffix, size, config)
        if refused is not None:
            yield refused
        elif suffix in ARCHIVE_SUFFIXES:
            yield from read_zip(name, config)
        elif suffix in TABLE_SUFFIXES:
            with open(name, "rb") as stream:
                yield from read_table(name, stream, suffix, concept, config)
        else:
            with open(name, "rb") as stream:
                data = stream.read()
            yield make_input(name, data, suffix, concept, config)
    except FileNotFoundError:
        # Listed a moment ago: moved or deleted while the batch was being read.
        yield InputError(name, "gone before it could be read (moved or deleted during the ingest)")
    except OSError as e:
        yield InputError(name, f"cannot read ({e.strerror or e})")


def read_file_bytes(name: str, data: bytes, concept: str | None, config: ReadConfig) -> RawInput | InputError:
    """An image, video or text file already in memory (an upload), checked as ``read_inputs`` checks one on disk.

    Archives and tables are read from a file (``read_inputs``): they are expanded entry by entry.
    """
    suffix = suffix_of(name)
    if suffix not in KIND_BY_SUFFIX:
        return InputError(name, describe_unsupported(suffix))
    return _refuse_by_size(name, suffix, len(data), config) or make_input(name, data, suffix, concept, config)


def _refuse_by_size(name: str, suffix: str, size: int, config: ReadConfig) -> InputError | None:
    """Why a file of ``size`` bytes is not read at all (empty, too large), or None; archives and tables check their own parts."""
    if size == 0:
        return InputError(name, "empty file")
    if suffix in ARCHIVE_SUFFIXES or suffix in TABLE_SUFFIXES:
        return None
    if size > config.max_file_bytes:
        return InputError(name, f"file too large ({format_bytes(size)}, limit {format_bytes(config.max_file_bytes)})")
    if suffix in TEXT_SUFFIXES and size > max_text_bytes(config):
        return InputError(name, describe_text_too_large(size, config))
    return None


def _inside(path: str, root: str) -> bool:
    """Whether ``path``, links resolved, lies within ``root`` (also resolved)."""
    target, base = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([target, base]) == base
