"""The Review page's next card without a queue read per decision.

The head of the queue is read once (``PREFETCH`` rows, with its length) and kept current through
this session's own decisions: a decision on query q changes only the queue rows of q (its hard set,
which of its rows an export takes) and of the queries with q's text (decisions are keyed by the
texts' content hashes); the others keep their places. A hard negative leaves q's hard set as it
is; a false negative or unsure brings q's next candidate in, taken from the few read with the head
(``REACH`` per query) or, once those are used up, from a read of q's rows. A queue narrowed to a
reason kind reads q's rows of that kind again instead (the candidates in reach are not narrowed).
What a card shows beyond the order (reasons, would_export: a read per query) is read when a row is
about to be shown.

The cache holds while nothing else changed the decisions or the run's suspicion scores: its
version (``Store.review_version``) is checked on every use, and any other decision, an undo
(another session's included) or a new scoring makes the next card a fresh read. The progress
counts (``core.annotation``) advance the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from core.annotation import Progress, progress_with
from core.review import decide, query_hard_rows, queue_columns, with_details
from core.review_filters import (QUEUE_ASCENDING, QUEUE_ORDER, QueueHead, ReviewScope,
                                 queue_head)
from core.store import Store

PREFETCH = 30  # rows read at once: one queue read per a few dozen decisions
REACH = 4  # candidates read beyond each cached query's hard set (see QueueCache.reach)


@dataclass(frozen=True)
class QueueCache:
    """The first rows of a run's queue as of a decisions version.

    Attributes:
        run_id: the run; scope: the scope read, without skips (they apply when serving).
        version: ``Store.review_version`` when read (or after this session's decisions).
        rows: the queue's first rows in order (``core.review.review_head``'s columns; rows whose
            would_export is None have their details read when shown).
        total: how many rows the whole queue holds.
        complete: ``rows`` are the whole queue.
        reach: per query of ``rows``, the candidates next in line for its hard set
            (``Store.hard_set_reach``), so a false negative or unsure decision needs no read.
    """

    run_id: int
    scope: ReviewScope
    version: tuple[int, int, int, str]
    rows: pd.DataFrame
    total: int
    complete: bool
    reach: pd.DataFrame | None = None


def cacheable(scope: ReviewScope) -> bool:
    """Whether the queue of ``scope`` is kept between decisions: read in SQL (see
    ``core.review_filters.queue_head``) and followed through this session's decisions. Unreviewed
    pairs, at most one query and at most one reason kind, no other filter."""
    f = scope.filters
    return (f.unreviewed_only and not f.decided_by and not f.reason and f.query_ids is None
            and scope.pairs is None)


def _unskipped(scope: ReviewScope) -> ReviewScope:
    return replace(scope, skipped=frozenset())


def _among(rows: pd.DataFrame, pairs: set | frozenset) -> pd.Series:
    """Which rows are one of ``pairs`` (query_id, doc_id)."""
    return pd.Series([k in pairs for k in zip(rows["query_id"], rows["doc_id"])],
                     index=rows.index, dtype=bool)


def _serve(cache: QueueCache, skipped: frozenset, limit: int) -> QueueHead | None:
    """The head from the cache (skipped pairs last); None when it holds too few rows."""
    rows = cache.rows
    is_skipped = _among(rows, skipped)
    if int((~is_skipped).sum()) < limit and not cache.complete:
        return None
    ordered = pd.concat([rows[~is_skipped], rows[is_skipped]])
    return QueueHead(ordered.head(limit).reset_index(drop=True), cache.total)


def _read(store: Store, run_id: int, scope: ReviewScope, size: int) -> QueueCache:
    """The queue's first ``size`` rows in order, skipped pairs in their places."""
    version = store.review_version(run_id)  # before the read: a decision meanwhile looks stale
    head = queue_head(store, run_id, scope, limit=size)
    reach = None  # a reason kind's queue reads a query again (its reach is not narrowed)
    if len(head.rows) and head.rows["hard_set"].astype(bool).all() and not scope.reason_kind:
        run = store.get_run(run_id)
        reach = store.hard_set_reach(run.run_id, run.dataset_id, run.num_negatives, REACH,
                                     list(head.rows["query_id"]))
    return QueueCache(run_id, scope, version, head.rows, head.total,
                      len(head.rows) < size or len(head.rows) >= head.total, reach)


