"""Cross-validation folds that never leak: stratified, and split by input rather than by row.

Rows of one input (or of inputs whose embeddings are identical, such as the same picture saved
twice in different formats) always land in the same fold, so no held-out input is ever scored
by a head that saw it, or its twin, in training.
"""

from __future__ import annotations

import numpy as np


def make_folds(groups: np.ndarray, strata: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold over groups: rows of one group always land in the same fold.

    Args:
        groups: (n,) group key per row (an input id); strata: (n,) class per row.
        k: folds wanted (``k >= number of groups`` gives leave-one-group-out).

    Returns:
        [(train rows, test rows)] for each fold with a non-empty test part.
    """
    groups, strata = np.asarray(groups), np.asarray(strata)
    if groups.shape != strata.shape or groups.ndim != 1:
        raise ValueError("groups and strata must be 1-d and of equal length")
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    unique, first = np.unique(groups, return_index=True)
    rng = np.random.default_rng(seed)
    fold_of_group: dict = {}
    offset = 0
    for stratum in np.unique(strata[first]):
        members = unique[strata[first] == stratum]
        for i, g in enumerate(members[rng.permutation(len(members))]):
            fold_of_group[g] = (offset + i) % k
        offset += len(members)  # the next stratum starts where this one stopped: folds stay even
    fold = np.array([fold_of_group[g] for g in groups])
    rows = np.arange(len(groups))
    return [(rows[fold != f], rows[fold == f]) for f in range(k) if (fold == f).any()]


def group_rows(ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """A group key per row: rows sharing an input id or an identical embedding share a group."""
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict = {}
    for i, (input_id, vector) in enumerate(zip(ids, vectors)):
        for key in (("id", int(input_id)), ("vector", np.ascontiguousarray(vector, np.float32).tobytes())):
            if key in seen:
                parent[find(i)] = find(seen[key])
            else:
                seen[key] = i
    return np.array([find(i) for i in range(len(ids))])


def fold_strata(labels: np.ndarray) -> np.ndarray:
    """Stratum per row: its first positive concept, or one past the last for rows without any."""
    positive = labels > 0
    return np.where(positive.any(axis=1), np.argmax(positive, axis=1), labels.shape[1])
