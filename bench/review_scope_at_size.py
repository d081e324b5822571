"""The Review page's queue for an audit or a map selection on a large run: reading only the
pairs' queries against reading the whole pool (bench/RESULTS.md, "Auditing an export").

Builds (or reuses) a workspace with ``--queries`` synthetic queries and a finished run of
``--depth`` random candidates each (tests/workloads.py, no model), draws an audit of ``--size``
pairs, and times side by side (median of ``--repeats`` after one untimed call): the default
queue head (answered in SQL), the audit's queue head as the page reads it now (``queue_head``:
its pairs' queries only), and the same queue read the way it was before (the whole pool's
queue, then the pairs picked); both must give the same rows.

    .venv/bin/python bench/review_scope_at_size.py --workspace data/workspaces/bench/scope-2m.duckdb
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import report  # noqa: E402
from bench.scale import timed_median  # noqa: E402
from core.audit import audit_pairs, draw_audit  # noqa: E402
from core.review import review_queue  # noqa: E402
from core.review_filters import ReviewScope, queue_head  # noqa: E402
from core.store import Store  # noqa: E402
from tests.workloads import build_workspace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.workspace.exists():
        with tempfile.TemporaryDirectory(prefix="scope-") as tmp:
            build_workspace(args.workspace, Path(tmp), args.queries, 5, depth=args.depth)
    store = Store(args.workspace)
    run = store.get_run()
    audit = draw_audit(store, run.run_id, args.size, seed=1)
    pairs = tuple(audit_pairs(store, audit.audit_id))
    scope = ReviewScope(pairs=pairs, in_given_order=True)
    default_s, _ = timed_median(lambda: queue_head(store, run.run_id, ReviewScope()),
                                args.repeats)
    scoped_s, head = timed_median(lambda: queue_head(store, run.run_id, scope, 1000),
                                  args.repeats)

    def whole_pool():
        queue = review_queue(store, run.run_id)
        keys = list(zip(queue["query_id"], queue["doc_id"]))
        place = {p: i for i, p in enumerate(pairs)}
        picked = queue[np.array([k in place for k in keys], dtype=bool)]
        return picked.iloc[np.argsort([place[k] for k in zip(picked["query_id"],
                                                              picked["doc_id"])])]

    whole_s, old = timed_median(whole_pool, args.repeats)
    same = list(zip(head.rows["query_id"], head.rows["doc_id"])) == list(
        zip(old["query_id"], old["doc_id"]))
    report({"candidates": store.count_candidates(run.run_id), "audit_size": len(pairs),
            "default_head_s": round(default_s, 3), "audit_head_s": round(scoped_s, 3),
            "audit_whole_pool_s": round(whole_s, 3),
            "speedup": round(whole_s / scoped_s, 1), "same_rows": same,
            "load_1min": round(os.getloadavg()[0], 2)}, args.json)


if __name__ == "__main__":
    main()