def cached_head(store: Store, run_id: int, scope: ReviewScope, cache: QueueCache | None,
                limit: int = 1) -> tuple[QueueHead, QueueCache | None]:
    """``queue_head``'s answer, from ``cache`` while it is current; and the cache to keep.

    Scopes not read in SQL are read whole each time (no cache).
    """
    if not cacheable(scope):
        return queue_head(store, run_id, scope, limit), None
    if (cache is not None and cache.run_id == run_id and cache.scope == _unskipped(scope)
            and cache.version == store.review_version(run_id)):
        head = _serve(cache, scope.skipped, limit)
        if head is not None:
            return _detailed(store, cache, head, scope.skipped, limit)
    cache = _read(store, run_id, _unskipped(scope), max(PREFETCH, 2 * limit) + len(scope.skipped))
    head = _serve(cache, scope.skipped, limit) or QueueHead(cache.rows.head(0), cache.total)
    return _detailed(store, cache, head, scope.skipped, limit)


def _detailed(store: Store, cache: QueueCache, head: QueueHead, skipped: frozenset,
              limit: int) -> tuple[QueueHead, QueueCache]:
    """The head with the details of its rows read where missing (kept in the cache too)."""
    missing = head.rows["would_export"].isna()
    if not missing.any():
        return head, cache
    read = with_details(store, cache.run_id, head.rows[missing])
    found = {k: (r, w) for k, r, w in zip(zip(read["query_id"], read["doc_id"]), read["reasons"],
                                          read["would_export"])}
    rows = cache.rows.copy()
    for i, key in enumerate(zip(rows["query_id"], rows["doc_id"])):
        if key in found:
            rows.iat[i, rows.columns.get_loc("reasons")] = found[key][0]
            rows.iat[i, rows.columns.get_loc("would_export")] = found[key][1]
    cache = replace(cache, rows=rows)
    return _serve(cache, skipped, limit), cache


def _before_or_at(rows: pd.DataFrame, last: pd.Series) -> pd.Series:
    """Which rows come no later than ``last`` in queue order."""
    key = [(not h, -p, -s, q, d) for h, p, s, q, d in zip(*[rows[c] for c in QUEUE_ORDER])]
    end = (not last["hard_set"], -last["priority"], -last["score"], last["query_id"],
           last["doc_id"])
    return pd.Series([k <= end for k in key], index=rows.index, dtype=bool)


def _refreshed(store: Store, cache: QueueCache, queries: list[str]) -> pd.DataFrame | None:
    """The cache's rows with those of ``queries`` read again; None when that cannot be exact.

    Only a cache within the hard set qualifies: the rows read again are the queries' hard rows,
    and a query's rows after the hard set would be missing. Rows after the cache's last row are
    dropped: rows of other queries not in the cache may come before them.
    """
    rows = cache.rows
    if rows.empty or not rows["hard_set"].astype(bool).all():
        return None
    keep = rows[~rows["query_id"].isin(queries)]
    fresh = [query_hard_rows(store, cache.run_id, query_id, cache.scope.reason_kind)
             for query_id in queries]
    merged = pd.concat([p for p in [keep, *fresh] if not p.empty] or [keep], ignore_index=True)
    merged = merged.sort_values(QUEUE_ORDER, ascending=QUEUE_ASCENDING, kind="stable")
    if not cache.complete:
        merged = merged[_before_or_at(merged, rows.iloc[-1])]
    return merged.reset_index(drop=True)


def _without(reach: pd.DataFrame | None, queries: list[str]) -> pd.DataFrame | None:
    return None if reach is None else reach[~reach["query_id"].isin(queries)]


