"""cross_query: the candidate is a labeled positive of a (near-)identical query."""

from __future__ import annotations

import numpy as np

from core.false_negatives.base import DetectionContext, Detector, RawSignal

DECISIVE_QUERY_SIMILARITY = 0.9
# Below this cosine the other query is not "similar" enough to name in a reason (the raw value
# still feeds the learned model).
REASON_QUERY_SIMILARITY = 0.5


class CrossQuery(Detector):
    """Cosine between this query and the most similar other query that labels the candidate
    positive (0 when none does). Above 0.9 the queries ask the same thing, and the signal is
    decisive: training on it as a negative would contradict the other pair.
    """

    name = "cross_query"
    summary = "labeled positive of a similar query"
    weight = 0.0

    def _owners(self, ctx: DetectionContext) -> dict[int, np.ndarray]:
        owners = ctx.cache.get("positive_owners")
        if owners is None:
            pairs: dict[int, list[int]] = {}
            for q, docs in enumerate(ctx.positives):
                for d in docs:
                    pairs.setdefault(int(d), []).append(q)
            owners = ctx.cache["positive_owners"] = {d: np.array(q) for d, q in pairs.items()}
            owned = np.zeros(len(ctx.doc_texts), dtype=bool)
            owned[list(owners)] = True
            ctx.cache["positive_owned"] = owned
        return owners

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        owners = self._owners(ctx)
        values = np.zeros(len(doc_indices), dtype=np.float32)
        details: list[str | None] = [None] * len(doc_indices)
        # Only candidates that are some query's positive can carry the signal (few of a pool).
        owned = np.flatnonzero(ctx.cache["positive_owned"][doc_indices])
        for i in owned:
            d = doc_indices[i]
            others = owners.get(int(d))
            if others is None:
                continue
            others = others[others != row]
            if not len(others):
                continue
            sims = ctx.query_vectors[others] @ ctx.query_vectors[row]
            best = int(np.argmax(sims))
            values[i] = max(float(sims[best]), 0.0)
            details[i] = ctx.query_texts[int(others[best])]
        decisive = np.where(values >= DECISIVE_QUERY_SIMILARITY, values, np.nan)
        return RawSignal(values, decisive.astype(np.float32), details)

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        if value < REASON_QUERY_SIMILARITY or detail is None:
            return None
        shown = detail if len(detail) <= 80 else detail[:77] + "..."
        return f"labeled positive of the similar query '{shown}' (cosine {value:.2f})"
