"""simans: ambiguous negatives sampled near the positive's score (SimANS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.mining.base import QueryPool, Selection, Strategy, sample_selection


@dataclass(frozen=True)
class SimANSParams:
    """Attributes:
        a: sharpness of the sampling distribution.
        b: offset: the score difference (neg - pos) sampled most often.
        pool: how many top non-positives may be sampled.
    """

    a: float = 0.5
    b: float = 0.0
    pool: int = 200

    def validate(self) -> None:
        if self.a < 0 or self.pool < 1:
            raise WorkbenchError(f"simans needs a >= 0 and pool >= 1, got a={self.a}, pool={self.pool}")


class SimANS(Strategy):
    """Sample k of the top ``pool`` non-positives with p proportional to exp(-a (s - pos - b)^2).

    References:
        Zhou et al., "SimANS: Simple Ambiguous Negatives Sampling for Dense Text Retrieval",
        arXiv 2210.11773 (a = 0.5, b = 0; some of the authors' scripts use b = 1.0).

    Where top_k takes the hardest and rank_window samples uniformly, SimANS prefers candidates
    scored near the positive: informative but not as likely to be unlabeled positives as the very
    top. On cosine scores the paper's a = 0.5 gives a gentle preference; raise ``a`` for a sharper one.
    """

    name = "simans"
    summary = "sampled near the positive's score, p ~ exp(-a (s - pos - b)^2) (SimANS)"
    Params = SimANSParams
    widens = False
    presets = {"SimANS a=0.5 b=0": {"a": 0.5, "b": 0.0, "pool": 200},
               "SimANS a=0.5 b=1.0": {"a": 0.5, "b": 1.0, "pool": 200}}

    def min_depth(self, params: SimANSParams, num_negatives: int) -> int:
        return params.pool

    def select(
        self, pool: QueryPool, k: int, params: SimANSParams, state: Any, rng: np.random.Generator
    ) -> Selection:
        ranks = np.arange(len(pool))
        eligible = ranks < params.pool
        weights = np.exp(-params.a * (pool.scores - pool.pos_score - params.b) ** 2)
        removed = {"beyond_pool": int((~eligible).sum())}
        return sample_selection(eligible, k, removed, rng, weights)


STRATEGY = SimANS()
