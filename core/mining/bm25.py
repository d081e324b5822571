"""bm25: lexical negatives, the top BM25 documents that are not positives (DPR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.mining.base import QueryPool, Selection, Strategy, top_selection


@dataclass(frozen=True)
class BM25Params:
    """bm25 has no parameters beyond the shared ones."""


class BM25(Strategy):
    """Take the k highest-BM25 non-positives (bm25s; lower-cased, stopwords out, stemmed).

    References:
        Karpukhin et al., "Dense Passage Retrieval for Open-Domain Question Answering",
        arXiv 2004.04906 (BM25 negatives); bm25s (Lù, arXiv 2407.03618).

    The pool is ranked lexically, not by the embedding model, so these negatives share words with
    the query rather than meaning: complementary to every dense strategy. Dense scores are still
    stored for margins.
    """

    name = "bm25"
    summary = "top k by BM25 among non-positives (DPR's lexical negatives)"
    Params = BM25Params
    pool_source = "lexical"
    presets = {"DPR BM25": {}}

    def select(
        self, pool: QueryPool, k: int, params: Any, state: Any, rng: np.random.Generator
    ) -> Selection:
        return top_selection(np.ones(len(pool), dtype=bool), k, {})


STRATEGY = BM25()
