"""Tests for core.learning.folds: folds keep duplicates together, so cross-validation cannot memorise them."""

from __future__ import annotations

import numpy as np

from core.learning.folds import group_rows, make_folds

# -- folds never leak ----------------------------------------------------------------------


def test_folds_keep_groups_together_and_test_every_row_once():
    groups = np.array([1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9])
    strata = np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1])
    folds = make_folds(groups, strata, 3)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(groups)))
    for train_rows, test_rows in folds:
        assert not set(groups[train_rows]) & set(groups[test_rows])


def test_identical_embeddings_share_a_group_even_under_different_ids():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    groups = group_rows(np.array([10, 11, 12, 11]), vectors)
    assert groups[0] == groups[2] and groups[1] == groups[3] and groups[0] != groups[1]
