"""The Review page's Reason and Decided-by filters on a large run: the queue head as the page
reads it now against the whole pool read and filtered in pandas (how both were answered before
session 9), side by side.

For every reason kind of the run (``--kinds`` to pick some), times ``queue_head`` with that
kind, answered in SQL, and ``scoped_queue``, the whole-pool answer; with ``--annotator NAME``,
also the queue of that annotator's decisions (read from the queries they decided) against the
whole pool filtered. Medians of ``--repeats`` after one untimed call; both ways must give the
same first rows and length. Needs a scored run, e.g. the workspace bench/scale.py builds:

    .venv/bin/python bench/review_filters_at_size.py --workspace data/workspaces/bench/scale-1m.duckdb
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
from core.review import QueueFilters, review_queue  # noqa: E402
from core.review_filters import ReviewScope, queue_head, scoped_queue  # noqa: E402
from core.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--kinds", help="comma-separated reason kinds (default: all the run's; "
                        "\"\": none)")
    parser.add_argument("--annotator", help="also time the queue of this annotator's decisions")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.workspace.is_file():
        parser.error(f"--workspace {args.workspace} is not a workspace file")
    store = Store(args.workspace)
    run = store.get_run()
    kinds = ([k for k in args.kinds.split(",") if k] if args.kinds is not None
             else store.reason_kinds(run.run_id))  # --kinds "": none
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
    if args.annotator:
        scope = ReviewScope(QueueFilters(decided_by=args.annotator))
        head_s, head = timed_median(lambda: queue_head(store, run.run_id, scope, 50),
                                    args.repeats)

        def whole_pool():
            queue = review_queue(store, run.run_id, QueueFilters(unreviewed_only=False))
            return queue[queue["decided_by"] == args.annotator]

        whole_s, whole = timed_median(whole_pool, args.repeats)
        same = (list(zip(head.rows["query_id"], head.rows["doc_id"]))
                == list(zip(whole["query_id"], whole["doc_id"]))[:50]
                and head.total == len(whole))
        report({"bench": "decided-by-filter", "candidates": store.count_candidates(run.run_id),
                "annotator": args.annotator, "queue": head.total,
                "decided_queries_head_s": round(head_s, 3), "whole_pool_s": round(whole_s, 3),
                "speedup": round(whole_s / head_s, 1), "same_rows": same,
                "load_1min": round(os.getloadavg()[0], 2)}, args.json)


if __name__ == "__main__":
    main()
