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