def _promoted(store: Store, cache: QueueCache, rows: pd.DataFrame,
              query_id: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """After a false negative or unsure decision on one of ``query_id``'s hard rows: the query's
    next candidate joins its hard set (and the queue, when undecided). Read again when the cache
    holds no next candidate for the query."""
    reach = cache.reach
    mine = reach[reach["query_id"].eq(query_id)] if reach is not None else None
    if mine is None or mine.empty or not cache.rows["hard_set"].astype(bool).all():
        return _refreshed(store, cache, [query_id]), _without(reach, [query_id])
    nxt = mine.iloc[0]
    reach = reach.drop(index=mine.index[0])
    if nxt["label"] is None or pd.isna(nxt["label"]):
        joined = pd.DataFrame([{c: nxt[c] for c in ("query_id", "doc_id", "rank", "score",
                                                    "pos_score", "suspicion")}])
        joined = queue_columns(joined.assign(hard_set=True))
        merged = pd.concat([rows, joined], ignore_index=True).sort_values(
            QUEUE_ORDER, ascending=QUEUE_ASCENDING, kind="stable")
        if not cache.complete:
            merged = merged[_before_or_at(merged, cache.rows.iloc[-1])]
        rows = merged.reset_index(drop=True)
    return rows, reach


@dataclass(frozen=True)
class Recorded:
    """A decision recorded from the Review page, with the caches to keep after it.

    Attributes:
        decision_id: the stored decision; queue: the queue cache advanced past it, None when the
            next card needs a fresh read; progress: the progress counts likewise.
    """

    decision_id: int
    queue: QueueCache | None
    progress: Progress | None


def record_decision(store: Store, run_id: int, query_id: str, doc_id: str, label: str,
                    annotator: str, note: str | None, queue: QueueCache | None,
                    progress: Progress | None) -> Recorded:
    """Record a decision (``core.review.decide``) and advance the caches past it.

    The caches advance only when the decided pair is an unreviewed row of the queue cache and the
    decision directly follows the cache's version (no other decision nor undo in between);
    otherwise they are dropped and the next read starts over.

    Raises:
        WorkbenchError: as ``decide``.
    """
    decision_id = decide(store, run_id, query_id, doc_id, label, annotator, note)
    if queue is None or queue.run_id != run_id or decision_id != queue.version[0] + 1:
        return Recorded(decision_id, None, None)
    pair = {(query_id, doc_id)}
    if not _among(queue.rows, pair).any():
        return Recorded(decision_id, None, None)
    version = store.review_version(run_id)
    if version != (decision_id, *queue.version[1:]):
        return Recorded(decision_id, None, None)
    run = store.get_run(run_id)
    facts = store.pair_pool_facts(run.run_id, run.dataset_id, query_id, doc_id)
    scoped = queue.scope.filters.query_id
    touched = [q for q in facts.query_ids if scoped is None or q == scoped]
    decided = sum(n for q, n in zip(facts.query_ids, facts.pairs_per_query) if q in touched)
    rows = queue.rows[~_among(queue.rows, pair)].reset_index(drop=True)
    # Which of the queries' rows an export takes changes: read when shown.
    rows = rows.assign(would_export=rows["would_export"].astype(object).where(
        ~rows["query_id"].isin(touched), None))
    reach = queue.reach
    if facts.pool_pairs > 1 and queue.scope.reason_kind:
        # A reason kind's length: the decided pair had the kind, the other pairs of its texts
        # may not; the next card is a fresh read.
        rows = None
    elif facts.pool_pairs > 1:  # more of the queries' pairs were decided: read them again
        rows, reach = _refreshed(store, queue, touched), _without(reach, touched)
    elif label != "hard_negative":  # the query's hard set takes its next candidate
        rows, reach = _promoted(store, queue, rows, query_id)
    after = None if rows is None else replace(queue, version=version, rows=rows,
                                              total=queue.total - decided, reach=reach)
    counted = None
    if (progress is not None and progress.run_id == run_id
            and progress.version == queue.version[:2]):
        counted = progress_with(progress, annotator, label, facts.selected, version[:2])
    return Recorded(decision_id, after, counted)
