"""Each suspicion signal's weight, the probe that set it, and what it is really worth; and curated's
trade-off over thresholds (bench/RESULTS.md, "Cold suspicion, session 5").

Mines top_k on the labeled split as ``core.bench`` does, then for every weighted detector prints
the probe (the labeled positives' mean percentile within their pools, what ``Scorer.fit``
measures), the weight it gave, and the signal's real ROC-AUC for hidden positives in the top-50
pools, pooled and averaged within queries (the within-query figure is what the probe estimates).
Then the combined suspicion's ROC-AUC, against the same signals combined with equal weights
(recomputed from the stored percentiles, decisive signals included, so the two differ only in
the weights). Then mines curated at each ``--thresholds`` value from the same stored pool and
scores the export. ``--model``: mine with another sentence-transformers model (a local folder).

    .venv/bin/python bench/suspicion_signals.py --beir ../shared/datasets/cranfield \
        --json bench/suspicion-signals.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.results import report  # noqa: E402
from core.bench import BenchConfig, _export_score, _Workspaces  # noqa: E402
from core.evaluation import read_relevant  # noqa: E402
from core.false_negatives.cross_query import DECISIVE_QUERY_SIMILARITY  # noqa: E402
from core.false_negatives.positive_similarity import NEAR_DUPLICATE  # noqa: E402
from core.false_negatives.suspicion import combine_evidence  # noqa: E402
from core.mine import mine  # noqa: E402

DEPTH = 50
# The signals whose raw value raises the suspicion on its own, and from what level.
DECISIVE = (("positive_similarity", NEAR_DUPLICATE), ("cross_query", DECISIVE_QUERY_SIMILARITY))


def _combined(signals: list[dict], weights: dict[str, float]) -> np.ndarray:
    """The cold suspicion from stored signals, as ``Scorer.score`` combines them: each weighted
    signal's evidence (mean of global and per-query percentile), then the decisive signals."""
    evidence = [(w, np.array([(s[f"{n}_global_pct"] + s[f"{n}_query_pct"]) / 2 for s in signals]))
                for n, w in weights.items()]
    cold = combine_evidence(evidence, len(signals))
    for name, level in DECISIVE:
        raw = np.array([s.get(name, 0.0) for s in signals])
        cold = np.where(raw >= level, np.fmax(cold, raw), cold)
    return cold


def _auc(truth: np.ndarray, values: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, values)) if 0 < truth.sum() < len(truth) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8")
    parser.add_argument("--cache", type=Path, default=Path("data/workspaces/bench-cache.duckdb"))
    parser.add_argument("--model", help="mining model folder (default: the bundled MiniLM)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    relevant = read_relevant(args.beir / "qrels" / "test.tsv")
    with tempfile.TemporaryDirectory(prefix="signals-") as tmp:
        config = BenchConfig(beir=args.beir, cache=args.cache, model=args.model)
        store, run = _Workspaces(config, Path(tmp)).mined()
        pool = store.run_candidates(run.run_id).drop_duplicates(["query_id", "doc_id"])
        pool = pool[pool["rank"] <= DEPTH].reset_index(drop=True)
        truth = np.array([(q, d) in relevant for q, d in zip(pool["query_id"], pool["doc_id"])])
        signals = [json.loads(s) for s in pool["signals"]]
        by_query = pool.groupby("query_id").indices
        for name, info in run.search["suspicion_weights"].items():
            values = np.array([s[name] for s in signals], dtype=np.float64)
            within = [_auc(truth[i], values[i]) for i in by_query.values()]
            report({"dataset": args.beir.name, "kind": "signal", "detector": name, **info,
                    "roc_auc_pooled": round(_auc(truth, values), 4),
                    "roc_auc_within_query": round(float(np.nanmean(within)), 4)}, args.json)
        weights = {n: i["weight"] for n, i in run.search["suspicion_weights"].items()}
        report({"dataset": args.beir.name, "model": run.model, "kind": "suspicion",
                "detector": "combined",
                "roc_auc_pooled": round(_auc(truth, pool["suspicion"].to_numpy(float)), 4),
                "recomputed_roc_auc_pooled": round(_auc(truth, _combined(signals, weights)), 4),
                "equal_weights_roc_auc_pooled": round(
                    _auc(truth, _combined(signals, dict.fromkeys(weights, 1.0))), 4),
                "cosine_roc_auc_pooled": round(_auc(truth, pool["score"].to_numpy(float)), 4)},
               args.json)
        for threshold in (float(t) for t in args.thresholds.split(",")):
            curated = mine(store, config.request("curated", {"max_suspicion": threshold}))
            score = _export_score(store, curated.run_id, relevant, 5)
            report({"dataset": args.beir.name, "kind": "curated", "max_suspicion": threshold,
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in score.items()}},
                   args.json)


if __name__ == "__main__":
    main()
