"""FAISS indexes over stored embeddings: a cache, rebuilt whenever it is missing or stale.

The durable copy of every embedding is in the project database; an index file is
only a faster way to search it. Each cache file records the store's generation
counter, so an index built before the latest ingest is never used.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .store import Store, write_file_atomically

log = logging.getLogger(__name__)

# Exact search is fast enough (and exact) up to this many vectors; above it an HNSW graph.
EXACT_SEARCH_LIMIT = 200_000
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class SearchHit:
    """One search result: a stored input and its cosine similarity to the query."""

    input_id: int
    score: float


class VectorIndex:
    """Inner-product search over L2-normalised vectors, returning input ids."""

    def __init__(self, index: faiss.Index, dim: int) -> None:
        self._index = index
        self.dim = dim

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        """Index ``vectors`` (n, d) float32 under the int64 ``ids`` (n,)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        if len(vectors) > EXACT_SEARCH_LIMIT:
            inner = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(inner)
        if len(vectors):
            index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        return cls(index, dim)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """Which search structure serves this index: ``exact``, ``HNSW`` or ``IVF``."""
        inner = type(faiss.downcast_index(self._index.index)).__name__
        return {"IndexFlatIP": "exact", "IndexHNSWFlat": "HNSW", "IndexIVFFlat": "IVF"}.get(inner, inner)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores (m, k), ids (m, k)); rows are padded with id -1 when fewer than k exist."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, int(k))
        if len(self) == 0:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        scores, ids = self._index.search(queries, min(k, len(self)))
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores, ids

    def search_one(self, query: np.ndarray, k: int, exclude: set[int] | None = None) -> list[SearchHit]:
        """The k best hits for one query, skipping ``exclude`` ids."""
        exclude = exclude or set()
        scores, ids = self.search(query, k + len(exclude))
        hits = [SearchHit(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0 and int(i) not in exclude]
        return hits[:k]

    def save(self, path: Path) -> None:
        write_file_atomically(path, faiss.serialize_index(self._index).tobytes())

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        index = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        return cls(index, index.d)


_cache: dict[tuple[str, str], tuple[int, VectorIndex]] = {}
_cache_lock = threading.Lock()


def _cache_paths(store: Store, space: str) -> tuple[Path, Path]:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", space)
    folder = store.root / "index"
    return folder / f"{safe}.faiss", folder / f"{safe}.json"


def load_index(store: Store, space: str) -> VectorIndex:
    """Return an up-to-date index of every stored embedding in ``space``.

    Uses the in-process copy or the cache file when their generation matches the
    store's; otherwise rebuilds from the database and rewrites the cache file.
    """
    key = (str(store.root), space)
    generation = store.generation()
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[0] == generation:
            return cached[1]
        index_path, stamp_path = _cache_paths(store, space)
        index = _load_cache_file(index_path, stamp_path, generation)
        if index is None:
            ids, vectors = store.load_embeddings(space)
            index = VectorIndex.build(ids, vectors)
            try:
                index.save(index_path)
                write_file_atomically(stamp_path, json.dumps({"generation": generation, "count": len(index)}).encode())
            except OSError as e:  # a read-only or full disk costs speed, never correctness
                log.warning("could not write index cache %s: %s", index_path, e)
            log.info("rebuilt %s index of %d vectors", space, len(index))
        _cache[key] = (generation, index)
        return index


def _load_cache_file(index_path: Path, stamp_path: Path, generation: int) -> VectorIndex | None:
    try:
        stamp = json.loads(stamp_path.read_text())
        if stamp.get("generation") != generation:
            return None
        index = VectorIndex.load(index_path)
        return index if len(index) == stamp.get("count") else None
    except (OSError, ValueError, RuntimeError):
        return None


def drop_cached_indexes(root: Path) -> None:
    """Forget the in-process indexes of a project (after it is deleted)."""
    with _cache_lock:
        for key in [k for k in _cache if k[0] == str(root)]:
            del _cache[key]
