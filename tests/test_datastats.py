"""Dataset statistics for the Data page."""

from __future__ import annotations

from core.datastats import dataset_preview, dataset_stats
from tests.conftest import TINY_CORPUS, TINY_QUERIES, TINY_QRELS, ingest_tiny, write_beir


def test_counts_positives_lengths_and_planted_duplicate(store, tmp_path):
    corpus = dict(TINY_CORPUS)
    corpus["d99"] = corpus["d1"]  # the same text under a second id
    ingest_tiny(store, write_beir(tmp_path / "dup", corpus=corpus))
    dataset = store.get_dataset()
    stats = dataset_stats(store, dataset.dataset_id)
    counts = dict(zip(stats.counts["measure"], stats.counts["value"]))
    assert counts["queries"] == len(TINY_QUERIES)
    assert counts["documents"] == len(corpus)
    assert counts["positives"] == len(TINY_QRELS)
    assert counts["duplicate document texts"] == 1
    assert stats.duplicates.iloc[0]["ids"] == "d1, d99"
    assert stats.positives_per_query["positives"].tolist() == [1, 1, 1, 1]
    assert len(stats.lengths) == len(TINY_QUERIES) + len(corpus)
    assert (stats.lengths["words"] > 0).all()


def test_preview_has_the_three_tables(store, tiny_beir):
    ingest_tiny(store, tiny_beir)
    preview = dataset_preview(store, store.get_dataset().dataset_id, rows=3)
    assert set(preview) == {"queries", "documents", "positives"}
    assert len(preview["documents"]) == 3 and "text_hash" not in preview["documents"]
