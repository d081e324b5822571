"""What a workspace holds, as tables the app and notebooks can show."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import WorkbenchError
from core.store import Store


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
    runs = pd.DataFrame([{
        "run": r.run_id, "status": r.status, "strategy": r.strategy,
        "params": json.dumps(r.params), "k": r.num_negatives, "queries": r.n_queries,
        "short": len(r.short_queries), "model": r.model,
        "seconds": round(r.timings.get("total", 0.0), 1),
    } for r in store.list_runs()])
    log = store.latest_decisions()
    annotators = pd.DataFrame([{"annotator": d.annotator, "label": d.label} for d in log])
    if annotators.empty:
        annotators = pd.DataFrame(columns=["annotator", "decisions"])
    else:
        annotators = annotators.groupby("annotator").size().rename("decisions").reset_index()
    return WorkspaceSummary(datasets, runs, annotators)
