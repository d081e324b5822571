"""curated: the hardest candidates the false-negative suspicion lets through (the default)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from core.errors import WorkbenchError
from core.mining.base import MiningContext, QueryPool, Selection, Strategy, warn_ignored

# The suspicion above which a candidate is held back. Chosen against the floors on the two
# shared datasets with the trade-off over thresholds in bench/RESULTS.md ("Cold suspicion,
# session 5"): 0.65 meets both with margin on both sides; 0.6 cost dbpedia its hardness floor.
DEFAULT_MAX_SUSPICION = 0.65


# Thresholds a hardness target chooses among.
THRESHOLD_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass(frozen=True)
class CuratedParams:
    """Attributes:
        max_suspicion: candidates whose suspicion is above this are held back (unless an
            annotator marked them hard negatives). Lower: fewer false negatives, easier negatives.
        min_relative_hardness: ask for a hardness instead: the run holds back above the lowest
            threshold (in steps of 0.01) whose negatives' mean score reaches this share of the
            mean score of each query's k highest-scoring candidates (plain top-k's hardness),
            measured on the initial pools; replaces max_suspicion. E.g. 0.9.
    """

    max_suspicion: float = DEFAULT_MAX_SUSPICION
    min_relative_hardness: float | None = None

    def validate(self) -> None:
        if not 0.0 <= self.max_suspicion <= 1.0:
            raise WorkbenchError(
                f"curated max_suspicion must be in [0, 1], got {self.max_suspicion}")
        target = self.min_relative_hardness
        if target is not None and not 0.0 < target <= 1.0:
            raise WorkbenchError(f"curated min_relative_hardness must be in (0, 1], got {target}")
        if target is not None and self.max_suspicion != DEFAULT_MAX_SUSPICION:
            warn_ignored("curated", "max_suspicion",
                         "min_relative_hardness chooses the threshold for the run")


@dataclass(frozen=True)
class CuratedState:
    """``threshold``: the suspicion above which candidates are held back; ``choice``: how a
    hardness target chose it (empty when max_suspicion set it)."""

    ctx: MiningContext
    row_of: dict[str, int]
    threshold: float
    choice: dict = field(default_factory=dict)


class Curated(Strategy):
    """Take the hardest candidates whose false-negative suspicion is below a threshold.

    Reviewed hard negatives come first, whatever their suspicion; pairs marked false negative or
    unsure never pass; the pool widens until k pass, so every query is filled when the corpus
    allows. Where positive_aware cuts on one signal (the score relative to the positive), curated
    cuts on the combined, explained suspicion of ``core.false_negatives`` (score, similarity to the
    positive, lexical match, cross-query and teacher evidence).

    References:
        Moreira et al., NV-Retriever, arXiv 2407.15831; Qu et al., RocketQA, arXiv 2010.08191;
        Thakur et al., RLHN, arXiv 2505.16967.
    """

    name = "curated"
    summary = "hardest candidates below a false-negative suspicion threshold (default)"
    Params = CuratedParams
    presets = {"Curated (default)": {"max_suspicion": DEFAULT_MAX_SUSPICION},
               "Curated, cautious": {"max_suspicion": 0.55},
               "Curated, harder": {"max_suspicion": 0.75},
               "Curated, 90 % of top-k's hardness": {"min_relative_hardness": 0.9}}

    def prepare(self, ctx: MiningContext, params: CuratedParams) -> CuratedState:
        if ctx.suspicion is None:
            raise WorkbenchError("the curated strategy needs the run's suspicion scorer")
        return CuratedState(ctx, {q: i for i, q in enumerate(ctx.query_ids)},
                            params.max_suspicion)

    def _facts(self, pool: QueryPool, state: CuratedState) -> tuple[np.ndarray, ...]:
        """The pool's suspicion, and which candidates are reviewed hard negatives and which are
        decided false negatives or unsure."""
        row = state.row_of[pool.query_id]
        result = state.ctx.suspicion.score(row, pool.doc_indices, pool.scores, pool.pos_score)
        decisions = state.ctx.decisions
        labels = np.array([decisions.get((row, int(d)), "") for d in pool.doc_indices]) \
            if decisions else np.full(len(pool), "")  # no per-candidate loop before any review
        return (result.suspicion, labels == "hard_negative",
                np.isin(labels, ["false_negative", "unsure"]))

    def survey(self, pools: list[QueryPool], k: int, params: CuratedParams,
               state: CuratedState) -> CuratedState:
        """With a hardness target, choose the run's threshold (``choose_threshold``)."""
        if params.min_relative_hardness is None:
            return state
        choice = choose_threshold([(p.scores, *self._facts(p, state)) for p in pools], k,
                                  params.min_relative_hardness)
        return replace(state, threshold=choice["max_suspicion"], choice=choice)

    def describe(self, state: CuratedState) -> dict:
        choice = state.choice
        if not choice:
            return {}
        text = (f"held back above suspicion {choice['max_suspicion']:.2f}: hardness "
                f"{choice['hardness']:.3f}, {choice['hardness'] / choice['pool_hardest']:.2f} x "
                f"plain top-k's {choice['pool_hardest']:.3f}" if choice["pool_hardest"] else
                f"held back above suspicion {choice['max_suspicion']:.2f}")
        if not choice["reached"]:
            text += f" (the target {choice['target']:.2f} x cannot be reached)"
        return {**choice, "text": text}

    def select(self, pool: QueryPool, k: int, params: CuratedParams, state: CuratedState,
               rng: np.random.Generator) -> Selection:
        suspicion, reviewed, rejected = self._facts(pool, state)
        suspicious = (suspicion > state.threshold) & ~reviewed & ~rejected
        eligible = ~suspicious & ~rejected
        order = np.concatenate([np.flatnonzero(reviewed), np.flatnonzero(eligible & ~reviewed)])
        removed = {"above_suspicion": int(suspicious.sum()),
                   "decided_false_negative_or_unsure": int(rejected.sum())}
        return Selection(eligible, order[:k], removed)


