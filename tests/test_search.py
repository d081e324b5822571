"""FAISS search: exact inner-product results, chunked over queries."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.search import (
    IndexPlan, build_index, plan_index, recall_at, search, tune_recall,
)


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_matches_brute_force_in_any_chunking():
    docs, queries = _unit(500, 16, 0), _unit(37, 16, 1)
    index = build_index(docs)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    for chunk in (1, 5, 1024):
        scores, ids = search(index, queries, 10, chunk=chunk)
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_allclose(scores, np.take_along_axis(queries @ docs.T, ids, 1), atol=1e-5)
        assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_depth_is_capped_at_corpus_size():
    scores, ids = search(build_index(_unit(4, 8, 0)), _unit(2, 8, 1), 50)
    assert ids.shape == (2, 4) and sorted(ids[0]) == [0, 1, 2, 3]


def test_empty_corpus_is_refused():
    with pytest.raises(WorkbenchError, match="no documents"):
        build_index(np.zeros((0, 8), dtype=np.float32))


def _clustered(rows: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, rows)] + 0.4 * rng.normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_index_is_chosen_by_corpus_size():
    assert plan_index(200_000) == IndexPlan("flat")
    assert plan_index(1_000_000) == IndexPlan("ivf", 1000)
    assert plan_index(5000, exact_limit=1000).kind == "ivf"


def test_ivf_nprobe_is_tuned_to_the_recall_target():
    docs, queries = _clustered(6000, 16, 60, 0), _clustered(300, 16, 60, 1)
    index = build_index(docs, plan_index(len(docs), exact_limit=100))
    report = tune_recall(index, docs, queries, 50, target=0.95, sample=200)
    assert report.index == "ivf" and report.nlist == 77 and report.sample == 200
    assert report.recall >= 0.95 and index.nprobe == report.nprobe < report.nlist
    exact = np.argsort(-(queries @ docs.T), axis=1)[:, :50]
    _, found = search(index, queries, 50)
    assert recall_at(exact, found) >= 0.93  # all 300 queries, not only the tuning sample
    flat = tune_recall(build_index(docs), docs, queries, 50)
    assert flat.index == "flat" and flat.recall == 1.0


def test_recall_counts_shared_neighbours():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert recall_at(exact, found) == pytest.approx(6 / 8)
