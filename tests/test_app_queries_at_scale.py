"""The Map and Review pages' SQL answers (for pools too large to read whole) agree with the same
answers computed from the whole pool (``Store.run_candidates``)."""

from __future__ import annotations

import pandas as pd

from core.annotation import review_progress
from core.map_view import query_focus, selection_pairs
from core.review import QueueFilters, review_head, review_queue
from core.review_filters import ReviewScope, _kinds, queue_head, scoped_queue
from tests.test_queries_at_scale import decided  # noqa: F401  (the fixture)


def _keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["query_id"], frame["doc_id"]))


def test_review_head_is_the_queue_head_with_its_columns(decided):  # noqa: F811
    store, run = decided
    queue = review_queue(store, run.run_id)
    head = review_head(store, run.run_id, limit=12)
    assert _keys(head) == _keys(queue.head(12))
    for column in ("would_export", "reasons", "hard_set"):
        assert head[column].tolist() == queue.head(12)[column].tolist(), column
    assert head["margin"].tolist() == (queue.head(12)["pos_score"]
                                       - queue.head(12)["score"]).tolist()
    assert head["decision"].isna().all()


def test_queue_head_matches_the_scoped_queue(decided):  # noqa: F811
    store, run = decided
    queue = review_queue(store, run.run_id)
    one = queue.iloc[3]["query_id"]
    skipped = frozenset(_keys(queue.iloc[[0, 2]]))
    for scope in (ReviewScope(), ReviewScope(skipped=skipped),
                  ReviewScope(QueueFilters(query_id=one), skipped=skipped),
                  ReviewScope(QueueFilters(unreviewed_only=False)),
                  ReviewScope(pairs=tuple(_keys(queue.iloc[[4, 1]])))):
        expected = scoped_queue(store, run.run_id, scope)
        head = queue_head(store, run.run_id, scope, limit=5)
        assert _keys(head.rows) == _keys(expected.head(5)), scope
        assert head.total == len(expected), scope
    # a reason kind is answered in SQL too (alone, with one query, with skips)
    kinds = store.reason_kinds(run.run_id)
    assert len(kinds) >= 2
    for kind in kinds:
        for scope in (ReviewScope(reason_kind=kind),
                      ReviewScope(QueueFilters(query_id=one), reason_kind=kind),
                      ReviewScope(skipped=skipped, reason_kind=kind)):
            expected = scoped_queue(store, run.run_id, scope)
            head = queue_head(store, run.run_id, scope, limit=7)
            assert _keys(head.rows) == _keys(expected.head(7)), scope
            assert head.total == len(expected), scope
            assert head.rows["reasons"].map(lambda v: kind in _kinds(v)).all()
            if scope == ReviewScope(reason_kind=kind):
                assert head.total > 0  # every kind is some undecided pair's
    # a queue shorter than the limit plus the skips: the skipped pairs come last
    scope = ReviewScope(QueueFilters(query_id=one), skipped=frozenset(_keys(
        review_queue(store, run.run_id, QueueFilters(query_id=one)).head(2))))
    expected = scoped_queue(store, run.run_id, scope)
    assert _keys(queue_head(store, run.run_id, scope, limit=500).rows) == _keys(expected)


def test_reviewed_pairs_read_only_the_decided_queries(decided, monkeypatch):  # noqa: F811
    """Every pair, reviewed ones included (the page's "Unreviewed only" off): the undecided head
    from SQL merged with the decided pairs of the queries holding them, never the whole pool
    (about 11 s at a million); the rows, their columns and the length are the whole pool's."""
    store, run = decided
    full = scoped_queue(store, run.run_id, ReviewScope(QueueFilters(unreviewed_only=False)))
    decided_keys = _keys(full[full["decision"].notna()])
    assert len(decided_keys) == 6 and set(decided_keys) & set(_keys(full.head(9)))
    skipped = frozenset([decided_keys[0], _keys(full[full["decision"].isna()])[0]])
    scopes = [ReviewScope(QueueFilters(unreviewed_only=False)),
              ReviewScope(QueueFilters(unreviewed_only=False), skipped=skipped)]
    scopes += [ReviewScope(QueueFilters(unreviewed_only=False), reason_kind=kind)
               for kind in store.reason_kinds(run.run_id)]
    expected = [scoped_queue(store, run.run_id, scope) for scope in scopes]
    reads = []
    whole = store.run_candidates
    monkeypatch.setattr(store, "run_candidates", lambda run_id, query_ids=None: (
        reads.append(query_ids) or whole(run_id, query_ids)))
    for scope, queue in zip(scopes, expected):
        for limit in (1, 9, 40):
            head = queue_head(store, run.run_id, scope, limit=limit)
            assert _keys(head.rows) == _keys(queue.head(limit)), (scope, limit)
            for column in ("would_export", "reasons", "hard_set", "decision", "decided_by"):
                assert (head.rows[column].fillna("-").tolist()
                        == queue.head(limit)[column].fillna("-").tolist()), (scope, column)
            assert head.total == len(queue), scope
    assert reads and all(q is not None and len(q) < len(set(full["query_id"])) for q in reads)


