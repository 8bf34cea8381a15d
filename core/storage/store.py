"""Durable storage of one project: SQLite for rows, content-addressed files for originals.

Layout of a project folder::

    project.db        inputs, embeddings, video frames, concepts, annotations, model versions
    blobs/ab/<sha256><suffix>   original bytes, written once, never modified
    versions/v<N>.npz           trained heads (numpy arrays only, loaded without pickle)
    index/                      FAISS caches, rebuilt from project.db whenever stale

Embeddings live in SQLite next to the rows they belong to, so one transaction
adds an input and its embedding together: a process killed mid-ingest leaves
every finished input complete and no half-written one.
"""

from __future__ import annotations

from core.storage.concepts import ConceptRows
from core.storage.database import Database
from core.storage.inputs import InputRows
from core.storage.versions import VersionRows


class Store(InputRows, ConceptRows, VersionRows, Database):
    """SQLite-backed storage of one project folder; safe to share between threads and processes.

    One class for callers, written as one module per table group: ``database`` (schema,
    connections, transactions), ``inputs`` (inputs, embeddings, blobs), ``concepts`` (concepts and
    labels) and ``versions`` (model versions).
    """
