"""FAISS search: exact inner-product results, chunked over queries."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.search import build_index, search


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
