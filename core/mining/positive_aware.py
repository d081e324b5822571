"""positive_aware: drop candidates above a ceiling set by the positive's score (NV-Retriever)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.mining.base import QueryPool, Selection, Strategy, top_selection

DEFAULT_THRESHOLDS = {"absolute": 0.7, "margin": 0.05, "percent": 0.95}


@dataclass(frozen=True)
class PositiveAwareParams:
    """Attributes:
        mode: absolute (drop score > threshold), margin (drop score > pos - threshold) or
            percent (drop score > threshold x pos).
        threshold: the mode's constant; None takes the paper's value (0.7, 0.05, 0.95).
    """

    mode: str = "percent"
    threshold: float | None = None

    def validate(self) -> None:
        if self.mode not in DEFAULT_THRESHOLDS:
            raise WorkbenchError(
                f"positive_aware mode must be one of {', '.join(DEFAULT_THRESHOLDS)}, "
                f"got {self.mode!r}"
            )

    def ceiling(self, pos_score: float) -> float:
        t = DEFAULT_THRESHOLDS[self.mode] if self.threshold is None else self.threshold
        if self.mode == "absolute":
            return t
        if self.mode == "margin":
            return pos_score - t
        return t * pos_score


class PositiveAware(Strategy):
    """Take the top k after dropping candidates that score too close to (or above) the positive.

    References:
        Moreira et al., "NV-Retriever: Improving text embedding models with effective
        positive-aware hard-negative mining", arXiv 2407.15831 (TopK-Abs, TopK-MarginPos,
        TopK-PercPos; PercPos 0.95 is the paper's best).

    With several positives the lowest positive score sets the ceiling, as the paper advises. Unlike
    the sentence-transformers implementation, the pool widens until k survive the ceiling.
    """

    name = "positive_aware"
    summary = "top k below a ceiling set by the positive's score (NV-Retriever)"
    Params = PositiveAwareParams
    presets = {
        "NV-Retriever TopK-PercPos 95%": {"mode": "percent", "threshold": 0.95},
        "NV-Retriever TopK-MarginPos 0.05": {"mode": "margin", "threshold": 0.05},
        "NV-Retriever TopK-Abs 0.7": {"mode": "absolute", "threshold": 0.7},
    }

    def select(
        self, pool: QueryPool, k: int, params: PositiveAwareParams, state: Any,
        rng: np.random.Generator,
    ) -> Selection:
        too_close = pool.scores > params.ceiling(pool.pos_score)
        return top_selection(~too_close, k, {"above_ceiling": int(too_close.sum())})


STRATEGY = PositiveAware()
