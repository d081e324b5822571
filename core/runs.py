"""Mining runs as tables, and the comparison of two runs (overlap of negatives, margins)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from core.errors import WorkbenchError
from core.export import run_quality
from core.store import RunInfo, Store


def _run_row(run: RunInfo, dataset_names: dict[int, str]) -> dict[str, object]:
    row: dict[str, object] = {
        "run": run.run_id, "status": run.status,
        "dataset": dataset_names.get(run.dataset_id, str(run.dataset_id)),
        "strategy": run.strategy, "params": json.dumps(run.params, sort_keys=True),
        "k": run.num_negatives, "pool depth": run.pool_depth, "model": run.model,
        "seed": run.seed, "queries": run.n_queries, "short queries": len(run.short_queries),
        "created": run.created_at,
    }
    if run_choice(run):
        row["chosen"] = run_choice(run)
    for phase, seconds in run.timings.items():
        row[f"{phase} (s)"] = round(float(seconds), 2)
    for rule, count in run.filter_counts.items():
        row[rule] = count
    if run.error:
        row["error"] = run.error
    return row


def runs_frame(store: Store) -> pd.DataFrame:
    """One row per run, newest first: parameters, timings (seconds) and per-filter counts."""
    names = {d.dataset_id: d.name for d in store.list_datasets(include_inactive=True)}
    return pd.DataFrame([_run_row(r, names) for r in store.list_runs()])


def finished_runs(store: Store) -> list[RunInfo]:
    """The finished runs, newest first (what the pages offer to look at)."""
    return [r for r in store.list_runs() if r.status == "done"]


def run_choice(run: RunInfo) -> str:
    """What the strategy chose for the run beyond its parameters (curated's threshold for a
    hardness target), in words; empty when it chose nothing."""
    return str(run.search.get("strategy_choice", {}).get("text", "")) if run.search else ""


def run_label(run: RunInfo) -> str:
    """A short human label for a run: ``#3 top_k k=5``."""
    return f"#{run.run_id} {run.strategy} k={run.num_negatives}"


@dataclass(frozen=True)
class RunComparison:
    """Two runs side by side.

    Attributes:
        overlap: one row per query: negatives in a, in b, in both, Jaccard (1 = identical sets).
        summary: measure, value: shared queries, negatives in a and b, in both, mean Jaccard.
        margins: run (label), margin (pos_score - score, higher = easier negative) per selected
            negative of either run.
    """

    overlap: pd.DataFrame
    summary: pd.DataFrame
    margins: pd.DataFrame


def exports_quality(store: Store, run_ids: list[int]) -> pd.DataFrame:
    """One row per run: how hard and how suspect a default export of it is now (decisions
    applied, the run's k; ``core.export.run_quality``)."""
    rows = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        q = run_quality(store, run_id)
        rows.append({"run": run_label(run), "negatives": q["negatives"],
                     "hardness": q["hardness"],
                     "of the pool's hardest k": q["relative_hardness"],
                     "mean suspicion": q["mean_suspicion"],
                     f"above suspicion {q['flag_threshold']:.2f}": q["flagged"]})
    return pd.DataFrame(rows)


def _selected(store: Store, run: RunInfo) -> pd.DataFrame:
    pool = store.run_candidates(run.run_id)
    chosen = pool[pool["selected"]].copy()
    chosen["margin"] = chosen["pos_score"] - chosen["score"]
    return chosen[["query_id", "doc_id", "query_hash", "doc_hash", "score", "margin"]]


def _finished_pair(store: Store, run_a: int, run_b: int) -> list[RunInfo]:
    """The two runs to compare, refusing the same run twice or an unfinished one."""
    if run_a == run_b:
        raise WorkbenchError("pick two different runs to compare")
    runs = [store.get_run(run_a), store.get_run(run_b)]
    for run in runs:
        if run.status != "done":
            raise WorkbenchError(f"run {run.run_id} is {run.status}; only finished runs compare")
    return runs


def compare_runs(store: Store, run_a: int, run_b: int) -> RunComparison:
    """Compare the negatives two runs selected.

    Pairs are matched by the texts' content hashes, so runs over two versions of a dataset compare.

    Raises:
        WorkbenchError: the same run twice, an unknown or unfinished run.
    """
    runs = _finished_pair(store, run_a, run_b)
    a, b = (_selected(store, r) for r in runs)
    sets_a = a.groupby("query_hash")["doc_hash"].agg(set)
    sets_b = b.groupby("query_hash")["doc_hash"].agg(set)
    queries = sorted(set(sets_a.index) | set(sets_b.index))
    query_ids = {**dict(zip(b["query_hash"], b["query_id"])),
                 **dict(zip(a["query_hash"], a["query_id"]))}
    rows = []
    for q in queries:
        sa, sb = sets_a.get(q, set()), sets_b.get(q, set())
        union = len(sa | sb)
        rows.append({"query_id": query_ids[q], "in a": len(sa), "in b": len(sb),
                     "in both": len(sa & sb), "jaccard": len(sa & sb) / union if union else 1.0})
    overlap = pd.DataFrame(rows, columns=["query_id", "in a", "in b", "in both", "jaccard"])
    shared = set(sets_a.index) & set(sets_b.index)
    summary = pd.DataFrame({
        "measure": ["queries in both runs", f"negatives in run {run_a}",
                    f"negatives in run {run_b}", "negatives in both", "mean Jaccard per query"],
        "value": [len(shared), len(a), len(b), int(overlap["in both"].sum()),
                  round(float(overlap["jaccard"].mean()), 3) if len(overlap) else 0.0],
    })
    margins = pd.concat([a.assign(run=run_label(runs[0])), b.assign(run=run_label(runs[1]))],
                        ignore_index=True)[["run", "query_id", "doc_id", "score", "margin"]]
    return RunComparison(overlap, summary, margins)


def selection_overlap(store: Store, run_a: int, run_b: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``compare_runs``'s overlap and summary, computed in SQL for runs of one dataset version.

    Pairs are matched by ids (the runs share a dataset), so runs of millions of candidates compare
    without reading them into memory.

    Returns:
        (overlap: query_id, in a, in b, in both, jaccard; summary: measure, value).

    Raises:
        WorkbenchError: the same run twice, an unfinished run, or runs of different datasets.
    """
    runs = _finished_pair(store, run_a, run_b)
    if runs[0].dataset_id != runs[1].dataset_id:
        raise WorkbenchError(f"runs {run_a} and {run_b} mined different dataset versions; "
                             "compare them with compare_runs, which matches texts")
    overlap = store.selected_overlap(run_a, run_b, runs[0].dataset_id).rename(
        columns={"in_a": "in a", "in_b": "in b", "in_both": "in both"})
    union = overlap["in a"] + overlap["in b"] - overlap["in both"]
    overlap["jaccard"] = (overlap["in both"] / union.where(union > 0)).fillna(1.0)
    shared = int(((overlap["in a"] > 0) & (overlap["in b"] > 0)).sum())
    summary = pd.DataFrame({
        "measure": ["queries in both runs", f"negatives in run {run_a}",
                    f"negatives in run {run_b}", "negatives in both", "mean Jaccard per query"],
        "value": [shared, int(overlap["in a"].sum()), int(overlap["in b"].sum()),
                  int(overlap["in both"].sum()),
                  round(float(overlap["jaccard"].mean()), 3) if len(overlap) else 0.0],
    })
    return overlap, summary
