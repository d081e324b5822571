"""Review: the queue's order and filters, the card for one candidate, and recording decisions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import WorkbenchError
from core.export import planned_negatives
from core.mine import MineRequest, mine
from core.review import QueueFilters, decide, review_card, review_queue
from core.store import Store
from tests.conftest import ingest_tiny, opened_copy, topical_corpus, write_beir

K = 3


@pytest.fixture(scope="module")
def review_ws(tmp_path_factory):
    """A closed workspace: the topical corpus (36 documents) mined with curated, k = 3.

    Returns (workspace path, run id); each test opens its own copy, so decisions never leak.
    """
    root = tmp_path_factory.mktemp("review")
    corpus, queries, qrels = topical_corpus(docs_per_topic=6)
    path = root / "ws.duckdb"
    with Store(path) as store:
        ingest_tiny(store, write_beir(root / "beir", corpus, queries, qrels))
        run = mine(store, MineRequest(strategy="curated", num_negatives=K))
    return path, run.run_id


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["query_id"], frame["doc_id"]))


def _assert_non_increasing(values: pd.Series) -> None:
    assert (np.diff(values.to_numpy(dtype=float)) <= 1e-9).all(), values.tolist()


def test_queue_puts_the_hard_set_first_then_the_most_suspicious(review_ws, tmp_path):
    with opened_copy(review_ws, tmp_path) as (store, run_id):
        queue = review_queue(store, run_id)
        pool = store.run_candidates(run_id)
        assert len(queue) == len(pool) and _pairs(queue) == _pairs(pool)
        # The hard set (each query's k hardest usable candidates) is one block at the top.
        hard = queue["hard_set"].to_numpy()
        assert hard.sum() == K * pool.query_id.nunique()
        assert hard[:hard.sum()].all() and not hard[hard.sum():].any()
        hardest = pool.sort_values("score", ascending=False).groupby("query_id").head(K)
        assert _pairs(queue[queue.hard_set]) == _pairs(hardest)
        # Within each block: most suspicious first; priority is the run's suspicion.
        np.testing.assert_allclose(queue.priority, queue.suspicion.astype(float))
        for _, block in queue.groupby("hard_set"):
            _assert_non_increasing(block.priority)
        np.testing.assert_allclose(queue.margin, queue.pos_score - queue.score, atol=1e-6)
        assert _pairs(queue[queue.would_export]) == _pairs(planned_negatives(store, run_id))
        assert review_queue(store, run_id, limit=5).equals(queue.head(5))


def test_queue_orders_by_score_before_the_run_is_scored(review_ws, tmp_path):
    with opened_copy(review_ws, tmp_path) as (store, run_id):
        store.put_suspicion(run_id, pd.DataFrame(
            columns=["query_id", "doc_id", "suspicion", "reasons", "signals"]), "cold")
        queue = review_queue(store, run_id)
        np.testing.assert_allclose(queue.priority, queue.score.astype(float))
        for _, block in queue.groupby("hard_set"):
            _assert_non_increasing(block.priority)


def test_queue_filters(review_ws, tmp_path):
    with opened_copy(review_ws, tmp_path) as (store, run_id):
        full = review_queue(store, run_id)
        one = review_queue(store, run_id, QueueFilters(query_id="q-music-1"))
        assert len(one) and (one.query_id == "q-music-1").all()
        assert len(one) == (full.query_id == "q-music-1").sum()
        some = review_queue(store, run_id, QueueFilters(query_ids=("q-music-1", "q-finance-0")))
        assert set(some.query_id) == {"q-music-1", "q-finance-0"}

        reason = "close to the positive"
        close = review_queue(store, run_id, QueueFilters(reason=reason))
        expected = full[full.reasons.str.contains(reason, regex=False)]
        assert len(close) and _pairs(close) == _pairs(expected)
        assert all(any(r.startswith(reason) for r in json.loads(rs)) for rs in close.reasons)

        top, second = full.iloc[0], full.iloc[1]
        decide(store, run_id, top.query_id, top.doc_id, "false_negative", "ann")
        decide(store, run_id, second.query_id, second.doc_id, "hard_negative", "bob")
        unreviewed = review_queue(store, run_id)
        assert len(unreviewed) == len(full) - 2 and unreviewed.decision.isna().all()
        everything = review_queue(store, run_id, QueueFilters(unreviewed_only=False))
        assert len(everything) == len(full) and everything.decision.notna().sum() == 2
        by_ann = review_queue(store, run_id, QueueFilters(decided_by="ann"))
        assert _pairs(by_ann) == {(top.query_id, top.doc_id)}
        assert by_ann.decision.tolist() == ["false_negative"]
        assert review_queue(store, run_id, QueueFilters(decided_by="nobody")).empty


def test_deciding_the_top_item_takes_it_off_the_queue(review_ws, tmp_path):
    with opened_copy(review_ws, tmp_path) as (store, run_id):
        queue = review_queue(store, run_id)
        top = queue.iloc[0]
        assert top.hard_set
        decision_id = decide(store, run_id, top.query_id, top.doc_id, "false_negative", "ann",
                             note="same answer as the positive")
        assert isinstance(decision_id, int)
        after = review_queue(store, run_id)
        assert (top.query_id, top.doc_id) not in _pairs(after)
        assert after.iloc[0].doc_id != top.doc_id or after.iloc[0].query_id != top.query_id
        # The false negative leaves the hard set: the query's next hardest candidate joins it.
        query = review_queue(store, run_id, QueueFilters(unreviewed_only=False,
                                                         query_id=top.query_id))
        assert query.hard_set.sum() == K
        assert not query.loc[query.doc_id == top.doc_id, "hard_set"].any()
        assert query.loc[query.doc_id == top.doc_id, "decision"].tolist() == ["false_negative"]
        log = store.decision_log()
        assert [(d.query_id, d.doc_id, d.label, d.annotator) for d in log] == [
            (top.query_id, top.doc_id, "false_negative", "ann")]


def test_review_card_shows_query_positives_document_and_reasons(review_ws, tmp_path):
    with opened_copy(review_ws, tmp_path) as (store, run_id):
        row = review_queue(store, run_id).iloc[0]
        card = review_card(store, run_id, row)
        dataset_id = store.get_run(run_id).dataset_id
        queries = store.dataset_frame(dataset_id, "queries").set_index("query_id")["text"]
        docs = store.dataset_frame(dataset_id, "documents").set_index("doc_id")["text"]
        positives = store.dataset_frame(dataset_id, "positives")
        pos_ids = positives.loc[positives.query_id == row.query_id, "doc_id"].tolist()
        assert card.run_id == run_id
        assert (card.query_id, card.doc_id) == (row.query_id, row.doc_id)
        assert card.query_text == queries[row.query_id]
        assert card.query_text.startswith("question about")
        assert card.doc_text == docs[row.doc_id] and "This text about" in card.doc_text
        assert card.positives == [(p, docs[p]) for p in pos_ids] and len(card.positives) == 2
        assert card.reasons == json.loads(row.reasons) and isinstance(card.reasons, list)
        assert all(isinstance(r, str) and r for r in card.reasons)
        assert card.suspicion == pytest.approx(float(row.suspicion))
        assert card.margin == pytest.approx(float(row.pos_score - row.score))
        assert card.rank == int(row["rank"]) and card.decision is None
        assert card.would_export == bool(row.would_export)

        decide(store, run_id, row.query_id, row.doc_id, "unsure", "ann")
        decided = review_queue(store, run_id, QueueFilters(decided_by="ann")).iloc[0]
        assert review_card(store, run_id, decided).decision == "unsure"


def test_decide_rejects_unknown_ids_labels_and_annotators(review_ws, tmp_path):
    with opened_copy(review_ws, tmp_path) as (store, run_id):
        doc = store.run_candidates(run_id).iloc[0]
        with pytest.raises(WorkbenchError, match="has no query 'nope' with document"):
            decide(store, run_id, "nope", doc.doc_id, "hard_negative", "ann")
        with pytest.raises(WorkbenchError, match="has no query .* with document 'nope'"):
            decide(store, run_id, doc.query_id, "nope", "hard_negative", "ann")
        with pytest.raises(WorkbenchError, match="has no run 999"):
            decide(store, 999, doc.query_id, doc.doc_id, "hard_negative", "ann")
        with pytest.raises(WorkbenchError, match="label 'maybe' is not one of"):
            decide(store, run_id, doc.query_id, doc.doc_id, "maybe", "ann")
        with pytest.raises(WorkbenchError, match="annotator name is required"):
            decide(store, run_id, doc.query_id, doc.doc_id, "hard_negative", "  ")
        assert store.decision_log() == []
