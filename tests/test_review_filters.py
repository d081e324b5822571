"""The Review page's queue: core's order narrowed by a map selection, reason kinds and skips."""

from __future__ import annotations

import json

import pandas as pd

from core.review import QueueFilters, review_queue
from core.review_filters import ReviewScope, queue_reason_kinds, queue_table, reason_kind, \
    scoped_queue
from tests.synthetic import synthetic_workspace


def test_reason_kind_keeps_the_words_before_quotes_and_numbers():
    assert reason_kind("labeled positive of the similar query 'x 1' (cosine 0.93)") == (
        "labeled positive of the similar query")
    assert reason_kind("scores 1.02 x the positive") == "scores"
    assert reason_kind("in the positive's topic cluster") == "in the positive's topic cluster"


def test_scope_pairs_and_skips_keep_core_order(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    full = review_queue(store, mined.run_id)
    keys = list(zip(full["query_id"], full["doc_id"]))
    assert list(zip(*[scoped_queue(store, mined.run_id, ReviewScope())[c]
                      for c in ("query_id", "doc_id")])) == keys
    chosen = (keys[3], keys[0], keys[5])
    narrowed = scoped_queue(store, mined.run_id, ReviewScope(pairs=chosen))
    assert list(zip(narrowed["query_id"], narrowed["doc_id"])) == [keys[0], keys[3], keys[5]]
    skipped = scoped_queue(store, mined.run_id, ReviewScope(skipped=frozenset({keys[0]})))
    assert list(zip(skipped["query_id"], skipped["doc_id"]))[-1] == keys[0]
    only_q2 = scoped_queue(store, mined.run_id, ReviewScope(QueueFilters(query_id="q2")))
    assert set(only_q2["query_id"]) == {"q2"}
    assert list(queue_table(full, 3).columns)[:2] == ["query_id", "doc_id"]
    table = queue_table(full.assign(reasons=[json.dumps(["scores 0.9 x the positive", "b"])]
                                    + [None] * (len(full) - 1)), 3)
    assert table["reasons"].iloc[0] == "scores 0.9 x the positive; b"
    assert pd.isna(table["reasons"].iloc[1])


def test_reason_kinds_filter_scored_runs(store, tmp_path, monkeypatch):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    assert queue_reason_kinds(store, mined.run_id) == []
    pool = mined.candidates[["query_id", "doc_id"]].copy()
    pool["suspicion"] = 0.1
    pool["reasons"] = json.dumps(["scores 0.9 x the positive"])
    pool.loc[pool.index[:2], "reasons"] = json.dumps(["near-duplicate of the positive (cosine "
                                                      "0.99)", "scores 1.1 x the positive"])
    pool["signals"] = "{}"
    store.put_suspicion(mined.run_id, pd.DataFrame(pool), "test")
    assert queue_reason_kinds(store, mined.run_id) == ["near-duplicate of the positive", "scores"]
    scope = ReviewScope(QueueFilters(unreviewed_only=False),
                        reason_kind="near-duplicate of the positive")
    assert len(scoped_queue(store, mined.run_id, scope)) == 2
    # read once per scoring (the page asks on every render), again when the run is re-scored
    monkeypatch.setattr(type(store), "_REASON_KIND", "error('read again')")
    assert queue_reason_kinds(store, mined.run_id) == ["near-duplicate of the positive", "scores"]
    monkeypatch.undo()
    pool["reasons"] = json.dumps(["matches the query's words"])
    store.put_suspicion(mined.run_id, pd.DataFrame(pool), "test")  # as many rows as before
    assert queue_reason_kinds(store, mined.run_id) == ["matches the query's words"]


def test_pairs_and_query_filters_read_only_their_queries_and_keep_the_order(store, tmp_path):
    """A map selection or an audit reads its pairs' queries only; the rows and their order are
    those of the whole queue narrowed afterwards."""
    mined = synthetic_workspace(store, tmp_path / "tiny")
    full = review_queue(store, mined.run_id, QueueFilters(unreviewed_only=False))
    keys = list(zip(full["query_id"], full["doc_id"]))
    chosen = tuple(k for k in keys if k[0] in ("q1", "q3"))[:5]
    narrowed = scoped_queue(store, mined.run_id, ReviewScope(
        QueueFilters(unreviewed_only=False), pairs=chosen))
    expected = full[[k in set(chosen) for k in keys]]
    pd.testing.assert_frame_equal(narrowed.reset_index(drop=True),
                                  expected.reset_index(drop=True))
    one = review_queue(store, mined.run_id, QueueFilters(unreviewed_only=False, query_id="q3"))
    pd.testing.assert_frame_equal(one, full[full["query_id"].eq("q3")].reset_index(drop=True))
    assert scoped_queue(store, mined.run_id, ReviewScope(pairs=())).empty
    clash = ReviewScope(QueueFilters(query_ids=("q2",)), pairs=chosen)
    assert scoped_queue(store, mined.run_id, clash).empty
