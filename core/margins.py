"""Score margins of a run's negatives, and what-if filters on them.

Scores are the run model's cosine similarities (higher = closer to the query). A candidate's margin
is ``pos_score - score``: positive when the negative scores below the query's positive; the smaller
(or more negative) the margin, the harder the negative and the likelier an unlabeled positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.store import Store


def margin_frame(store: Store, run_id: int, selected_only: bool = True) -> pd.DataFrame:
    """A run's candidates with their margins.

    Args:
        selected_only: only the negatives the run selected (else its whole stored pool).

    Returns:
        query_id, doc_id, rank, score, pos_score, margin, selected, suspicion (NaN until scored),
        decision (None when undecided; "undecided" is left to the caller).
    """
    pool = store.run_candidates(store.get_run(run_id).run_id)
    if selected_only:
        pool = pool[pool["selected"]]
    frame = pool[["query_id", "doc_id", "rank", "score", "pos_score", "selected", "suspicion",
                  "decision"]].copy()
    frame["suspicion"] = frame["suspicion"].astype(float)
    frame.insert(5, "margin", frame["pos_score"] - frame["score"])
    return frame.reset_index(drop=True)


def positive_scores(frame: pd.DataFrame, by: tuple[str, ...] = ("query_id",)) -> pd.DataFrame:
    """One row per query (per ``by`` group): its pos_score (the lowest positive's score)."""
    return frame.drop_duplicates(list(by))[[*by, "pos_score"]].reset_index(drop=True)


@dataclass(frozen=True)
class WhatIf:
    """Filters to try on a run's negatives; None switches a rule off.

    Attributes:
        absolute_margin: drop negatives with pos_score - score below this (NV-Retriever MarginPos).
        relative_margin: drop negatives scoring above this fraction of pos_score (PercPos, 0.95).
        max_score: drop negatives scoring above this (TopK-Abs).
        suspicion_threshold: drop negatives whose suspicion is above this, as ``curated`` holds
            them back (scored runs only).
    """

    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    suspicion_threshold: float | None = None


@dataclass(frozen=True)
class WhatIfResult:
    """What the filters would remove.

    Attributes:
        rules: rule, selected dropped, pool dropped: each rule on its own (rules overlap).
        selected, selected_dropped: the run's selected negatives, and how many any rule drops.
        pool, pool_dropped: the same over the whole stored pool.
        queries, queries_affected: queries, and those losing at least one selected negative.
        queries_short: queries whose stored pool keeps fewer than k candidates after the filters
            and the decisions, so even refilling from the pool leaves them short.
        k: negatives per query the run asked for.
        hardness: mean score of the run's selected negatives.
        hardness_after: mean score of what refilling would select, decisions applied as an
            export applies them: per query its reviewed hard negatives (the filters do not hold
            them back), then the highest-scoring candidates the filters keep that no annotator
            marked false negative or unsure, k in all (NaN when nothing is kept).
        pool_hardest: mean score of each query's k highest-scoring pool candidates, what plain
            top-k takes (the yardstick ``core.export_quality.export_quality`` reads hardness against).
    """

    rules: pd.DataFrame
    selected: int
    selected_dropped: int
    pool: int
    pool_dropped: int
    queries: int
    queries_affected: int
    queries_short: int
    k: int
    hardness: float = float("nan")
    hardness_after: float = float("nan")
    pool_hardest: float = float("nan")


def _rule_masks(pool: pd.DataFrame, what_if: WhatIf) -> dict[str, np.ndarray]:
    score = pool["score"].to_numpy(dtype=float)
    pos = pool["pos_score"].to_numpy(dtype=float)
    masks: dict[str, np.ndarray] = {}
    if what_if.absolute_margin is not None:
        masks[f"margin below {what_if.absolute_margin:g}"] = pos - score < what_if.absolute_margin
    if what_if.relative_margin is not None:
        masks[f"score above {what_if.relative_margin:g} x positive"] = (
            score > what_if.relative_margin * pos)
    if what_if.max_score is not None:
        masks[f"score above {what_if.max_score:g}"] = score > what_if.max_score
    if what_if.suspicion_threshold is not None:
        suspicion = pool["suspicion"].astype(float).to_numpy()
        masks[f"suspicion above {what_if.suspicion_threshold:g}"] = np.nan_to_num(
            suspicion, nan=-np.inf) > what_if.suspicion_threshold
    return masks


def what_if(store: Store, run_id: int, filters: WhatIf) -> WhatIfResult:
    """Count the candidates the filters would drop and the queries they would leave short.

    Raises:
        WorkbenchError: unknown or unfinished run; a relative margin outside (0, 1.5].
    """
    if filters.relative_margin is not None and not 0 < filters.relative_margin <= 1.5:
        raise WorkbenchError(
            f"relative margin must be in (0, 1.5], got {filters.relative_margin}")
    run = store.get_run(run_id)
    if run.status != "done":
        raise WorkbenchError(f"run {run.run_id} is {run.status}; only finished runs have margins")
    pool = store.run_candidates(run.run_id)
    pool = pool[pool["rank"].notna()].reset_index(drop=True)  # given negatives are not refills
    masks = _rule_masks(pool, filters)
    dropped = np.zeros(len(pool), dtype=bool)
    for mask in masks.values():
        dropped |= mask
    selected = pool["selected"].to_numpy(dtype=bool)
    rules = pd.DataFrame([
        {"rule": name, "selected dropped": int((mask & selected).sum()),
         "pool dropped": int(mask.sum())} for name, mask in masks.items()
    ], columns=["rule", "selected dropped", "pool dropped"])
    k = run.num_negatives
    decision = pool["decision"].fillna("").to_numpy()
    reviewed = decision == "hard_negative"
    usable = (reviewed | ~dropped) & ~np.isin(decision, ["false_negative", "unsure"])
    kept = pool.loc[usable].groupby("query_id").size().reindex(
        pool["query_id"].unique(), fill_value=0)
    affected = pool.loc[dropped & selected, "query_id"].nunique()
    refill = (pool.loc[usable].assign(first=~reviewed[usable])
              .drop_duplicates(["query_id", "doc_id"])
              .sort_values(["query_id", "first", "score"], ascending=[True, True, False],
                           kind="stable")
              .groupby("query_id", sort=False).head(k))
    hardest = (pool.drop_duplicates(["query_id", "doc_id"])
               .sort_values(["query_id", "score"], ascending=[True, False], kind="stable")
               .groupby("query_id", sort=False).head(k))
    return WhatIfResult(
        rules=rules, selected=int(selected.sum()), selected_dropped=int((dropped & selected).sum()),
        pool=len(pool), pool_dropped=int(dropped.sum()), queries=int(pool["query_id"].nunique()),
        queries_affected=int(affected), queries_short=int((kept < k).sum()), k=k,
        hardness=float(pool.loc[selected, "score"].mean()) if selected.any() else float("nan"),
        hardness_after=float(refill["score"].mean()) if len(refill) else float("nan"),
        pool_hardest=float(hardest["score"].mean()) if len(hardest) else float("nan"),
    )


def margin_histogram(store: Store, run_id: int, bins: int = 40,
                     selected_only: bool = True) -> pd.DataFrame:
    """Counts of a run's margins in ``bins`` equal bins, per decision, aggregated in SQL.

    What the margin histograms draw, without reading the run's candidates into memory (a run of
    100k queries x 100 holds 10M). Margin = pos_score - score: higher is an easier negative.

    Returns:
        bin, lo, hi (the bin's edges), decision ("undecided" when none), count.

    Raises:
        WorkbenchError: unknown run, or fewer than one bin.
    """
    if bins < 1:
        raise WorkbenchError(f"a histogram needs at least one bin, got {bins}")
    run = store.get_run(run_id)
    return store.margin_histogram(run.run_id, run.dataset_id, bins, selected_only)
