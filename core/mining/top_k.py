"""top_k: the k highest-scoring non-positives (ANCE, DPR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.mining.base import QueryPool, Selection, Strategy, top_selection


@dataclass(frozen=True)
class TopKParams:
    """top_k has no parameters beyond the shared ones (num_negatives, seed, pool depth)."""


class TopK(Strategy):
    """Take the k nearest non-positive documents under the current model.

    References:
        Xiong et al., "Approximate Nearest Neighbor Negative Contrastive Learning" (ANCE),
        arXiv 2007.00808; Karpukhin et al., DPR, arXiv 2004.04906.

    The hardest negatives there are, and so the likeliest to be unlabeled positives; the filtered
    siblings (positive_aware, curated) exist because of that.
    """

    name = "top_k"
    summary = "the k highest-scoring non-positives (ANCE / DPR)"
    Params = TopKParams
    presets = {"ANCE top-k": {}}

    def select(
        self, pool: QueryPool, k: int, params: Any, state: Any, rng: np.random.Generator
    ) -> Selection:
        return top_selection(np.ones(len(pool), dtype=bool), k, {})


STRATEGY = TopK()
