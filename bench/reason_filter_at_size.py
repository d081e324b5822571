"""The Review page's Reason filter on a large run: the queue head answered in SQL against the
whole pool read and filtered in pandas (how it was answered before session 9), side by side.

For every reason kind of the run (``--kinds`` to pick some), times ``queue_head`` with that
kind (median of ``--repeats`` after one untimed call) and ``scoped_queue``, the whole-pool
answer, and checks they give the same first rows and length. Needs a scored run, e.g. the
workspace bench/scale.py builds:

    .venv/bin/python bench/reason_filter_at_size.py --workspace data/workspaces/bench/scale-1m.duckdb
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import report  # noqa: E402
from bench.scale import timed_median  # noqa: E402
from core.review_filters import ReviewScope, queue_head, scoped_queue  # noqa: E402
from core.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--kinds", help="comma-separated reason kinds (default: all the run's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.workspace.is_file():
        parser.error(f"--workspace {args.workspace} is not a workspace file")
    store = Store(args.workspace)
    run = store.get_run()
    kinds = args.kinds.split(",") if args.kinds else store.reason_kinds(run.run_id)
    for kind in kinds:
        scope = ReviewScope(reason_kind=kind)
        sql_s, head = timed_median(lambda: queue_head(store, run.run_id, scope, 50),
                                   args.repeats)
        whole_s, whole = timed_median(lambda: scoped_queue(store, run.run_id, scope),
                                      args.repeats)
        same = (list(zip(head.rows["query_id"], head.rows["doc_id"]))
                == list(zip(whole["query_id"], whole["doc_id"]))[:50]
                and head.total == len(whole))
        report({"bench": "reason-filter", "candidates": store.count_candidates(run.run_id),
                "kind": kind, "queue": head.total, "sql_head_s": round(sql_s, 3),
                "whole_pool_s": round(whole_s, 3), "speedup": round(whole_s / sql_s, 1),
                "same_rows": same, "load_1min": round(os.getloadavg()[0], 2)}, args.json)


if __name__ == "__main__":
    main()
