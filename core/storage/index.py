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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from core.disk import write_file_atomically
from core.storage.store import Store

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)


def _faiss() -> ModuleType:
    """FAISS, imported on first use: a command that searches nothing never pays its import (a third of a second)."""
    import faiss

    return faiss


# One query against an exact (flat) index reads every stored vector: 2 KiB each at 512 dimensions,
# about 0.25 ms per 1,000 vectors on one core (FAISS answers a single query on one thread), so
# 5 ms at 20,000 vectors and 25 ms at 100,000. Above the limit: an inverted file (IVF) whose
# k-means cells hold 8-bit scalar-quantised codes (a quarter of the bytes to read), the shortlist
# re-ranked against the exact vectors. Not HNSW: at 100,000 vectors on a quiet machine its graph
# built no faster (15 s against 16 s) and reached recall@10 0.951 against 1.000 (bench/speed/search.py).


# Fewer queries than this run on the calling thread alone. FAISS's id mapping and re-ranking open
# an OpenMP parallel region even for one query; on a busy machine waiting for the second thread cost
# 30 ms where the search itself takes 0.3 ms (bench/speed/search.py).
FEW_QUERIES = 20


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run FAISS on the calling thread only; OpenMP's thread count is per thread, so other searches keep theirs."""
    faiss = _faiss()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built: where exact search ends and how the inverted file is laid out.

    Attributes:
        exact_limit: largest number of vectors searched exactly (flat inner product).
        cells_per_sqrt: IVF cells per square root of the vector count (4 * sqrt(n) is FAISS's advice).
        max_cells: cap on the cells; k-means and assigning each vector cost grow with the cells.
        training_points_per_cell: k-means sample size per cell (FAISS asks for at least 39).
        kmeans_iterations: k-means iterations; 10 lose no recall against 25 on clustered vectors.
        min_probes: fewest cells searched per query (at 1M vectors 8 cells read 7,800: recall@10 1.000,
            1.3 ms of CPU; 16 cells 2.4 ms, and 6 ms instead of 1.5 ms wall on a loaded machine).
        min_scanned: fewest vectors a query reads, on average: more cells are probed while cells are
            small (recall@10 on clustered vectors: 0.93 reading 700 vectors, 0.998 reading 1,400).
        rerank_factor: the shortlist of ``rerank_factor * k`` quantised hits re-scored exactly.
        regrow_ratio: rebuild once the cell count planned for the grown index is this many times
            the cells it has (more rows per cell is slower, not less accurate).
    """

    exact_limit: int = 20_000
    cells_per_sqrt: float = 4.0
    max_cells: int = 1024
    training_points_per_cell: int = 40
    kmeans_iterations: int = 10
    min_probes: int = 8
    min_scanned: int = 4096
    rerank_factor: int = 4
    regrow_ratio: float = 1.5

    def __post_init__(self) -> None:
        for name in (
            "exact_limit",
            "max_cells",
            "training_points_per_cell",
            "kmeans_iterations",
            "min_probes",
            "min_scanned",
            "rerank_factor",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"IndexConfig.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.cells_per_sqrt <= 0 or self.regrow_ratio <= 1:
            raise ValueError(f"IndexConfig needs cells_per_sqrt > 0 and regrow_ratio > 1, got {self}")

    def cells_for(self, n: int) -> int:
        """The IVF cell count for ``n`` vectors."""
        return int(min(self.max_cells, max(16, self.cells_per_sqrt * np.sqrt(n))))

    def probes_for(self, n: int, cells: int) -> int:
        """Cells to search per query in an index of ``n`` vectors in ``cells`` cells."""
        return int(min(cells, max(self.min_probes, np.ceil(self.min_scanned * cells / max(n, 1)))))


DEFAULT_CONFIG = IndexConfig()


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
    def build(cls, ids: np.ndarray, vectors: np.ndarray, config: IndexConfig = DEFAULT_CONFIG) -> VectorIndex:
        """Index ``vectors`` (n, d) float32 under the int64 ``ids`` (n,): exact up to ``config.exact_limit``, IVF above."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        if len(vectors) and len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        inner = _build_ivf(vectors, config) if len(vectors) > config.exact_limit else faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(inner)
        if len(vectors):
            index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        return cls(index, dim)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """Which search structure serves this index: ``exact``, ``IVF-SQ8`` (re-ranked), ``IVF`` or ``HNSW``."""
        inner = type(_faiss().downcast_index(self._index.index)).__name__
        names = {"IndexFlatIP": "exact", "IndexRefineFlat": "IVF-SQ8", "IndexIVFFlat": "IVF", "IndexHNSWFlat": "HNSW"}
        return names.get(inner, inner)

    @property
    def cells(self) -> int:
        """The inverted file's cell count (0 for an exact index)."""
        ivf = _ivf_of(self._index)
        return int(ivf.nlist) if ivf is not None else 0

    @property
    def nbytes(self) -> int:
        """The size of the index as saved (a close measure of the memory it holds)."""
        return int(_faiss().serialize_index(self._index).size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores (m, k), ids (m, k)); rows are padded with id -1 (score -inf) when fewer than k exist.

        Raises:
            ValueError: the queries do not have the index's dimension.
        """
        faiss = _faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, int(k))
        if len(self) and (queries.ndim != 2 or queries.shape[1] != self.dim):
            raise ValueError(f"queries of shape {queries.shape} against an index of {self.dim} dimensions")
        if len(self) == 0:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        ivf = _ivf_of(self._index)
        if ivf is not None and k > len(self) * ivf.nprobe / ivf.nlist / 2:
            # The probed cells hold too few vectors for so many hits: read them all (exactly).
            refined = faiss.downcast_index(self._index.index)
            scores, rows = faiss.downcast_index(refined.refine_index).search(queries, min(k, len(self)))
            ids = np.where(rows >= 0, faiss.vector_to_array(self._index.id_map)[np.maximum(rows, 0)], -1)
        elif len(queries) < FEW_QUERIES:
            with _one_thread():
                scores, ids = self._index.search(queries, min(k, len(self)))
        else:
            scores, ids = self._index.search(queries, min(k, len(self)))
        scores[ids < 0] = -np.inf  # an IVF index pads with -FLT_MAX
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
        write_file_atomically(path, _faiss().serialize_index(self._index).tobytes())

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        index = _faiss().deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        return cls(index, index.d)


def _ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The inverted file inside an id map (and a re-ranking wrapper), or None for a flat index."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexRefine):
        inner = faiss.downcast_index(inner.base_index)
    return inner if isinstance(inner, faiss.IndexIVF) else None


def _build_ivf(vectors: np.ndarray, config: IndexConfig) -> faiss.Index:
    """An empty, trained IVF-SQ8 index re-ranking its shortlist exactly; k-means on a seeded sample of ``vectors``."""
    faiss = _faiss()
    n, dim = vectors.shape
    cells = config.cells_for(n)
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, cells, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = config.kmeans_iterations
    ivf.cp.min_points_per_centroid = 1  # just above the switch point the whole set is a small sample: no warning
    sample = min(n, cells * config.training_points_per_cell)
    picks = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
    ivf.train(vectors[picks])
    ivf.nprobe = config.probes_for(n, cells)
    refined = faiss.IndexRefineFlat(ivf)
    refined.k_factor = float(config.rerank_factor)
    return refined


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


def _extend(
    store: Store, space: str, stamp: _Stamp, index: VectorIndex, generation: int, config: IndexConfig
) -> tuple[_Stamp, VectorIndex] | None:
    """Add the rows stored since ``stamp`` to ``index``, if nothing else changed; None means rebuild."""
    (count,) = store.query("SELECT COUNT(*) FROM embeddings WHERE space = ? AND input_id <= ?", (space, stamp.max_id))[0]
    if count != stamp.count or (stamp.max_id >= 0 and _created_at(store, stamp.max_id) != stamp.max_created):
        return None  # something was deleted: only a rebuild is right
    ids, vectors = store.load_embeddings(space, after_id=stamp.max_id)
    if len(ids) and (stamp.count == 0 or vectors.shape[1] != index.dim):
        return None  # an empty index has no real dimension yet (it was built with 1)
    total = stamp.count + len(ids)
    if len(ids) and (index.kind == "exact") != (total <= config.exact_limit):
        return None  # grown past the exact-search limit: rebuild as IVF
    if len(ids) and index.cells and config.cells_for(total) >= config.regrow_ratio * index.cells:
        return None  # the cells were laid out for far fewer vectors: lay them out again
    if len(ids):
        # A copy: other threads may be searching the old index right now (FAISS reads are
        # thread-safe, a read during a write is not).
        grown = VectorIndex(_faiss().clone_index(index._index), index.dim)
        grown._index.add_with_ids(np.ascontiguousarray(vectors), ids)
        max_id = int(ids[-1])
        return _Stamp(generation, total, max_id, _created_at(store, max_id)), grown
    return _Stamp(generation, stamp.count, stamp.max_id, stamp.max_created), index


def load_index(store: Store, space: str, config: IndexConfig = DEFAULT_CONFIG) -> VectorIndex:
    """Return an up-to-date index of every stored embedding in ``space``, built as ``config`` says.

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
        updated = _extend(store, space, *cached, generation, config) if cached else None
        if updated is None:
            ids, vectors = store.load_embeddings(space)
            index = VectorIndex.build(ids, vectors, config)
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
        ids = _faiss().vector_to_array(index._index.id_map) if len(index) else np.zeros(0, np.int64)
        return (stamp, index) if len(index) == stamp.count and int(ids.max(initial=-1)) == stamp.max_id else None
    except (OSError, ValueError, TypeError, RuntimeError):
        return None


def drop_cached_indexes(root: Path) -> None:
    """Forget the in-process indexes of a project (after it is deleted)."""
    with _cache_lock:
        for key in [k for k in _cache if k[0] == str(root)]:
            del _cache[key]
