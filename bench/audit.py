"""How well an audit estimates an export's false-negative rate (bench/RESULTS.md, "Auditing an
export").

Mines the default strategy (curated) on the labeled split as ``core.bench`` does, then draws
``--seeds`` audits of each ``--sizes`` from the run's export with ``core.audit.draw_audit``. Each
audit is answered from the full qrels (a pair is a false negative when the full judgements call
it relevant) and estimated with the interval ``core.audit.audit_report`` reports: the rows give
the export's true false-negative rate, the estimates' mean and spread, the interval's mean width
and how often it covered the truth. The same for audits stopped after their first half (a
prefix of the random order is itself a uniform sample). One audit per size also goes through the
real path, decisions recorded and ``audit_report`` read back, in a copy of the workspace, which
must give the same estimate.

    .venv/bin/python bench/audit.py --beir ../shared/datasets/cranfield --json bench/audit.jsonl
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.results import report  # noqa: E402
from core.audit import audit_pairs, audit_report, draw_audit, wilson_interval  # noqa: E402
from core.bench import BenchConfig, _export_score, _Workspaces  # noqa: E402
from core.evaluation import read_relevant  # noqa: E402
from core.review import decide  # noqa: E402
from core.store import Store  # noqa: E402


def _estimates(truth: list[bool], exported: int) -> tuple[float, float, float]:
    """(estimate, low, high) from audited pairs answered by ``truth``."""
    false = int(np.sum(truth))
    low, high = wilson_interval(false, len(truth), exported)
    return false / len(truth), low, high


def _summary(rows: list[tuple[float, float, float]], true_rate: float) -> dict:
    estimates = np.array([r[0] for r in rows])
    return {"mean_estimate": round(float(estimates.mean()), 4),
            "estimate_sd": round(float(estimates.std()), 4),
            "mean_interval_width": round(float(np.mean([r[2] - r[1] for r in rows])), 4),
            "coverage": round(float(np.mean([r[1] <= true_rate <= r[2] for r in rows])), 4)}


def _end_to_end(store: Store, run_id: int, audit_id: int, relevant: set, tmp: Path) -> float:
    """The audit decided through ``core.review.decide`` in a copy, read by ``audit_report``."""
    copy = tmp / f"audit-{audit_id}.duckdb"
    shutil.copy(store.path, copy)
    with Store(copy) as other:
        for query_id, doc_id in audit_pairs(other, audit_id):
            label = "false_negative" if (query_id, doc_id) in relevant else "hard_negative"
            decide(other, run_id, query_id, doc_id, label, "simulated-annotator")
        return audit_report(other, audit_id).fn_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("data/workspaces/bench-cache.duckdb"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    relevant = read_relevant(args.beir / "qrels" / "test.tsv")
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        config = BenchConfig(beir=args.beir, cache=args.cache)
        store, run = _Workspaces(config, Path(tmp)).mined("curated")
        true_rate = _export_score(store, run.run_id, relevant, config.k)["fn_rate"]
        for size in (int(s) for s in args.sizes.split(",")):
            whole, half = [], []
            for seed in range(args.seeds):
                audit = draw_audit(store, run.run_id, size, seed)
                truth = [p in relevant for p in audit_pairs(store, audit.audit_id)]
                whole.append(_estimates(truth, audit.exported))
                half.append(_estimates(truth[:max(1, size // 2)], audit.exported))
            first = store.list_audits(run.run_id)[args.seeds - 1]  # this size's seed 0
            store.close()
            checked = _end_to_end(store, run.run_id, first.audit_id, relevant, Path(tmp))
            store = Store(store.path)
            assert abs(checked - whole[0][0]) < 1e-12, (checked, whole[0][0])
            for stopped, rows in (("whole", whole), ("first half", half)):
                report({"dataset": args.beir.name, "strategy": run.strategy,
                        "exported": first.exported, "true_fn_rate": round(true_rate, 4),
                        "audit_size": size if stopped == "whole" else max(1, size // 2),
                        "stopped": stopped, "seeds": args.seeds,
                        **_summary(rows, true_rate)}, args.json)


if __name__ == "__main__":
    main()
