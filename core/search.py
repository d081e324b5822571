"""Exact k-NN search with FAISS inner product over normalised vectors, chunked over queries."""

from __future__ import annotations

import faiss
import numpy as np

from core.errors import WorkbenchError

QUERY_CHUNK = 1024


def build_index(doc_vectors: np.ndarray) -> faiss.Index:
    """Return an exact inner-product index over the (normalised) document vectors.

    Raises:
        WorkbenchError: no documents.
    """
    if doc_vectors.ndim != 2 or doc_vectors.shape[0] == 0:
        raise WorkbenchError("cannot build a search index: the corpus has no documents")
    index = faiss.IndexFlatIP(doc_vectors.shape[1])
    index.add(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    return index


def search(
    index: faiss.Index, query_vectors: np.ndarray, depth: int, chunk: int = QUERY_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores, doc indices), each (n_queries, depth), best first.

    Queries are searched ``chunk`` at a time so memory stays at chunk x depth, never a full
    query x corpus matrix. ``depth`` is capped at the corpus size.
    """
    depth = min(depth, index.ntotal)
    n = query_vectors.shape[0]
    scores = np.empty((n, depth), dtype=np.float32)
    ids = np.empty((n, depth), dtype=np.int64)
    for start in range(0, n, chunk):
        block = np.ascontiguousarray(query_vectors[start:start + chunk], dtype=np.float32)
        s, i = index.search(block, depth)
        scores[start:start + chunk] = s
        ids[start:start + chunk] = i
    return scores, ids
