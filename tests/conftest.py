"""Shared test set-up: never touch the network, never touch the real data home."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Set before any test module imports huggingface_hub or transformers, which read these at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One cache of rebuildable files (the ONNX exports of the embedders) for the whole run, subprocesses
# included: each export is made once per run, in a folder of its own, never in the person's ~/.cache.
if "CONCEPTLAB_CACHE" not in os.environ:
    os.environ["CONCEPTLAB_CACHE"] = tempfile.mkdtemp(prefix="conceptlab-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CONCEPTLAB_CACHE"], ignore_errors=True)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Give every test its own empty data home."""
    home = tmp_path / "conceptlab-home"
    monkeypatch.setenv("CONCEPTLAB_HOME", str(home))
    return home


@pytest.fixture
def colours(tmp_path):
    """A project of 6 photos each of three solid colours (tiny embedder), trained once: (project, TrainResult)."""
    from core.ingestion import ingest
    from core.inputs import ReadConfig, read_inputs
    from core.learning import train
    from core.storage.projects import create_project
    from tests.photos import COLOURS, solid_image

    for concept, colour in COLOURS.items():
        folder = tmp_path / "in" / concept
        folder.mkdir(parents=True)
        for i in range(6):
            solid_image(colour, seed=i + 100 * len(concept)).save(folder / f"{i}.png")
    project = create_project("colours", "tiny")
    ingest(project, read_inputs([tmp_path / "in"], ReadConfig(labels_from_folders=True)))
    return project, train(project)
