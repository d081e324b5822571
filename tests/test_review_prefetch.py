"""The Review page's cached queue head and progress agree, decision after decision, with the queue
and the progress read afresh; other sessions' decisions and undos are never missed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.annotation import current_progress, progress_with, review_progress
from core.mine import MineRequest, mine
from core.review import QueueFilters, decide
from core.review_filters import ReviewScope, scoped_queue
from core import review_prefetch
from core.review_prefetch import QueueCache, cached_head, record_decision
from core.vectors import ingest_vectors
from tests.precomputed import write_vector_folder
from tests.test_queries_at_scale import PRECOMPUTED, decided  # noqa: F401  (the fixture)

LABELS = ("hard_negative", "false_negative", "unsure")


def _keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["query_id"], frame["doc_id"]))


def _check(store, run, scope, head, limit) -> None:
    """The head served is the fresh queue's head, with the card's columns."""
    expected = scoped_queue(store, run.run_id, scope).head(limit)
    assert _keys(head.rows) == _keys(expected)
    assert head.total == len(scoped_queue(store, run.run_id, scope))
    for column in ("would_export", "reasons", "hard_set"):
        assert head.rows[column].tolist() == expected[column].tolist(), column


def _walk(store, run, scope, steps, limit=1, cache=None, progress=None, labels=LABELS):
    """Decide the head ``steps`` times (labels in turn), checking each step against fresh reads."""
    for i in range(steps):
        head, new_cache = cached_head(store, run.run_id, scope, cache, limit)
        _check(store, run, scope, head, limit)
        progress = current_progress(store, run.run_id, progress)
        pd.testing.assert_frame_equal(progress.table, review_progress(store, run.run_id).table)
        row = head.rows.iloc[0]
        recorded = record_decision(store, run.run_id, row["query_id"], row["doc_id"],
                                   labels[i % len(labels)], "ann2", None, new_cache, progress)
        cache, progress = recorded.queue, recorded.progress
    return cache, progress


def test_cached_head_follows_the_queue_through_own_decisions(decided, monkeypatch):  # noqa: F811
    store, run = decided
    reads = []
    read = review_prefetch.queue_head
    monkeypatch.setattr(review_prefetch, "queue_head",
                        lambda *a, **k: reads.append(1) or read(*a, **k))
    cache, progress = _walk(store, run, ReviewScope(), 12)
    assert len(reads) <= 2  # served from the cache, not read per decision
    assert progress is not None and progress.version == store.decisions_version()
    pd.testing.assert_frame_equal(progress.table, review_progress(store, run.run_id).table)


def test_cached_head_with_a_query_skips_and_the_next_rows_shown(decided):  # noqa: F811
    store, run = decided
    queue = scoped_queue(store, run.run_id, ReviewScope())
    one = queue.iloc[2]["query_id"]
    skipped = frozenset(_keys(queue.head(2)))
    _walk(store, run, ReviewScope(skipped=skipped), 6, limit=5)
    _walk(store, run, ReviewScope(QueueFilters(query_id=one)), 4)


def test_other_sessions_decisions_and_undo_are_seen(decided):  # noqa: F811
    store, run = decided
    scope = ReviewScope()
    head, cache = cached_head(store, run.run_id, scope, None, limit=1)
    progress = review_progress(store, run.run_id)
    # another annotator decides the second row of the cache: this session must not show it
    second = cache.rows.iloc[1]
    decide(store, run.run_id, second["query_id"], second["doc_id"], "false_negative", "other")
    row = head.rows.iloc[0]
    recorded = record_decision(store, run.run_id, row["query_id"], row["doc_id"], "hard_negative",
                               "ann2", None, cache, progress)
    assert recorded.queue is None and recorded.progress is None  # not one after the other
    head, cache = cached_head(store, run.run_id, scope, recorded.queue, limit=5)
    _check(store, run, scope, head, 5)
    assert (second["query_id"], second["doc_id"]) not in _keys(head.rows)
    # an undo (here another session's, after the cache was read) brings its pair back
    undone = store.retract_last_decision("ann2")
    head, cache = cached_head(store, run.run_id, scope, cache, limit=5)
    _check(store, run, scope, head, 5)
    assert (undone.query_id, undone.doc_id) in _keys(scoped_queue(store, run.run_id, scope))
    pd.testing.assert_frame_equal(current_progress(store, run.run_id, progress).table,
                                  review_progress(store, run.run_id).table)


def test_a_decided_pair_outside_the_cache_drops_it(decided):  # noqa: F811
    store, run = decided
    _, cache = cached_head(store, run.run_id, ReviewScope(), None)
    outside = scoped_queue(store, run.run_id, ReviewScope()).iloc[-1]
    recorded = record_decision(store, run.run_id, outside["query_id"], outside["doc_id"],
                               "unsure", "ann2", None, cache, None)
    assert recorded.queue is None
    assert isinstance(cache, QueueCache)


def test_progress_with_adds_one_decision(decided):  # noqa: F811
    store, run = decided
    progress = review_progress(store, run.run_id)
    row = scoped_queue(store, run.run_id, ReviewScope()).iloc[0]
    facts = store.pair_pool_facts(run.run_id, run.dataset_id, row["query_id"], row["doc_id"])
    assert facts.query_ids == (row["query_id"],) and facts.pool_pairs == 1
    decide(store, run.run_id, row["query_id"], row["doc_id"], "unsure", "newcomer")
    counted = progress_with(progress, "newcomer", "unsure", facts.selected,
                            store.decisions_version())
    pd.testing.assert_frame_equal(counted.table, review_progress(store, run.run_id).table)
    with pytest.raises(ValueError, match="not one of"):
        progress_with(progress, "newcomer", "maybe", False, (0, 0))


def test_pairs_with_the_same_texts_leave_the_cache_together(store, tmp_path):
    """Decisions are keyed by texts: deciding one pair decides its twins (same two texts)."""
    folder = write_vector_folder(tmp_path / "v", n_docs=200, n_queries=12, texts=True)
    for name, stem in (("corpus.jsonl", "document"), ("queries.jsonl", "query")):
        lines = [json.loads(line) for line in (folder / name).read_text().splitlines()]
        for i, line in enumerate(lines):  # ids 2k and 2k + 1 share a text
            line["text"] = f"{stem} {i // 2} topic"
        (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    ingest_vectors(store, folder)
    run = mine(store, MineRequest(strategy="curated", model=PRECOMPUTED, num_negatives=3))
    pool = store.run_candidates(run.run_id)
    twins = pool.groupby(["query_hash", "doc_hash"])["query_id"].transform("size") > 1
    assert twins.any()  # the pool holds pairs with the same two texts
    facts = store.pair_pool_facts(run.run_id, run.dataset_id, pool.loc[twins, "query_id"].iloc[0],
                                  pool.loc[twins, "doc_id"].iloc[0])
    assert facts.pool_pairs > 1
    _walk(store, run, ReviewScope(), 15)
    _walk(store, run, ReviewScope(reason_kind=_common_kind(store, run)), 8)


def test_new_suspicion_scores_make_a_fresh_read(decided):  # noqa: F811
    store, run = decided
    scope = ReviewScope()
    head, cache = cached_head(store, run.run_id, scope, None)
    pool = store.run_candidates(run.run_id)
    scores = pool[["query_id", "doc_id", "reasons", "signals"]].assign(
        suspicion=1.0 - pool["suspicion"].astype(float).fillna(0.0))  # the order turned round
    store.put_suspicion(run.run_id, scores, "reversed")
    head, _ = cached_head(store, run.run_id, scope, cache, limit=5)
    _check(store, run, scope, head, 5)


def test_query_hard_rows_are_the_queues_hard_rows_of_the_query(decided):  # noqa: F811
    store, run = decided
    queue = scoped_queue(store, run.run_id, ReviewScope())
    for query_id in sorted(set(queue["query_id"]))[:8]:
        rows = store.query_hard_rows(run.run_id, run.dataset_id, run.num_negatives, query_id)
        expected = queue[queue["query_id"].eq(query_id) & queue["hard_set"]]
        assert _keys(rows) == _keys(expected), query_id


def test_rejections_bring_each_querys_next_candidates_in(decided, monkeypatch):  # noqa: F811
    """False negatives in a row: the next candidates come from the cache's reach, then (reach
    used up) from a read of the query."""
    store, run = decided
    monkeypatch.setattr(review_prefetch, "REACH", 1)
    one = scoped_queue(store, run.run_id, ReviewScope()).iloc[0]["query_id"]
    _walk(store, run, ReviewScope(QueueFilters(query_id=one)), 5, labels=("false_negative",))
    _walk(store, run, ReviewScope(), 10, labels=("false_negative", "unsure", "hard_negative"))


def _common_kind(store, run) -> str:
    """The reason kind of the most undecided hard-set rows (a queue long enough to walk)."""
    queue = scoped_queue(store, run.run_id, ReviewScope())
    counts = {k: int(scoped_queue(store, run.run_id, ReviewScope(reason_kind=k))["hard_set"].sum())
              for k in store.reason_kinds(run.run_id)}
    assert len(queue) and counts
    return max(counts, key=counts.get)


def test_a_reason_kinds_queue_is_kept_through_own_decisions(decided, monkeypatch):  # noqa: F811
    """A queue narrowed to a reason kind is served from the cache too (it was read in SQL after
    every decision: about 1 s a card at a million candidates); a decision reads only its
    query's rows of that kind again."""
    store, run = decided
    kind = _common_kind(store, run)
    reads = []
    read = review_prefetch.queue_head
    monkeypatch.setattr(review_prefetch, "queue_head",
                        lambda *a, **k: reads.append(1) or read(*a, **k))
    _walk(store, run, ReviewScope(reason_kind=kind), 12)
    assert len(reads) <= 2
    one = scoped_queue(store, run.run_id, ReviewScope(reason_kind=kind)).iloc[0]["query_id"]
    _walk(store, run, ReviewScope(QueueFilters(query_id=one), reason_kind=kind), 4,
          labels=("false_negative",))


def test_query_hard_rows_of_a_reason_kind(decided):  # noqa: F811
    store, run = decided
    kind = _common_kind(store, run)
    queue = scoped_queue(store, run.run_id, ReviewScope(reason_kind=kind))
    assert 0 < len(queue) < len(scoped_queue(store, run.run_id, ReviewScope()))
    for query_id in sorted(set(queue["query_id"]))[:8]:
        rows = store.query_hard_rows(run.run_id, run.dataset_id, run.num_negatives, query_id,
                                     kind)
        expected = queue[queue["query_id"].eq(query_id) & queue["hard_set"]]
        assert _keys(rows) == _keys(expected), query_id
