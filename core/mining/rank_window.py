"""rank_window: k sampled at random from ranks [lo, hi) (FlagEmbedding hn_mine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.mining.base import QueryPool, Selection, Strategy, sample_selection


@dataclass(frozen=True)
class RankWindowParams:
    """Ranks are 0-based among the non-positive candidates, best first.

    Attributes:
        lo: first rank that may be sampled (skips the likeliest false negatives above it).
        hi: rank just past the window.
    """

    lo: int = 10
    hi: int = 210

    def validate(self) -> None:
        if self.lo < 0 or self.hi <= self.lo:
            raise WorkbenchError(
                f"rank_window needs 0 <= lo < hi, got lo={self.lo} and hi={self.hi}"
            )


class RankWindow(Strategy):
    """Sample k negatives uniformly (seeded) from a window of ranks below the top.

    References:
        FlagEmbedding ``scripts/hn_mine.py`` (range_for_sampling "10-210", 15 negatives);
        RAGatouille uses 10-110.

    Unlike top_k it skips the top ``lo`` candidates, trading hardness for fewer false negatives;
    unlike FlagEmbedding it never pads with random corpus texts: queries the window cannot fill are
    reported short.
    """

    name = "rank_window"
    summary = "k sampled at random from ranks [lo, hi) (FlagEmbedding hn_mine)"
    Params = RankWindowParams
    widens = False
    presets = {"FlagEmbedding 10-210": {"lo": 10, "hi": 210},
               "RAGatouille 10-110": {"lo": 10, "hi": 110}}

    def min_depth(self, params: RankWindowParams, num_negatives: int) -> int:
        return params.hi

    def select(
        self, pool: QueryPool, k: int, params: RankWindowParams, state: Any,
        rng: np.random.Generator,
    ) -> Selection:
        ranks = np.arange(len(pool))
        above = ranks < params.lo
        below = ranks >= params.hi
        eligible = ~above & ~below
        removed = {"above_window": int(above.sum()), "below_window": int(below.sum())}
        return sample_selection(eligible, k, removed, rng)


STRATEGY = RankWindow()
