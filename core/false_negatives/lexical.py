"""lexical: BM25 evidence that the candidate matches the query's words (bm25s)."""

from __future__ import annotations

import numpy as np

from core.false_negatives.base import DetectionContext, Detector, RawSignal
from core.lexical import LexicalIndex


class Lexical(Detector):
    """BM25 of the query against the candidate, log-scaled.

    An embedding can rank a passage high for its topic alone; one that also carries the query's
    rare terms is more likely to answer it (the lexical side of hybrid retrieval).
    """

    name = "lexical"
    summary = "BM25 of the query against the candidate"

    def available(self, ctx: DetectionContext) -> bool:
        return ctx.has_texts()  # precomputed vectors may come without any text

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        index = ctx.cache.get("bm25")
        if index is None:
            index = ctx.cache["bm25"] = LexicalIndex(ctx.doc_texts)
        tokens = ctx.cache.get("bm25_query_tokens")
        if tokens is None:  # every query at once: one tokenizer call instead of one per query
            tokens = ctx.cache["bm25_query_tokens"] = index.query_token_ids(ctx.query_texts)
        values = index.score_tokens(tokens[row], doc_indices)
        positives = index.score_tokens(tokens[row], ctx.positives[row])
        return RawSignal(np.log1p(values).astype(np.float32),
                         positive=np.log1p(positives).astype(np.float32))

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        if evidence < 0.8 or value <= 0:
            return None
        return f"matches the query's words (BM25 {np.expm1(value):.1f})"
