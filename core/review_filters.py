"""The Review page's queue: core's order narrowed by the page's filters, a map selection, skips."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from core.review import QueueFilters, review_head, review_queue
from core.store import Store

# The queue's order (``core.review.review_queue``): the hard set first, most suspicious first.
QUEUE_ORDER = ["hard_set", "priority", "score", "query_id", "doc_id"]
QUEUE_ASCENDING = [False, False, False, True, True]
_KIND_END = re.compile(r"""\s['"]|[(0-9]""")  # an opening quote, a parenthesis or a number


@dataclass(frozen=True)
class ReviewScope:
    """What the reviewer is looking at.

    Attributes:
        filters: core's queue filters (unreviewed only, query, reason, annotator, cluster queries).
        pairs: only these (query_id, doc_id) pairs (a selection sent from the map); None: all.
        skipped: pairs skipped in this session, moved to the end of the queue.
        reason_kind: only candidates with a reason of this kind (see ``reason_kind``).
        in_given_order: ``pairs`` are shown in their given order, not the queue's (an audit's
            random order, where every prefix must stay a uniform sample).
    """

    filters: QueueFilters = QueueFilters()
    pairs: tuple[tuple[str, str], ...] | None = None
    skipped: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    reason_kind: str | None = None
    in_given_order: bool = False


def reason_kind(reason: str) -> str:
    """The kind of a readable reason: its words before any quote, number or parenthesis.

    "labeled positive of the similar query 'x' (cosine 0.93)" -> "labeled positive of the
    similar query"; "scores 1.02 x the positive" -> "scores".
    """
    return _KIND_END.split(reason, maxsplit=1)[0].strip()


def _kinds(value: object) -> set[str]:
    if not isinstance(value, str):
        return set()
    try:
        parsed = json.loads(value)
    except ValueError:
        return set()
    return {reason_kind(str(r)) for r in parsed} if isinstance(parsed, list) else set()


def scoped_queue(store: Store, run_id: int, scope: ReviewScope) -> pd.DataFrame:
    """The run's review queue in core's order, narrowed to ``scope``; skipped pairs go last."""
    filters = scope.filters
    if scope.pairs is not None:  # only the pairs' queries are read (a query's order is its own)
        queries = {q for q, _ in scope.pairs}
        if filters.query_ids is not None:
            queries &= set(filters.query_ids)
        filters = replace(filters, query_ids=tuple(sorted(queries)))
    queue = review_queue(store, run_id, filters)
    if scope.reason_kind:
        queue = queue[queue["reasons"].map(lambda v: scope.reason_kind in _kinds(v))]
    keys = list(zip(queue["query_id"], queue["doc_id"]))
    if scope.pairs is not None:
        place = {pair: i for i, pair in enumerate(scope.pairs)}
        queue = queue[np.array([k in place for k in keys], dtype=bool)]  # (a list [] = no column)
        if scope.in_given_order:
            order = [place[k] for k in zip(queue["query_id"], queue["doc_id"])]
            queue = queue.iloc[np.argsort(order, kind="stable")]
        keys = list(zip(queue["query_id"], queue["doc_id"]))
    skipped = pd.Series([k in scope.skipped for k in keys], index=queue.index, dtype=bool)
    return pd.concat([queue[~skipped], queue[skipped]]).reset_index(drop=True)


@dataclass(frozen=True)
class QueueHead:
    """The first rows of a scoped queue and how many rows the whole queue holds."""

    rows: pd.DataFrame
    total: int


def queue_head(store: Store, run_id: int, scope: ReviewScope, limit: int = 50) -> QueueHead:
    """The first ``limit`` rows of ``scoped_queue`` and its length.

    The page's default scope (unreviewed only, at most one query, a reason kind, this
    session's skips) is answered in SQL (``core.review.review_head``,
    ``Store.count_undecided``): fast on pools of millions of pairs. So is every pair, reviewed
    ones included, with at most a reason kind: the undecided head merged with the decided pairs,
    read from the queries that hold them (``_with_reviewed``). Other scopes (a cluster, a map
    selection, a reason's text) read their queries' pools, or the run's.
    """
    f = scope.filters
    if (not f.unreviewed_only and not f.decided_by and not f.reason and f.query_ids is None
            and f.query_id is None and scope.pairs is None):
        return _with_reviewed(store, run_id, scope, limit)
    if (not f.unreviewed_only or f.decided_by or f.reason or f.query_ids is not None
            or scope.pairs is not None):
        queue = scoped_queue(store, run_id, scope)
        return QueueHead(queue.head(limit).reset_index(drop=True), len(queue))
    run = store.get_run(run_id)
    total = store.count_undecided(run.run_id, run.dataset_id, f.query_id, scope.reason_kind)
    # Skipped pairs go last: with ``limit`` more rows than skips, the first ``limit`` unskipped
    # rows are among them unless the queue is shorter, and then it is all here.
    rows = review_head(store, run.run_id, limit + len(scope.skipped), f.query_id,
                       reason_kind=scope.reason_kind)
    return QueueHead(_skipped_last(rows, scope.skipped, limit), total)


def _skipped_last(rows: pd.DataFrame, skipped: frozenset, limit: int) -> pd.DataFrame:
    """The first ``limit`` of ``rows`` with the ``skipped`` pairs moved last."""
    last = pd.Series([k in skipped for k in zip(rows["query_id"], rows["doc_id"])],
                     index=rows.index, dtype=bool)
    return pd.concat([rows[~last], rows[last]]).head(limit).reset_index(drop=True)


def _with_reviewed(store: Store, run_id: int, scope: ReviewScope, limit: int) -> QueueHead:
    """``queue_head`` of every pair, reviewed ones included (``scope.reason_kind`` narrowing):
    the undecided head in SQL merged with the decided pairs, read from the queries holding them
    (each query's order is its own). Reading the whole pool took about 11 s at a million."""
    run = store.get_run(run_id)
    kind = scope.reason_kind
    undecided = review_head(store, run.run_id, limit + len(scope.skipped), reason_kind=kind)
    queries = tuple(store.decided_query_ids(run.dataset_id))
    decided = undecided.head(0)
    if queries:
        read = scoped_queue(store, run.run_id, ReviewScope(
            replace(scope.filters, query_ids=queries), reason_kind=kind))
        decided = read.loc[read["decision"].notna(), list(undecided.columns)]
    total = store.count_undecided(run.run_id, run.dataset_id, None, kind) + len(decided)
    rows = pd.concat([p for p in (undecided, decided) if len(p)] or [undecided],
                     ignore_index=True)
    rows = rows.sort_values(QUEUE_ORDER, ascending=QUEUE_ASCENDING, kind="stable")
    return QueueHead(_skipped_last(rows, scope.skipped, limit), total)


def queue_reason_kinds(store: Store, run_id: int) -> list[str]:
    """The distinct kinds of suspicion reasons in a run's pool (empty until the run is scored)."""
    return store.reason_kinds(store.get_run(run_id).run_id)


def queue_table(queue: pd.DataFrame, limit: int = 200) -> pd.DataFrame:
    """The queue's first rows, the columns a reviewer scans (texts stay on the card); reasons
    as one readable line ("; " between them), not their stored JSON."""
    columns = [c for c in ("query_id", "doc_id", "rank", "score", "pos_score", "margin",
                           "suspicion", "reasons", "would_export", "decision", "decided_by")
               if c in queue.columns]
    table = queue[columns].head(limit)
    if "reasons" in table.columns:
        table = table.assign(reasons=table["reasons"].map(_reasons_line))
    return table


def _reasons_line(value: object) -> str | None:
    """Stored reasons (a JSON list) as one line; None for none."""
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return "; ".join(str(r) for r in parsed) if isinstance(parsed, list) else value
