"""Shared test set-up: never touch the network, never touch the real data home."""

from __future__ import annotations

import os

# Set before any test module imports huggingface_hub or transformers, which read these at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Give every test its own empty data home."""
    home = tmp_path / "conceptlab-home"
    monkeypatch.setenv("CONCEPTLAB_HOME", str(home))
    return home
