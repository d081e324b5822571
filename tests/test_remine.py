"""Re-mining from a stored pool: new parameters never search again unless it is too shallow."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import core.mine
import core.search
from core.mine import MineRequest, mine
from core.review import decide
from core.vectors import ingest_vectors
from tests.precomputed import MODEL, write_vector_folder

PRECOMPUTED = f"precomputed:{MODEL}"
PARAMS = {
    "top_k": {},
    "positive_aware": {"mode": "percent", "threshold": 0.9},
    "curated": {"max_suspicion": 0.5},
    "rank_window": {"lo": 5, "hi": 60},
    "simans": {"pool": 80},
    "cluster": {"n_clusters": 8},
}


@pytest.fixture
def vectors_store(store, tmp_path):
    ingest_vectors(store, write_vector_folder(tmp_path / "v", n_docs=400, n_queries=30))
    return store


def _selected(store, run) -> set[tuple[str, str]]:
    frame = store.run_candidates(run.run_id)
    chosen = frame[frame["selected"]]
    return set(zip(chosen["query_id"], chosen["doc_id"]))


def test_new_parameters_select_from_the_stored_pool(vectors_store, monkeypatch):
    store = vectors_store
    base = mine(store, MineRequest(strategy="curated", model=PRECOMPUTED, num_negatives=3))

    def refuse(*args, **kwargs):
        raise AssertionError("searched although a stored pool could serve the request")
    monkeypatch.setattr(core.search, "search", refuse)
    monkeypatch.setattr(core.mine, "search", refuse)
    monkeypatch.setattr(core.mine, "build_index", refuse)
    for name, params in PARAMS.items():
        run = mine(store, MineRequest(strategy=name, model=PRECOMPUTED, num_negatives=3,
                                      params=params))
        assert run.status == "done" and run.search["reused_pool_of"] == base.run_id
        assert run.search["recall"] == base.search["recall"]
        assert "search" not in run.timings and run.filter_counts["selected"] > 0
    # The reused run inherits the pool's suspicion, candidate by candidate.
    reused = store.run_candidates(run.run_id).set_index(["query_id", "doc_id"])["suspicion"]
    first = store.run_candidates(base.run_id).set_index(["query_id", "doc_id"])["suspicion"]
    assert reused.notna().all()
    assert (reused - first.reindex(reused.index)).abs().max() < 1e-6


@pytest.mark.parametrize("name", list(PARAMS))
def test_a_reused_pool_selects_what_a_fresh_search_selects(vectors_store, name):
    store = vectors_store
    mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3, seed=3))
    request = MineRequest(strategy=name, model=PRECOMPUTED, num_negatives=3,
                          params=PARAMS[name], seed=3)
    reused = mine(store, request)
    fresh = mine(store, MineRequest(**{**request.__dict__, "reuse_pool": False}))
    assert "reused_pool_of" in reused.search and "reused_pool_of" not in fresh.search
    assert _selected(store, reused) == _selected(store, fresh)
    assert reused.short_queries == fresh.short_queries


def test_a_pool_too_shallow_is_searched_again(vectors_store, monkeypatch):
    store = vectors_store
    base = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3,
                                   pool_depth=10))
    deeper = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3,
                                     pool_depth=50))
    assert "reused_pool_of" not in deeper.search and deeper.pool_depth == 50
    # A ceiling that leaves queries short of k within 10 candidates would widen past storage.
    searches = []
    real = core.mine.search
    monkeypatch.setattr(core.mine, "search", lambda *a, **k: searches.append(1) or real(*a, **k))
    strict = mine(store, MineRequest(strategy="positive_aware", model=PRECOMPUTED,
                                     num_negatives=3, pool_depth=10,
                                     params={"mode": "absolute", "threshold": 0.3}))
    assert searches and "reused_pool_of" not in strict.search
    assert base.run_id != strict.run_id


def test_decisions_made_since_apply_when_reusing(vectors_store):
    store = vectors_store
    base = mine(store, MineRequest(strategy="curated", model=PRECOMPUTED, num_negatives=3))
    frame = store.run_candidates(base.run_id)
    chosen = frame[frame["selected"]].iloc[0]
    decide(store, base.run_id, chosen["query_id"], chosen["doc_id"], "false_negative", "ann")
    again = mine(store, MineRequest(strategy="curated", model=PRECOMPUTED, num_negatives=3))
    assert again.search["reused_pool_of"] == base.run_id
    assert (chosen["query_id"], chosen["doc_id"]) not in _selected(store, again)


def test_reuse_can_be_switched_off(vectors_store):
    store = vectors_store
    mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3))
    run = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3,
                                  reuse_pool=False))
    assert "reused_pool_of" not in run.search and "search" in run.timings


def test_given_negatives_keep_their_rows_and_suspicion_when_reusing(store, tmp_path):
    from core.ingest import ingest

    words = ["star", "sauce", "river", "engine", "violin", "glacier", "bread", "comet"]
    rows = pd.DataFrame({
        "anchor": [f"question about {w}" for w in words],
        "positive": [f"an answer about {w}" for w in words],
        "negative": [f"an unrelated note {i} on {words[i - 1]}" for i in range(len(words))],
    })
    path = tmp_path / "triplets.jsonl"
    rows.to_json(path, orient="records", lines=True)
    ingest(store, path)
    base = mine(store, MineRequest(strategy="top_k", num_negatives=1, pool_depth=3))
    again = mine(store, MineRequest(strategy="positive_aware", num_negatives=1, pool_depth=3,
                                    params={"mode": "percent", "threshold": 0.99}))
    assert again.search["reused_pool_of"] == base.run_id
    first, second = (store.run_candidates(r.run_id) for r in (base, again))
    key = ["query_id", "doc_id"]
    assert set(map(tuple, first[first.source == "given"][key].to_numpy())) == set(
        map(tuple, second[second.source == "given"][key].to_numpy()))
    assert second["suspicion"].notna().all()


# -- a grown dataset: only the new documents are searched ---------------------------------------

def _without_documents(folder, target, drop: set[str]):
    """A copy of a precomputed-vector folder without the documents ``drop``."""
    import shutil

    shutil.copytree(folder, target)
    table = pq.read_table(folder / "corpus.vectors.parquet")
    keep = pc.invert(pc.is_in(table.column("id"), value_set=pa.array(sorted(drop), pa.string())))
    pq.write_table(table.filter(keep), target / "corpus.vectors.parquet")
    return target


def _pool(store, run):
    frame = store.run_candidates(run.run_id).sort_values(["query_id", "rank", "doc_id"])
    return frame[["query_id", "doc_id", "rank", "score", "source", "eligible", "selected",
                  "suspicion", "reasons", "signals"]].reset_index(drop=True)


@pytest.mark.parametrize("name", list(PARAMS))
def test_a_grown_dataset_mines_what_a_fresh_search_mines(store, tmp_path, monkeypatch, name):
    full = write_vector_folder(tmp_path / "full", n_docs=400, n_queries=30)
    positives = {line.split("\t")[1] for line in
                 (full / "qrels" / "train.tsv").read_text().splitlines()[1:]}
    new = {f"d{i}" for i in range(0, 400, 7)} - positives  # about 14 % of the corpus
    ingest_vectors(store, _without_documents(full, tmp_path / "base", new), name="v")
    base = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3))
    ingest_vectors(store, full, name="v")  # version 2 of the same dataset, grown
    request = MineRequest(strategy=name, model=PRECOMPUTED, num_negatives=3,
                          params=PARAMS[name], seed=2)

    def refuse(*args, **kwargs):
        raise AssertionError("built an index although only the new documents needed searching")
    with monkeypatch.context() as patch:
        patch.setattr(core.mine, "build_index", refuse)
        grown = mine(store, request)
    fresh = mine(store, MineRequest(**{**request.__dict__, "reuse_pool": False}))
    assert grown.search["grown_from"] == base.run_id and "grown_from" not in fresh.search
    assert grown.search["new_documents"] == len(new) and grown.search["searched_again"] == 0
    pd.testing.assert_frame_equal(_pool(store, grown), _pool(store, fresh))
    assert grown.short_queries == fresh.short_queries


def test_changed_queries_and_documents_are_searched_again(store, tmp_path):
    from tests.conftest import TOPICS, ingest_tiny, topical_corpus, write_beir

    corpus, queries, qrels = topical_corpus()
    added = {f"{topic}-{j}" for topic in TOPICS for j in (6, 9)}  # positives are 0-3
    write_beir(tmp_path / "topical", corpus={d: t for d, t in corpus.items() if d not in added},
               queries=queries, qrels=qrels)
    ingest_tiny(store, tmp_path / "topical")
    base = mine(store, MineRequest(strategy="top_k", num_negatives=3, pool_depth=10))
    corpus["music-5"] = ("Music note 5", "A new text about a concert and its melody.")  # changed
    del corpus["finance-7"]  # removed
    qrels = [r for r in qrels if r[0] != "q-cooking-0"] + [("q-cooking-0", "cooking-5", 1)]
    write_beir(tmp_path / "topical", corpus=corpus, queries=queries, qrels=qrels)
    ingest_tiny(store, tmp_path / "topical")
    request = MineRequest(strategy="top_k", num_negatives=3, pool_depth=10)
    grown = mine(store, request)
    fresh = mine(store, MineRequest(**{**request.__dict__, "reuse_pool": False}))
    assert grown.search["grown_from"] == base.run_id
    assert grown.search["new_documents"] == len(added) + 1
    # q-cooking-0's positives changed; music and finance pools held the changed or removed text.
    assert 1 <= grown.search["searched_again"] < len(queries)
    grown_pool, fresh_pool = _pool(store, grown), _pool(store, fresh)
    pd.testing.assert_frame_equal(grown_pool.drop(columns="suspicion"),
                                    fresh_pool.drop(columns="suspicion"))
    assert (grown_pool["suspicion"] - fresh_pool["suspicion"]).abs().max() < 1e-6


def test_a_renamed_dataset_is_not_grown_from(store, tmp_path):
    full = write_vector_folder(tmp_path / "full", n_docs=200, n_queries=10)
    ingest_vectors(store, full, name="a")
    mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3))
    ingest_vectors(store, full, name="b")
    run = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3))
    assert "grown_from" not in run.search and "search" in run.timings
