"""Where conceptlab keeps its data."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CONCEPTLAB_HOME"
_DEFAULT_HOME = Path(__file__).resolve().parent.parent / "data"


def get_data_home() -> Path:
    """Return the data home: ``$CONCEPTLAB_HOME`` if set, else ``data/`` beside the app."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser().resolve() if home else _DEFAULT_HOME


def get_models_dir() -> Path:
    """Return the folder holding downloaded model weights (shared by all projects)."""
    return get_data_home() / "models"


CACHE_ENV = "CONCEPTLAB_CACHE"


def get_cache_dir() -> Path:
    """Return the folder of files conceptlab can rebuild (ONNX exports of the embedders' models).

    ``$CONCEPTLAB_CACHE`` if set, else ``$XDG_CACHE_HOME/conceptlab``, else ``~/.cache/conceptlab``:
    outside the data home, so a backup of the data holds only what cannot be made again.
    """
    cache = os.environ.get(CACHE_ENV)
    if cache:
        return Path(cache).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser().resolve() / "conceptlab"
