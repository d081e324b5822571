"""The Review page's Reason and Decided-by filters on a large run: the queue head as the page
reads it now against the whole pool read and filtered in pandas (how both were answered before
session 9), side by side.

For every reason kind of the run (``--kinds`` to pick some), times ``queue_head`` with that
kind, answered in SQL, and ``scoped_queue``, the whole-pool answer; with ``--annotator NAME``,
also the queue of that annotator's decisions (read from the queries they decided) against the
whole pool filtered. Medians of ``--repeats`` after one untimed call; both ways must give the
same first rows and length. With ``--decisions N``, also walks N decisions (hard, false,
unsure in turn) down each kind's queue on a copy of the workspace, then N more, timing each
decision and the next card: the queue cache kept through the page's own decisions
(``record_decision``, ``cached_head``) against the decision alone and a fresh SQL read of the
head (how the page served a reason kind before session 10); every card must be the fresh
queue's. With ``--reviewed``, also times the queue of every pair, reviewed ones included
(``queue_head``: the decided pairs read from their queries) against the whole pool read. Needs
a scored run, e.g. the workspace bench/scale.py builds:

    .venv/bin/python bench/review_filters_at_size.py --workspace data/workspaces/bench/scale-1m.duckdb
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import report  # noqa: E402
from bench.scale import timed_median  # noqa: E402
from core.review import QueueFilters, decide, review_queue  # noqa: E402
from core.review_filters import ReviewScope, queue_head, scoped_queue  # noqa: E402
from core.review_prefetch import cached_head, record_decision  # noqa: E402
from core.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--kinds", help="comma-separated reason kinds (default: all the run's; "
                        "\"\": none)")
    parser.add_argument("--annotator", help="also time the queue of this annotator's decisions")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reviewed", action="store_true",
                        help="also time the queue of every pair, reviewed ones included")
    parser.add_argument("--decisions", type=int, default=0,
                        help="also walk this many decisions down each kind's queue (on a copy)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.workspace.is_file():
        parser.error(f"--workspace {args.workspace} is not a workspace file")
    store = Store(args.workspace)
    run = store.get_run()
    kinds = ([k for k in args.kinds.split(",") if k] if args.kinds is not None
             else store.reason_kinds(run.run_id))  # --kinds "": none
    candidates = store.count_candidates(run.run_id)
    for kind in kinds:
        scope = ReviewScope(reason_kind=kind)
        sql_s, head, whole_s, _, same = _side_by_side(
            store, run.run_id, scope, lambda: scoped_queue(store, run.run_id, scope), args.repeats)
        report({"bench": "reason-filter", "candidates": candidates, "kind": kind,
                "queue": head.total, "sql_head_s": round(sql_s, 3),
                "whole_pool_s": round(whole_s, 3), "speedup": round(whole_s / sql_s, 1),
                "same_rows": same, "load_1min": round(os.getloadavg()[0], 2)}, args.json)
    if args.reviewed:
        scope = ReviewScope(QueueFilters(unreviewed_only=False))
        head_s, head, whole_s, whole, same = _side_by_side(
            store, run.run_id, scope, lambda: scoped_queue(store, run.run_id, scope), args.repeats)
        report({"bench": "reviewed-pairs", "candidates": candidates,
                "decided": int(whole["decision"].notna().sum()), "queue": head.total,
                "decided_queries_head_s": round(head_s, 3), "whole_pool_s": round(whole_s, 3),
                "speedup": round(whole_s / head_s, 1), "same_rows": same,
                "load_1min": round(os.getloadavg()[0], 2)}, args.json)
    if args.decisions:
        with tempfile.TemporaryDirectory(prefix="filters-") as tmp:
            copy = Path(tmp) / args.workspace.name
            shutil.copyfile(args.workspace, copy)
            for kind in kinds:
                report(_walk(Store(copy), kind, args.decisions), args.json)
    if args.annotator:
        def whole_pool():
            queue = review_queue(store, run.run_id, QueueFilters(unreviewed_only=False))
            return queue[queue["decided_by"] == args.annotator]

        head_s, head, whole_s, _, same = _side_by_side(
            store, run.run_id, ReviewScope(QueueFilters(decided_by=args.annotator)), whole_pool,
            args.repeats)
        report({"bench": "decided-by-filter", "candidates": candidates,
                "annotator": args.annotator, "queue": head.total,
                "decided_queries_head_s": round(head_s, 3), "whole_pool_s": round(whole_s, 3),
                "speedup": round(whole_s / head_s, 1), "same_rows": same,
                "load_1min": round(os.getloadavg()[0], 2)}, args.json)


def _side_by_side(store: Store, run_id: int, scope: ReviewScope, whole_pool,
                  repeats: int) -> tuple:
    """(seconds, head) of ``queue_head`` for ``scope``, (seconds, queue) of ``whole_pool()`` (the
    same queue from the whole pool), and whether both give the same first 50 rows and length."""
    head_s, head = timed_median(lambda: queue_head(store, run_id, scope, 50), repeats)
    whole_s, whole = timed_median(whole_pool, repeats)
    same = (list(zip(head.rows["query_id"], head.rows["doc_id"]))
            == list(zip(whole["query_id"], whole["doc_id"]))[:50] and head.total == len(whole))
    return head_s, head, whole_s, whole, same

def _walk(store: Store, kind: str, decisions: int) -> dict:
    """Per decision down ``kind``'s queue, the time from the decision to the next card: first
    ``decisions`` with the queue cache kept through each decision, then as many recorded without
    a cache and the head read afresh (the page before session 10). Each next card must be the
    fresh queue's."""
    run = store.get_run()
    scope = ReviewScope(reason_kind=kind)
    labels = ("hard_negative", "false_negative", "unsure")
    head, cache = cached_head(store, run.run_id, scope, None)  # the first card: a read either way
    times: dict[bool, list[float]] = {True: [], False: []}
    same = True
    for i in range(2 * decisions):
        row, kept = head.rows.iloc[0], i < decisions
        start = time.perf_counter()
        if kept:
            cache = record_decision(store, run.run_id, row["query_id"], row["doc_id"],
                                    labels[i % 3], "bench", None, cache, None).queue
            head, cache = cached_head(store, run.run_id, scope, cache)
        else:
            decide(store, run.run_id, row["query_id"], row["doc_id"], labels[i % 3], "bench")
            head = queue_head(store, run.run_id, scope, 1)
        times[kept].append(time.perf_counter() - start)
        read = queue_head(store, run.run_id, scope, 1)
        same &= (list(zip(head.rows["query_id"], head.rows["doc_id"]))
                 == list(zip(read.rows["query_id"], read.rows["doc_id"]))
                 and head.total == read.total)
    kept_s, fresh_s = statistics.median(times[True]), statistics.median(times[False])
    return {"bench": "reason-filter-decisions", "candidates": store.count_candidates(run.run_id),
            "kind": kind, "decisions": decisions, "kept_cache_median_s": round(kept_s, 4),
            "kept_cache_max_s": round(max(times[True]), 3),
            "fresh_read_median_s": round(fresh_s, 3), "speedup": round(fresh_s / kept_s, 1),
            "same_rows": same, "load_1min": round(os.getloadavg()[0], 2)}

if __name__ == "__main__":
    main()
