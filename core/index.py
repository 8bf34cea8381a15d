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
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from .store import Store, write_file_atomically

log = logging.getLogger(__name__)

# Exact search is fast enough (and exact) up to this many vectors; above it an inverted file
# (IVF): k-means cells, searching the few nearest cells. IVF rather than HNSW because it
# builds in seconds on two cores where an HNSW graph of a million vectors takes many minutes.
EXACT_SEARCH_LIMIT = 200_000
IVF_MAX_CELLS = 1024
IVF_TRAINING_POINTS_PER_CELL = 64


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
        inner = _build_ivf(vectors) if len(vectors) > EXACT_SEARCH_LIMIT else faiss.IndexFlatIP(dim)
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


def _build_ivf(vectors: np.ndarray) -> faiss.Index:
    """An IVF index: k-means cells trained on a sample of the vectors, probing 1/32 of the cells (at least 32) per search."""
    n, dim = vectors.shape
    cells = int(min(IVF_MAX_CELLS, max(16, 4 * np.sqrt(n))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
    sample = min(n, cells * IVF_TRAINING_POINTS_PER_CELL)
    picks = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
    index.train(vectors[picks])
    index.nprobe = max(32, cells // 32)
    return index


@dataclass(frozen=True)
class _Stamp:
    """What an index was built from: the store's generation, and the rows it holds.

    ``count`` rows with ids up to ``max_id``; ``max_created`` tells a deleted-and-reused
    last id apart from the original (SQLite reuses the largest rowid after its deletion).
    """

    generation: int
    count: int
    max_id: int
    max_created: float


_cache: dict[tuple[str, str], tuple[_Stamp, VectorIndex]] = {}
_cache_lock = threading.Lock()


def _cache_paths(store: Store, space: str) -> tuple[Path, Path]:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", space)
    folder = store.root / "index"
    return folder / f"{safe}.faiss", folder / f"{safe}.json"


def _created_at(store: Store, input_id: int) -> float:
    rows = store.query("SELECT created_at FROM inputs WHERE id = ?", (input_id,))
    return float(rows[0][0]) if rows else -1.0


def _extend(store: Store, space: str, stamp: _Stamp, index: VectorIndex, generation: int) -> tuple[_Stamp, VectorIndex] | None:
    """Add the rows stored since ``stamp`` to ``index``, if nothing else changed; None means rebuild."""
    (count,) = store.query("SELECT COUNT(*) FROM embeddings WHERE space = ? AND input_id <= ?", (space, stamp.max_id))[0]
    if count != stamp.count or (stamp.max_id >= 0 and _created_at(store, stamp.max_id) != stamp.max_created):
        return None  # something was deleted: only a rebuild is right
    ids, vectors = store.load_embeddings(space, after_id=stamp.max_id)
    if len(ids) and (stamp.count == 0 or vectors.shape[1] != index.dim):
        return None  # an empty index has no real dimension yet (it was built with 1)
    total = stamp.count + len(ids)
    if len(ids) and (index.kind == "exact") != (total <= EXACT_SEARCH_LIMIT):
        return None  # grown past the exact-search limit: rebuild as IVF
    if len(ids):
        # A copy: other threads may be searching the old index right now (FAISS reads are
        # thread-safe, a read during a write is not).
        grown = VectorIndex(faiss.clone_index(index._index), index.dim)
        grown._index.add_with_ids(np.ascontiguousarray(vectors), ids)
        max_id = int(ids[-1])
        return _Stamp(generation, total, max_id, _created_at(store, max_id)), grown
    return _Stamp(generation, stamp.count, stamp.max_id, stamp.max_created), index


def load_index(store: Store, space: str) -> VectorIndex:
    """Return an up-to-date index of every stored embedding in ``space``.

    Uses the in-process copy or the cache file when their generation matches the store's;
    when inputs were only added since, adds just those; otherwise rebuilds from the database.
    The cache file is rewritten after any change.
    """
    key = (str(store.root), space)
    generation = store.generation()
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[0].generation == generation:
            return cached[1]
        index_path, stamp_path = _cache_paths(store, space)
        cached = cached or _load_cache_file(index_path, stamp_path)
        updated = _extend(store, space, *cached, generation) if cached else None
        if updated is None:
            ids, vectors = store.load_embeddings(space)
            index = VectorIndex.build(ids, vectors)
            max_id = int(ids[-1]) if len(ids) else -1
            updated = (_Stamp(generation, len(ids), max_id, _created_at(store, max_id)), index)
            log.info("rebuilt %s index of %d vectors", space, len(index))
        if updated[0] != (cached[0] if cached else None):
            try:
                updated[1].save(index_path)
                write_file_atomically(stamp_path, json.dumps(asdict(updated[0])).encode())
            except OSError as e:  # a read-only or full disk costs speed, never correctness
                log.warning("could not write index cache %s: %s", index_path, e)
        _cache[key] = updated
        return updated[1]


def _load_cache_file(index_path: Path, stamp_path: Path) -> tuple[_Stamp, VectorIndex] | None:
    try:
        stamp = _Stamp(**json.loads(stamp_path.read_text()))
        index = VectorIndex.load(index_path)
        # The two files are replaced one at a time, and another process may be writing its own pair:
        # they only belong together when the index holds exactly the rows its stamp describes.
        ids = faiss.vector_to_array(index._index.id_map) if len(index) else np.zeros(0, np.int64)
        return (stamp, index) if len(index) == stamp.count and int(ids.max(initial=-1)) == stamp.max_id else None
    except (OSError, ValueError, TypeError, RuntimeError):
        return None


def drop_cached_indexes(root: Path) -> None:
    """Forget the in-process indexes of a project (after it is deleted)."""
    with _cache_lock:
        for key in [k for k in _cache if k[0] == str(root)]:
            del _cache[key]
