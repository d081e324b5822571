"""Curated at the hardness a user asks for, against NV-Retriever's positive-aware filter at the
same hardness (bench/RESULTS.md, "Asking for a hardness").

Mines on the labeled split as ``core.bench`` does, then from the same stored pool: curated with
``min_relative_hardness`` at each ``--targets`` value (the run chooses its suspicion threshold),
curated at its default threshold, and positive_aware (TopK-PercPos) at each ``--percents``
ceiling. Every export is scored against the full qrels (fn_rate, hardness, filled) and its
hardness read as a share of plain top-k's on the same pool, so the two filters' trade-offs can
be compared at equal hardness.

    .venv/bin/python bench/curated_hardness.py --beir ../shared/datasets/cranfield \
        --json bench/curated-hardness.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.results import report  # noqa: E402
from core.bench import BenchConfig, _export_score, _Workspaces  # noqa: E402
from core.evaluation import read_relevant  # noqa: E402
from core.mine import mine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--targets", default="0.7,0.75,0.8,0.85,0.9,0.95")
    parser.add_argument("--percents", default="0.8,0.85,0.9,0.95,1.0")
    parser.add_argument("--cache", type=Path, default=Path("data/workspaces/bench-cache.duckdb"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    relevant = read_relevant(args.beir / "qrels" / "test.tsv")
    with tempfile.TemporaryDirectory(prefix="hardness-") as tmp:
        config = BenchConfig(beir=args.beir, k=args.k, cache=args.cache)
        store, top = _Workspaces(config, Path(tmp)).mined()
        top_hardness = _export_score(store, top.run_id, relevant, args.k)["hardness"]
        settings = [("curated", {"min_relative_hardness": float(t)})
                    for t in args.targets.split(",")]
        settings += [("curated", {})]
        settings += [("positive_aware", {"mode": "percent", "threshold": float(p)})
                     for p in args.percents.split(",")]
        for strategy, params in settings:
            run = mine(store, config.request(strategy, params))
            score = _export_score(store, run.run_id, relevant, args.k)
            choice = run.search.get("strategy_choice", {})
            report({"dataset": args.beir.name, "k": args.k, "strategy": strategy,
                    "params": params, "chosen_max_suspicion": choice.get("max_suspicion"),
                    "relative_hardness": round(score["hardness"] / top_hardness, 4),
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in score.items()}},
                   args.json)


if __name__ == "__main__":
    main()