def choose_threshold(pools: list[tuple[np.ndarray, ...]], k: int,
                     target: float) -> dict[str, float | bool]:
    """The lowest threshold of ``THRESHOLD_GRID`` whose selection reaches ``target`` x plain
    top-k's hardness.

    ``pools``: per query (scores in pool order, suspicion, reviewed, rejected), as curated selects
    from them: reviewed hard negatives first, then the candidates at or below the threshold in
    pool order, k in all. Hardness is the mean score over every selected negative, plain top-k's
    the mean of each pool's k highest scores. Where no threshold reaches the target, the highest
    (1.0) is taken and ``reached`` is False.

    Returns: max_suspicion (the chosen threshold), hardness (its selection's), pool_hardest
    (plain top-k's), target (as asked), reached.
    """
    sums = np.zeros(len(THRESHOLD_GRID))
    counts = np.zeros(len(THRESHOLD_GRID))
    top_sum, top_n = 0.0, 0
    for scores, suspicion, reviewed, rejected in pools:
        scores = np.asarray(scores, dtype=np.float64)
        best = np.sort(scores)[::-1][:k]
        top_sum, top_n = top_sum + float(best.sum()), top_n + len(best)
        kept = scores[reviewed][:k]
        room = k - len(kept)
        free = ~reviewed & ~rejected
        passing = suspicion[free][None, :] <= THRESHOLD_GRID[:, None]  # thresholds x candidates
        taken = passing & (np.cumsum(passing, axis=1) <= room)
        sums += float(kept.sum()) + taken @ scores[free]
        counts += len(kept) + taken.sum(axis=1)
    top = top_sum / top_n if top_n else 0.0
    hardness = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    reaching = np.flatnonzero(hardness >= target * top - 1e-9)
    place = int(reaching[0]) if len(reaching) else len(THRESHOLD_GRID) - 1
    return {"max_suspicion": float(THRESHOLD_GRID[place]),
            "hardness": round(float(hardness[place]), 4), "pool_hardest": round(top, 4),
            "target": target, "reached": bool(len(reaching))}


STRATEGY = Curated()
