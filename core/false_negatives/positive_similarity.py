"""positive_similarity: how close the candidate is to the labeled positive(s)."""

from __future__ import annotations

import numpy as np

from core.false_negatives.base import DetectionContext, Detector, RawSignal

NEAR_DUPLICATE = 0.95


def _others(positives: np.ndarray) -> np.ndarray | None:
    """Each labeled positive read as a candidate: its cosine to the closest *other* positive of
    the query; None for a query with one positive (its similarity to itself says nothing)."""
    if len(positives) < 2:
        return None
    sims = positives @ positives.T
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1).astype(np.float32)


class PositiveSimilarity(Detector):
    """Maximum cosine between the candidate and the query's positives.

    Near-duplicates and paraphrases of a positive answer the query as well as it does;
    sentence-transformers' mine_hard_negatives ignores them, negminer keeps a doc-doc matrix for
    them. At cosine >= 0.95 the signal is decisive on its own.
    """

    name = "positive_similarity"
    summary = "cosine between the candidate and the closest positive"

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        positives = ctx.doc_vectors[ctx.positives[row]]
        sims = (ctx.doc_vectors[doc_indices] @ positives.T).max(axis=1).astype(np.float32)
        decisive = np.where(sims >= NEAR_DUPLICATE, sims, np.nan).astype(np.float32)
        return RawSignal(sims, decisive, positive=_others(positives))

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        if value >= NEAR_DUPLICATE:
            return f"near-duplicate of the positive (cosine {value:.2f})"
        if evidence >= 0.8:
            return f"close to the positive (cosine {value:.2f})"
        return None
