"""Learn suspicion from annotators' decisions: a calibrated classifier over the detector signals."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.store import Store

MIN_PER_LABEL = 20
FOLDS = 5


@dataclass(frozen=True)
class LearnReport:
    """What learning did. ``cv_auc``: cross-validated ROC-AUC on the decisions (higher is
    better; 0.5 is chance); ``rescored``: candidates whose suspicion was replaced."""

    run_id: int
    false_negatives: int
    hard_negatives: int
    cv_auc: float
    rescored: int
    features: list[str]


def _model():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Logistic regression is calibrated by construction and stable on a few dozen labels.
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


def signal_matrix(pool: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Feature matrix from the pool's stored ``signals`` JSON (plus the positive's score)."""
    if pool["signals"].isna().any():
        raise WorkbenchError("the run has candidates without suspicion signals; mine it again")
    parsed = [json.loads(s) for s in pool["signals"]]
    names = sorted(parsed[0]) if parsed else []
    matrix = np.array([[row.get(n, 0.0) for n in names] for row in parsed], dtype=np.float64)
    matrix = np.column_stack([matrix, pool["pos_score"].to_numpy(dtype=np.float64)])
    return matrix, [*names, "pos_score"]


def learn_from_decisions(store: Store, run_id: int | None = None,
                         min_per_label: int = MIN_PER_LABEL) -> LearnReport:
    """Fit a classifier on the run's decided candidates and re-score every candidate.

    Decided candidates get out-of-fold predictions (a model never scores a candidate it was
    trained on); the others get the model fitted on all decisions. Unsure decisions are ignored.

    Raises:
        WorkbenchError: fewer than ``min_per_label`` decisions of either label.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import roc_auc_score

    run = store.get_run(run_id)
    pool = store.run_candidates(run.run_id).drop_duplicates(["query_id", "doc_id"])
    pool = pool[pool["suspicion"].notna()].reset_index(drop=True)
    labels = pool["decision"].map({"false_negative": 1, "hard_negative": 0})
    decided = labels.notna().to_numpy()
    n_fn = int((labels == 1).sum())
    n_hn = int((labels == 0).sum())
    if min(n_fn, n_hn) < min_per_label:
        raise WorkbenchError(
            f"learning needs at least {min_per_label} false-negative and {min_per_label} "
            f"hard-negative decisions on run {run.run_id}; it has {n_fn} and {n_hn}")
    x, names = signal_matrix(pool)
    y = labels[decided].to_numpy(dtype=int)
    folds = StratifiedKFold(n_splits=min(FOLDS, n_fn, n_hn), shuffle=True, random_state=0)
    out_of_fold = cross_val_predict(_model(), x[decided], y, cv=folds, method="predict_proba")[:, 1]
    cv_auc = float(roc_auc_score(y, out_of_fold))
    model = _model().fit(x[decided], y)
    probability = np.empty(len(pool), dtype=np.float64)
    probability[decided] = out_of_fold
    probability[~decided] = model.predict_proba(x[~decided])[:, 1]
    note = f"model learned from {n_fn + n_hn} decisions (cross-validated ROC-AUC {cv_auc:.2f})"
    reasons = [json.dumps([f"{note}: p = {p:.2f}", *json.loads(r or "[]")][:4])
               for p, r in zip(probability, pool["reasons"])]
    store.put_suspicion(run.run_id, pd.DataFrame({
        "query_id": pool["query_id"], "doc_id": pool["doc_id"],
        "suspicion": probability.astype(np.float32), "reasons": reasons,
        "signals": pool["signals"],
    }), "learned")
    return LearnReport(run.run_id, n_fn, n_hn, cv_auc, len(pool), names)
