"""The one rule for when two names a person types are the same name: concepts (and, in time, projects).

A name is kept as typed, with its blanks collapsed and in Unicode's composed form (NFC), so ``café``
typed with a combining accent and ``café`` typed with an accented letter are one name. Two names are
the same when their case-folded forms are equal: ``Éclair`` and ``éclair``, ``STRASSE`` and
``straße``. SQLite's own ``NOCASE`` folds only ASCII letters, so identity is decided here, in Python.
"""

from __future__ import annotations

import unicodedata


def normalize_name(name: str) -> str:
    """The name as stored: blanks collapsed to single spaces, composed (NFC)."""
    return unicodedata.normalize("NFC", " ".join(str(name).split()))


def make_name_key(name: str) -> str:
    """What two names must share to be the same name: the case-folded, composed form."""
    return unicodedata.normalize("NFC", normalize_name(name).casefold())


# Control, format (zero-width, bidi overrides), surrogate and private-use characters: invisible, or
# rewriting what the rest of a line looks like. The zero-width joiner stays: emoji sequences need it.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
_ALLOWED_FORMAT = frozenset({"\u200d"})


def describe_forbidden_character(name: str) -> str | None:
    """Why a name cannot be used because of a character in it (``"it holds U+202E (RIGHT-TO-LEFT OVERRIDE)"``), or None."""
    for char in name:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in _ALLOWED_FORMAT:
            named = f" ({unicodedata.name(char)})" if unicodedata.name(char, "") else ""
            kind = "a control character" if unicodedata.category(char) == "Cc" else "an invisible character"
            return f"it holds U+{ord(char):04X}{named}, {kind}"
    return None
