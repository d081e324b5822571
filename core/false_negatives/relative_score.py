"""relative_score: the candidate's score relative to the labeled positive's (NV-Retriever's idea)."""

from __future__ import annotations

import numpy as np

from core.false_negatives.base import DetectionContext, Detector, RawSignal


class RelativeScore(Detector):
    """The query-candidate cosine, read against the positive's score.

    References:
        Moreira et al., NV-Retriever, arXiv 2407.15831: candidates scoring near the positive are
        the likeliest false negatives. Unlike positive_aware mining it grades rather than cuts.
    """

    name = "relative_score"
    summary = "query-candidate score, relative to the positive's score"

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        head = scores if ctx.explain_depth is None else scores[:ctx.explain_depth]
        if pos_score > 0:
            details = [f"{s / pos_score:.2f} x the positive" for s in head]
        else:
            details = [f"{s:.2f} where the positive scores {pos_score:.2f}" for s in head]
        details += [None] * (len(scores) - len(head))
        positives = ctx.doc_vectors[ctx.positives[row]] @ ctx.query_vectors[row]
        return RawSignal(scores.astype(np.float32), None, details, positives.astype(np.float32))

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        if evidence < 0.8:
            return None
        return f"scores {detail}"
