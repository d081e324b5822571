"""Learned suspicion variants on the hidden-positive benchmark's learning phase (bench/RESULTS.md).

Mines top_k in a fresh workspace as ``core.bench`` does, lets the simulated annotator decide N
candidates in review-queue order, then scores the held-out top-50 candidates with each model
variant in memory (no store writes), so variants compare on the same decisions and candidates
(held-out candidates are undecided, so in-sample fits score them as the landed model does).
Also the ceiling: the monotone model fit on every label of half the queries, scored on the rest.
``--audit A``: the last A of the N decisions are an audit of the run's export instead
(``core.audit.draw_audit``, seed 0, answered from the full qrels): a random sample of what the
export takes, where the queue takes its most suspicious pairs first.

    .venv/bin/python bench/learning_replay.py --beir ../shared/datasets/cranfield --decisions 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.audit import draw_audit  # noqa: E402
from core.bench import BenchConfig, _simulate_reviews, _Workspaces  # noqa: E402
from core.evaluation import read_relevant  # noqa: E402
from core.false_negatives.learning import (  # noqa: E402
    MonotoneLogistic, cold_suspicion, learned_suspicion, query_effect, signal_matrix,
)
from core.review import decide  # noqa: E402


def query_share(queries: np.ndarray, labels: np.ndarray, prior: float = 2.0) -> np.ndarray:
    """Session 4's query feature: log of the query's false-negative share among its *other*
    decided candidates (smoothed by ``prior`` pseudo-decisions at the run's share), over the run's
    share; replaced by ``query_effect`` in session 5."""
    known = ~np.isnan(labels)
    share = float(np.clip(labels[known].mean(), 1e-3, 1 - 1e-3)) if known.any() else 0.5
    codes, uniques = pd.factorize(pd.Series(queries))
    own = np.where(known, labels, 0.0)
    fn = np.bincount(codes, weights=own, minlength=len(uniques))[codes] - own
    n = np.bincount(codes, weights=known.astype(float), minlength=len(uniques))[codes] - known
    return np.log((fn + prior * share) / (n + prior) / share)


def _simulate_audit(store, run_id: int, relevant: set, size: int) -> None:
    """Decide an audit of ``size`` of the export's undecided negatives, answered from the qrels
    (drawn larger when the queue already decided some of them)."""
    audit = draw_audit(store, run_id, 4 * size, seed=0)
    undecided = store.audit_outcomes(audit.audit_id)
    undecided = undecided[undecided["decision"].isna()].head(size)
    for query_id, doc_id in zip(undecided["query_id"], undecided["doc_id"]):
        label = "false_negative" if (query_id, doc_id) in relevant else "hard_negative"
        decide(store, run_id, query_id, doc_id, label, "simulated-auditor")


def _variants(x, names, cold, queries, labels) -> dict[str, np.ndarray]:
    decided = ~np.isnan(labels)
    y = labels[decided]
    with_rate = np.column_stack([x, query_share(queries, labels)])
    offset = np.log(np.clip(cold, 1e-3, 1 - 1e-3) / np.clip(1 - cold, 1e-3, 1))
    shifted = offset + query_effect(queries, labels, offset)
    landed = learned_suspicion(x, names, cold, queries, labels)
    print(f"  cross-validated ROC-AUC on the decisions {landed.cv_auc:.3f}; corrections "
          f"applied: {landed.corrections}")
    return {
        "monotone (session 2)": MonotoneLogistic().fit(x[decided], y).predict_proba(x),
        "+ query share": MonotoneLogistic().fit(with_rate[decided], y).predict_proba(with_rate),
        "anchored": MonotoneLogistic().fit(x[decided], y, offset[decided]).predict_proba(
            x, offset),
        "anchored + query share (session 4)": MonotoneLogistic().fit(
            with_rate[decided], y, offset[decided]).predict_proba(with_rate, offset),
        "cold + query effect only": 1.0 / (1.0 + np.exp(-shifted)),
        "anchored + query effect, always (session 5)": MonotoneLogistic().fit(
            x[decided], y, shifted[decided]).predict_proba(x, shifted),
        "corrections only when CV beats chance (landed)": landed.probability,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--audit", type=int, default=0,
                        help="decisions of the N taken as an audit of the export (0)")
    parser.add_argument("--cache", type=Path, default=Path("data/workspaces/bench-cache.duckdb"))
    args = parser.parse_args()
    relevant = read_relevant(args.beir / "qrels" / "test.tsv")
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        store, run = _Workspaces(BenchConfig(beir=args.beir, cache=args.cache), Path(tmp)).mined()
        cold_pool = store.run_candidates(run.run_id).drop_duplicates(["query_id", "doc_id"])
        done = _simulate_reviews(store, run.run_id, relevant, args.decisions - args.audit, 0)
        if args.audit:
            _simulate_audit(store, run.run_id, relevant, args.decisions - done)
        pool = store.run_candidates(run.run_id).drop_duplicates(["query_id", "doc_id"])
        pool = pool.merge(cold_pool[["query_id", "doc_id"]], on=["query_id", "doc_id"])
    pool = pool.reset_index(drop=True)
    truth = np.array([(q, d) in relevant for q, d in zip(pool["query_id"], pool["doc_id"])])
    labels = pool["decision"].map({"false_negative": 1.0, "hard_negative": 0.0}).to_numpy(float)
    top = (pool["rank"] <= 50).to_numpy()
    held = top & np.isnan(labels)
    x, names = signal_matrix(pool)
    cold = cold_suspicion(pool)
    queries = pool["query_id"].to_numpy()
    scores = {"cold suspicion": cold, "cosine": pool["score"].to_numpy(float),
              **_variants(x, names, cold, queries, labels)}
    print(f"{args.beir.name}: {args.decisions} decisions ({args.audit} of them an audit) "
          f"({int(np.nansum(labels))} false negatives), {held.sum()} held-out candidates")
    for name, s in scores.items():
        print(f"  {name:<50}{roc_auc_score(truth[held], s[held]):.3f}")
    rng = np.random.default_rng(0)
    unique = np.unique(queries)
    half = np.isin(queries, rng.choice(unique, len(unique) // 2, replace=False))
    ceiling = MonotoneLogistic().fit(x[half & top], truth[half & top].astype(float))
    print(f"  {'ceiling (all labels, half the queries)':<50}"
          f"{roc_auc_score(truth[~half & top], ceiling.predict_proba(x[~half & top])):.3f}")


if __name__ == "__main__":
    main()
