"""Exceptions raised by the engine.

Every error a person can cause carries enough context to be shown as one
sentence: the file or name involved and the reason.
"""

from __future__ import annotations

import unicodedata


class ConceptlabError(Exception):
    """Base class of every error conceptlab raises on purpose."""


class InputError(ConceptlabError):
    """One input (a file, an archive entry, a CSV row) could not be used.

    Args:
        name: what the person would recognise: a path, ``archive.zip/a/b.jpg`` or ``notes.csv:row 7``.
        reason: why, in a few plain words (``not a readable image``).
    """

    def __init__(self, name: str, reason: str) -> None:
        # Names and reasons quote what people upload (file names, CSV headers), which may hold line breaks:
        # the message stays one line. ``name`` keeps the real name, for matching.
        super().__init__(f"{one_line(name)}: {one_line(reason)}")
        self.name = name
        self.reason = one_line(reason)


def one_line(text: str) -> str:
    """``text`` with control characters and line or paragraph separators written as escapes (``\\n``)."""
    text = str(text)
    if all(unicodedata.category(c) not in _BREAKING for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _BREAKING else c for c in text)


_BREAKING = frozenset({"Cc", "Zl", "Zp"})


class ProjectError(ConceptlabError):
    """A project is missing, already exists, or cannot be opened."""


class WidgetMessageError(ConceptlabError):
    """A message from the studio's browser widgets that is not what they send (a bug, or a hand-made request)."""


class ConceptError(ConceptlabError):
    """A concept name is invalid, unknown, or already taken."""


class EmbedderError(ConceptlabError):
    """An embedder spec is unknown or its model cannot be loaded."""


class WeightsMissingError(EmbedderError):
    """Pretrained weights are not on this machine (and will not be fetched implicitly).

    ``cause``: why a download failed, in plain words without command-line advice (for the studio).
    """

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class TrainingError(ConceptlabError):
    """There is nothing to train, or training failed."""


class ModelVersionError(ConceptlabError):
    """A model version is missing or does not fit the project."""


class ModelFileError(ModelVersionError):
    """A model file (an exported model version) is damaged, unsafe, or made for another embedder."""


class StorageError(ConceptlabError):
    """The data home cannot be written or read: disk full, read-only, I/O error, or a project busy for too long.

    Nothing stored before the failure is lost: the write that failed is rolled back as a whole.
    """
