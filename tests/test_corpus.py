"""core.corpus: the dataset as a mining run sees it (real DuckDB workspace on disk)."""

from __future__ import annotations

from core.corpus import decided_pairs, load_corpus
from core.text import text_hash
from tests.conftest import ingest_tiny, write_beir

CORPUS = {"d0": ("", "the positive document"), "d1": ("", "the positive document"),
          "d2": ("", "another document"), "d3": ("", "a third document")}
QUERIES = {"q0": "a query with a positive", "q1": "a query without one"}


def _dataset(store, tmp_path):
    folder = write_beir(tmp_path / "b", CORPUS, QUERIES, [("q0", "d0", 1)])
    return ingest_tiny(store, folder).dataset


def test_queries_without_a_positive_are_left_out_and_duplicates_excluded(store, tmp_path):
    corpus = load_corpus(store, _dataset(store, tmp_path).dataset_id)
    assert corpus.query_ids == ["q0"]
    d0, d1 = corpus.doc_ids.index("d0"), corpus.doc_ids.index("d1")
    assert corpus.positives[0].tolist() == [d0]
    # d1 has the positive's exact text: excluded from negatives too, and counted.
    assert sorted(corpus.excluded[0].tolist()) == sorted([d0, d1])
    assert corpus.duplicate_count == 1
    assert corpus.doc_hashes[d0] == text_hash(corpus.doc_texts[d0])


def test_decided_pairs_maps_the_latest_decisions_to_rows(store, tmp_path):
    corpus = load_corpus(store, _dataset(store, tmp_path).dataset_id)
    assert decided_pairs(store, corpus) == {}
    d2 = corpus.doc_ids.index("d2")
    store.record_decision(corpus.query_hashes[0], corpus.doc_hashes[d2], "hard_negative", "ann")
    store.record_decision(corpus.query_hashes[0], corpus.doc_hashes[d2], "false_negative", "ann")
    assert decided_pairs(store, corpus) == {(0, d2): "false_negative"}

