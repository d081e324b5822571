"""k-NN search with FAISS inner product over normalised vectors, chunked over queries.

The index is chosen by corpus size (``plan_index``): exact ``IndexFlatIP`` up to ``EXACT_LIMIT``
documents, above it an inverted-file index (``IndexIVFFlat``: exact inner products inside the
probed lists) whose ``nprobe`` is tuned on a sample of the run's own queries until recall@depth
against exact search reaches ``TARGET_RECALL`` (``tune_recall``). The achieved recall travels with
the run. Memory stays bounded: queries are searched ``QUERY_CHUNK`` at a time, never as a full
query x corpus matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from core.errors import WorkbenchError

QUERY_CHUNK = 1024
EXACT_LIMIT = 200_000
TARGET_RECALL = 0.95
RECALL_QUERIES = 1000
# IVF training: about sqrt(N) lists, trained on TRAIN_PER_LIST vectors per list (a seeded sample).
TRAIN_PER_LIST = 50
TRAIN_ITERATIONS = 10
NPROBE_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class IndexPlan:
    """Which index to build: ``kind`` "flat" (exact) or "ivf" with ``nlist`` inverted lists."""

    kind: str
    nlist: int = 0


@dataclass(frozen=True)
class SearchReport:
    """How a run searched.

    Attributes:
        index: "flat" (exact) or "ivf".
        nlist, nprobe: inverted lists and lists probed per query (0 for flat).
        recall: recall@``depth`` against exact search on ``sample`` queries (1.0 for flat; higher
            is better); ``target`` the recall nprobe was tuned for.
    """

    index: str
    nlist: int
    nprobe: int
    depth: int
    recall: float
    sample: int
    target: float

    def as_dict(self) -> dict[str, float | int | str]:
        return {"index": self.index, "nlist": self.nlist, "nprobe": self.nprobe,
                "depth": self.depth, "recall": round(self.recall, 4), "sample": self.sample,
                "target": self.target}


def plan_index(n_docs: int, exact_limit: int | None = None) -> IndexPlan:
    """Exact search up to ``exact_limit`` documents (default ``EXACT_LIMIT``), IVF with about
    sqrt(N) lists above."""
    if n_docs <= (EXACT_LIMIT if exact_limit is None else exact_limit):
        return IndexPlan("flat")
    return IndexPlan("ivf", int(min(n_docs, max(16, round(np.sqrt(n_docs))))))


def build_index(doc_vectors: np.ndarray, plan: IndexPlan | None = None,
                seed: int = 0) -> faiss.Index:
    """Return an inner-product index over the (normalised) document vectors.

    Args:
        plan: the index to build; None picks one by size (``plan_index``).
        seed: for the IVF training sample and k-means.

    Raises:
        WorkbenchError: no documents.
    """
    if doc_vectors.ndim != 2 or doc_vectors.shape[0] == 0:
        raise WorkbenchError("cannot build a search index: the corpus has no documents")
    n, dim = doc_vectors.shape
    plan = plan or plan_index(n)
    if plan.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, plan.nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = TRAIN_ITERATIONS
        index.cp.seed = seed
        index.cp.min_points_per_centroid = 1
        rng = np.random.default_rng(seed)
        size = min(n, plan.nlist * TRAIN_PER_LIST)
        rows = np.sort(rng.choice(n, size=size, replace=False))
        index.train(np.ascontiguousarray(doc_vectors[rows], dtype=np.float32))
    for start in range(0, n, 262_144):
        index.add(np.ascontiguousarray(doc_vectors[start:start + 262_144], dtype=np.float32))
    return index


def search(
    index: faiss.Index, query_vectors: np.ndarray, depth: int, chunk: int = QUERY_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores, doc indices), each (n_queries, depth), best first.

    Queries are searched ``chunk`` at a time so memory stays at chunk x depth, never a full
    query x corpus matrix. ``depth`` is capped at the corpus size. An IVF index that finds fewer
    than ``depth`` documents for a query pads with index -1 and score -inf.
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


def recall_at(exact_ids: np.ndarray, found_ids: np.ndarray) -> float:
    """Mean fraction of each row's exact neighbours that ``found_ids`` also holds."""
    depth = exact_ids.shape[1]
    if depth == 0 or exact_ids.shape[0] == 0:
        return 1.0
    hits = sum(len(np.intersect1d(e, f, assume_unique=True)) for e, f in zip(exact_ids, found_ids))
    return hits / float(exact_ids.size)


def tune_recall(
    index: faiss.Index, doc_vectors: np.ndarray, query_vectors: np.ndarray, depth: int,
    target: float = TARGET_RECALL, sample: int = RECALL_QUERIES, seed: int = 0,
) -> SearchReport:
    """Set an IVF index's ``nprobe`` to the smallest step reaching ``target`` recall@depth.

    Recall is measured against exact search on a seeded sample of ``sample`` of the queries; the
    exact reference is computed chunk by chunk over the documents (bounded memory). A flat index
    is exact and reports recall 1.0 without measuring. If no step reaches the target, the last
    (largest) step is kept and its recall reported.
    """
    depth = min(depth, index.ntotal)
    if not isinstance(index, faiss.IndexIVF):
        return SearchReport("flat", 0, 0, depth, 1.0, 0, target)
    rng = np.random.default_rng(seed)
    n = query_vectors.shape[0]
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    probe = np.ascontiguousarray(query_vectors[rows], dtype=np.float32)
    exact = exact_ids(doc_vectors, probe, depth)
    recall, nprobe = 0.0, 1
    for nprobe in [s for s in NPROBE_STEPS if s <= index.nlist] or [index.nlist]:
        index.nprobe = nprobe
        _, found = search(index, probe, depth)
        recall = recall_at(exact, found)
        if recall >= target:
            break
    return SearchReport("ivf", int(index.nlist), int(index.nprobe), depth, float(recall),
                        len(rows), target)


def exact_ids(doc_vectors: np.ndarray, queries: np.ndarray, depth: int,
              doc_chunk: int = 262_144) -> np.ndarray:
    """Exact top-``depth`` ids by inner product, best first, without an index: documents are
    searched ``doc_chunk`` at a time and merged (memory: queries x (2 x depth))."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, doc_vectors.shape[0], doc_chunk):
        block = np.ascontiguousarray(doc_vectors[start:start + doc_chunk], dtype=np.float32)
        flat = faiss.IndexFlatIP(block.shape[1])
        flat.add(block)
        s, i = flat.search(queries, min(depth, block.shape[0]))
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, i + start], axis=1)
        top = np.argsort(-s_all, axis=1, kind="stable")[:, :depth]
        best_s = np.take_along_axis(s_all, top, 1)
        best_i = np.take_along_axis(i_all, top, 1)
    return best_i
