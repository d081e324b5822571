"""The app's queries computed in SQL (for 10M-candidate runs) agree with the in-memory versions."""

from __future__ import annotations

import numpy as np
import pytest

from core.export import ExportOptions, build_export, planned_negatives
from core.margins import margin_frame, margin_histogram
from core.mine import MineRequest, mine
from core.review import QueueFilters, decide, next_review_item, review_card, review_queue
from core.runs import compare_runs, selection_overlap
from core.vectors import ingest_vectors
from tests.precomputed import MODEL, write_vector_folder

PRECOMPUTED = f"precomputed:{MODEL}"


@pytest.fixture
def decided(store, tmp_path):
    """A curated run over clustered vectors, with a few decisions of every label."""
    ingest_vectors(store, write_vector_folder(tmp_path / "v", n_docs=300, n_queries=20))
    run = mine(store, MineRequest(strategy="curated", model=PRECOMPUTED, num_negatives=3))
    queue = review_queue(store, run.run_id)
    for (_, row), label in zip(queue.head(6).iterrows(), ["false_negative", "hard_negative",
                                                          "unsure", "false_negative",
                                                          "hard_negative", "hard_negative"]):
        decide(store, run.run_id, row["query_id"], row["doc_id"], label, "ann")
    return store, run


def _key(row) -> tuple[str, str]:
    return row["query_id"], row["doc_id"]


def test_next_review_item_is_the_head_of_the_queue(decided):
    store, run = decided
    queue = review_queue(store, run.run_id)
    item = next_review_item(store, run.run_id)
    assert _key(item) == _key(queue.iloc[0])
    assert item["would_export"] == queue.iloc[0]["would_export"]
    assert item["reasons"] == queue.iloc[0]["reasons"]
    card = review_card(store, run.run_id, item)
    assert card.doc_id == item["doc_id"] and card.margin == pytest.approx(item["margin"])
    one = queue.iloc[5]["query_id"]
    scoped = review_queue(store, run.run_id, QueueFilters(query_id=one))
    assert _key(next_review_item(store, run.run_id, one)) == _key(scoped.iloc[0])


def test_after_the_hard_set_the_rest_of_the_pool_follows(decided):
    store, run = decided
    queue = review_queue(store, run.run_id)
    one = queue.iloc[0]["query_id"]
    for _, row in queue[queue["query_id"].eq(one) & queue["hard_set"]].iterrows():
        decide(store, run.run_id, row["query_id"], row["doc_id"], "hard_negative", "ann")
    scoped = review_queue(store, run.run_id, QueueFilters(query_id=one))
    assert not scoped.iloc[0]["hard_set"]
    assert _key(next_review_item(store, run.run_id, one)) == _key(scoped.iloc[0])


def test_margin_histogram_counts_every_selected_negative(decided):
    store, run = decided
    hist = margin_histogram(store, run.run_id, bins=10)
    margins = margin_frame(store, run.run_id)
    assert hist["count"].sum() == len(margins) == run.filter_counts["selected"]
    lo, hi = margins["margin"].min(), margins["margin"].max()
    expected, _ = np.histogram(margins["margin"], bins=10, range=(lo, hi))
    got = hist.groupby("bin")["count"].sum().reindex(range(10), fill_value=0).to_numpy()
    assert np.abs(got - expected).sum() <= 2  # float32 edges may move a value to the next bin
    assert set(hist["decision"]) <= {"undecided", "hard_negative", "false_negative", "unsure"}
    assert margin_histogram(store, run.run_id, 5, selected_only=False)["count"].sum() == len(
        margin_frame(store, run.run_id, selected_only=False))


def test_selection_overlap_matches_compare_runs(decided):
    store, run = decided
    other = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3))
    overlap, summary = selection_overlap(store, run.run_id, other.run_id)
    reference = compare_runs(store, run.run_id, other.run_id)
    merged = overlap.merge(reference.overlap, on="query_id", suffixes=("", "_ref"))
    assert len(merged) == len(reference.overlap)
    for column in ("in a", "in b", "in both", "jaccard"):
        assert np.allclose(merged[column], merged[f"{column}_ref"])
    assert summary["value"].tolist() == reference.summary["value"].tolist()


def test_planned_negatives_match_the_export(decided):
    store, run = decided
    planned = planned_negatives(store, run.run_id)
    export = build_export(store, run.run_id, ExportOptions(format="flag-embedding"))
    expected = {(q, d, i + 1) for q, ids in zip(export["query_id"], export["neg_ids"])
                for i, d in enumerate(ids)}
    assert set(zip(planned["query_id"], planned["doc_id"], planned["idx"])) == expected


def test_lexical_pools_window_every_query(store, tmp_path):
    """BM25 ranks do not follow the dense scores the hard set is defined by."""
    ingest_vectors(store, write_vector_folder(tmp_path / "t", n_docs=120, n_queries=8, texts=True))
    run = mine(store, MineRequest(strategy="bm25", model=PRECOMPUTED, num_negatives=3))
    queue = review_queue(store, run.run_id)
    assert _key(next_review_item(store, run.run_id)) == _key(queue.iloc[0])


def test_planned_negatives_refill_when_asked_for_more_than_the_run_selected(decided):
    store, run = decided
    planned = planned_negatives(store, run.run_id, num_negatives=5)
    export = build_export(store, run.run_id, ExportOptions(format="flag-embedding",
                                                           num_negatives=5))
    expected = {(q, d, i + 1) for q, ids in zip(export["query_id"], export["neg_ids"])
                for i, d in enumerate(ids)}
    assert set(zip(planned["query_id"], planned["doc_id"], planned["idx"])) == expected
    assert planned.groupby("query_id").size().max() == 5
