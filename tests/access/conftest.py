"""What the access tests share: a small trained project of texts."""

from __future__ import annotations

import pytest

from core.ingestion import ingest
from core.inputs import read_texts
from core.learning import train
from core.storage.projects import create_project


@pytest.fixture
def trained_texts():
    """Project "shared" (tiny): two ant and two bee texts, trained once."""
    project = create_project("shared", "tiny")
    ingest(project, read_texts(["an ant", "another ant"], concept="ant"))
    ingest(project, read_texts(["a bee", "another bee"], concept="bee"))
    train(project)
    return project