def test_an_annotators_queue_reads_only_the_queries_they_decided(decided):  # noqa: F811
    """"Decided by" reads the queries with the annotator's decisions, not the whole pool, and
    gives the whole pool's answer."""
    store, run = decided
    full = review_queue(store, run.run_id, QueueFilters(unreviewed_only=False))
    for annotator, wanted in (("ann", 6), ("nobody", 0)):
        expected = full[full["decided_by"] == annotator]
        got = review_queue(store, run.run_id, QueueFilters(decided_by=annotator))
        assert _keys(got) == _keys(expected) and len(got) == wanted
        for column in ("would_export", "hard_set", "decision"):
            assert got[column].tolist() == expected[column].tolist(), column
    one = full[full["decided_by"] == "ann"]["query_id"].iloc[0]
    got = review_queue(store, run.run_id, QueueFilters(decided_by="ann", query_id=one))
    assert set(got["query_id"]) == {one} and len(got) >= 1
    assert len(store.decided_query_ids(run.dataset_id, "ann")) < len(set(full["query_id"]))


def test_document_stats_sum_up_the_pool(decided):  # noqa: F811
    store, run = decided
    pool = store.run_candidates(run.run_id)
    stats = store.document_stats(run.run_id, run.dataset_id).set_index("doc_id")
    assert set(stats.index) == set(pool["doc_id"])
    assert set(stats.index[stats["selected"]]) == set(pool.loc[pool["selected"], "doc_id"])
    suspicion = pool.assign(s=pool["suspicion"].astype(float)).groupby("doc_id")["s"].max()
    pd.testing.assert_series_equal(stats["suspicion"].astype(float).sort_index(),
                                   suspicion.sort_index(), check_names=False, atol=1e-6)
    order = {"false_negative": 0, "unsure": 1, "hard_negative": 2}
    decided_docs = pool.dropna(subset=["decision"]).assign(o=lambda f: f["decision"].map(order))
    expected = decided_docs.sort_values("o").groupby("doc_id")["decision"].first()
    assert stats["decision"].dropna().sort_index().to_dict() == expected.sort_index().to_dict()


def test_selection_pairs_and_focus_match_the_pool(decided):  # noqa: F811
    store, run = decided
    pool = store.run_candidates(run.run_id)
    docs = pool["doc_id"].drop_duplicates().head(25).tolist()
    query = pool["query_id"].iloc[0]
    picked = [("document", d) for d in docs] + [("query", query)]
    for focus in (None, query):
        rows = pool["doc_id"].isin(docs) & (pool["query_id"].eq(focus) if focus else
                                            pool["selected"])
        rows |= pool["query_id"].eq(query) & pool["selected"]
        expected = pool.loc[rows].drop_duplicates(["query_id", "doc_id"])
        got = selection_pairs(store, run.run_id, picked, focus)
        assert _keys(got) == _keys(expected)
        assert got["decision"].fillna("").tolist() == expected["decision"].fillna("").tolist()
    negatives = query_focus(store, run.run_id, query).negatives
    mine = pool[pool["query_id"].eq(query) & pool["selected"]]
    assert negatives["doc_id"].tolist() == mine["doc_id"].tolist()


def test_query_ids_reason_kinds_and_pool_counts(decided):  # noqa: F811
    store, run = decided
    pool = store.run_candidates(run.run_id)
    assert store.run_query_ids(run.run_id) == sorted(pool["query_id"].unique())
    kinds = set().union(*(_kinds(v) for v in pool["reasons"].dropna().unique()))
    assert store.reason_kinds(run.run_id) == sorted(k for k in kinds if k)
    assert store.reason_kinds(run.run_id)  # a curated run is scored
    unique = pool.drop_duplicates(["query_hash", "doc_hash"])
    assert store.pool_pair_counts(run.run_id, run.dataset_id) == (len(unique),
                                                                   int(unique["selected"].sum()))
    assert store.count_undecided(run.run_id, run.dataset_id) == int(
        pool.drop_duplicates(["query_id", "doc_id"])["decision"].isna().sum())
    progress = review_progress(store, run.run_id)
    overall = progress.table.set_index("annotator").loc["overall"]
    assert overall["decided"] == pool.dropna(subset=["decision"]).drop_duplicates(
        ["query_hash", "doc_hash"]).shape[0] == 6
