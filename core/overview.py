"""What a workspace holds, as tables the app and notebooks can show."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.audit import audit_report
from core.errors import WorkbenchError
from core.runs import run_choice
from core.store import LABELS, Store


@dataclass(frozen=True)
class WorkspaceSummary:
    """Datasets, runs and per-annotator decision counts of one workspace."""

    datasets: pd.DataFrame
    runs: pd.DataFrame
    annotators: pd.DataFrame


def workspace_summary(path: str | Path) -> WorkspaceSummary:
    """Summarise a workspace file.

    Raises:
        WorkbenchError: the file does not exist or cannot be opened.
    """
    if not Path(path).is_file():
        raise WorkbenchError(f"workspace {path} does not exist; build it with `make sample` "
                             "or ingest a dataset into it")
    store = Store(path)
    datasets = pd.DataFrame([{
        "id": d.dataset_id, "name": d.name, "format": d.format, "queries": d.n_queries,
        "documents": d.n_documents, "positives": d.n_positives, "source": d.source,
    } for d in store.list_datasets()])
    audited = _audit_estimates(store)
    runs = pd.DataFrame([{
        "run": r.run_id, "status": r.status, "strategy": r.strategy,
        "params": json.dumps(r.params), "chosen": run_choice(r), "k": r.num_negatives,
        "queries": r.n_queries,
        "short": len(r.short_queries), "model": r.model,
        "seconds": round(r.timings.get("total", 0.0), 1),
        "audited false negatives": audited.get(r.run_id, ""),
    } for r in store.list_runs()])
    annotators = _annotator_counts(store)
    return WorkspaceSummary(datasets, runs, annotators)


def _audit_estimates(store: Store) -> dict[int, str]:
    """Per audited run: its newest audit's estimate of the export's false-negative rate, as
    "3.9 % (1.8-7.6 %, 100 decided)", or how far the audit is before any estimate."""
    found: dict[int, str] = {}
    for audit in store.list_audits():  # newest first: each run keeps its newest
        if audit.run_id in found:
            continue
        report = audit_report(store, audit.audit_id)
        found[audit.run_id] = (
            f"no estimate yet (0 of {audit.size} decided)" if report.fn_rate is None else
            f"{report.fn_rate:.1%} ({report.low:.1%}-{report.high:.1%}, "
            f"{report.decided} decided)")
    return found


def _annotator_counts(store: Store) -> pd.DataFrame:
    """Per annotator: live decisions (their latest per pair) in total and per label."""
    decisions = store.annotator_decisions()
    columns = ["annotator", "decisions", *LABELS]
    if decisions.empty:
        return pd.DataFrame(columns=columns)
    counts = decisions.pivot_table(index="annotator", columns="label", values="decision_id",
                                   aggfunc="count", fill_value=0).reindex(columns=list(LABELS),
                                                                          fill_value=0)
    counts.insert(0, "decisions", counts.sum(axis=1))
    return counts.reset_index()[columns]
