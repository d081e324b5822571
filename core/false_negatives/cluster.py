"""cluster: the candidate sits in the same k-means topic cluster as a positive."""

from __future__ import annotations

import numpy as np

from core.false_negatives.base import DetectionContext, Detector, RawSignal
from core.mining.cluster import fit_clusters

MAX_DOCUMENTS = 50_000


class SameCluster(Detector):
    """1 when the candidate shares a k-means cluster (sqrt(documents) clusters) with a positive.

    Coarse topic evidence: it explains and feeds the learned model but carries no cold weight,
    since most hard candidates share the positive's topic anyway.
    """

    name = "cluster"
    summary = "shares a k-means topic cluster with a positive"
    weight = 0.0

    def available(self, ctx: DetectionContext) -> bool:
        # k-means with sqrt(N) clusters costs N^1.5; above MAX_DOCUMENTS this weightless signal
        # takes minutes on two cores (100k documents: about a minute; 1M: far more) for an
        # explanation only.
        return ctx.doc_vectors.shape[0] <= MAX_DOCUMENTS

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        labels = ctx.cache.get("doc_clusters")
        if labels is None:
            n = max(2, int(round(np.sqrt(ctx.doc_vectors.shape[0]))))
            kmeans = fit_clusters(ctx.doc_vectors, n, ctx.seed)
            labels = ctx.cache["doc_clusters"] = kmeans.index.search(ctx.doc_vectors, 1)[1][:, 0]
        same = np.isin(labels[doc_indices], labels[ctx.positives[row]])
        return RawSignal(same.astype(np.float32))

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        return "in the positive's topic cluster" if value >= 1 else None
