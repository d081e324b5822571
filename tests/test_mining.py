"""Mining strategies: a contract every registered strategy meets, then each one's own rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import WorkbenchError
from core.mine import MineRequest, mine
from core.mining import (
    QueryPool, get_strategy, parse_params, register, strategy_names,
)
from core.mining.positive_aware import PositiveAwareParams
from core.text import document_text
from tests.conftest import ingest_tiny, topical_corpus, write_beir

# Parameters that make each strategy satisfiable on the 60-document topical corpus.
CONTRACT_PARAMS = {
    "rank_window": {"lo": 2, "hi": 30},
    "simans": {"pool": 30},
    "cluster": {"n_clusters": 6},
}


@pytest.fixture
def topical_store(store, tmp_path):
    corpus, queries, qrels = topical_corpus()
    # Plant an exact duplicate of one positive under another id: it must never be a negative.
    corpus["dup-of-astronomy-0"] = corpus["astronomy-0"]
    ingest_tiny(store, write_beir(tmp_path / "topical", corpus, queries, qrels))
    return store


def _selected(store, run) -> pd.DataFrame:
    cands = store.run_candidates(run.run_id)
    return cands[cands["selected"]]


def test_registry_lists_the_literature_strategies():
    assert {"curated", "top_k", "positive_aware", "rank_window", "simans", "cluster", "bm25"} <= set(
        strategy_names())


def test_registry_refuses_duplicates_and_names_valid_choices():
    with pytest.raises(ValueError, match="already registered"):
        register(get_strategy("top_k"))
    with pytest.raises(WorkbenchError, match="unknown strategy .nope.; choose one of curated, top_k"):
        get_strategy("nope")


@pytest.mark.parametrize("name", strategy_names())
def test_strategy_contract(topical_store, name):
    """Shapes, never a positive (nor its duplicate), k or reported short, deterministic by seed."""
    store = topical_store
    params = CONTRACT_PARAMS.get(name, {})
    k = 4
    run = mine(store, MineRequest(strategy=name, num_negatives=k, params=params, seed=7))
    again = mine(store, MineRequest(strategy=name, num_negatives=k, params=params, seed=7))
    assert run.status == "done" and run.n_queries == 12
    sel, sel2 = _selected(store, run), _selected(store, again)
    assert sorted(zip(sel.query_id, sel.doc_id)) == sorted(zip(sel2.query_id, sel2.doc_id))

    positives = store.dataset_frame(store.get_dataset().dataset_id, "positives")
    pos_pairs = set(zip(positives.query_id, positives.doc_id))
    cands = store.run_candidates(run.run_id)
    assert not set(zip(cands.query_id, cands.doc_id)) & pos_pairs
    assert "dup-of-astronomy-0" not in set(
        cands[cands.query_id == "q-astronomy-0"].doc_id)
    assert run.filter_counts["duplicates_of_positive_excluded"] == 1

    per_query = sel.groupby("query_id").size().reindex(
        store.dataset_frame(store.get_dataset().dataset_id, "queries").query_id, fill_value=0)
    assert (per_query <= k).all()
    short = set(per_query[per_query < k].index)
    assert short == set(run.short_queries)
    assert run.filter_counts["selected"] == len(sel)
    assert sel["eligible"].all()
    search_rows = cands[cands.source != "given"]
    for _, group in search_rows.groupby("query_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert not group.doc_id.duplicated().any()
    assert np.isfinite(cands.score).all() and np.isfinite(cands.pos_score).all()


@pytest.mark.parametrize("name", ["simans", "rank_window", "cluster"])
def test_seed_changes_random_choices(topical_store, name):
    params = dict(CONTRACT_PARAMS[name])
    if name == "cluster":
        params["sampling"] = "random"
    runs = [mine(topical_store, MineRequest(strategy=name, num_negatives=3, params=params, seed=s))
            for s in (1, 2)]
    picks = [set(zip(*_selected(topical_store, r)[["query_id", "doc_id"]].T.values))
             for r in runs]
    assert picks[0] != picks[1]


def test_top_k_takes_the_highest_scoring_non_positives(topical_store):
    run = mine(topical_store, MineRequest(strategy="top_k", num_negatives=3))
    cands = topical_store.run_candidates(run.run_id)
    for _, group in cands.groupby("query_id"):
        assert group.sort_values("rank")["selected"].tolist()[:3] == [True] * 3
        assert (np.diff(group.sort_values("rank").score) <= 1e-6).all()


def test_positive_aware_respects_the_ceiling_and_widens(topical_store):
    # A shallow pool forces widening: the first candidates sit above the ceiling.
    run = mine(topical_store, MineRequest(
        strategy="positive_aware", num_negatives=4, pool_depth=4,
        params={"mode": "percent", "threshold": "0.8"}))
    sel = _selected(topical_store, run)
    assert (sel.score <= 0.8 * sel.pos_score + 1e-6).all()
    assert run.short_queries == [] and run.filter_counts["widened_queries"] > 0
    assert run.filter_counts["above_ceiling"] > 0


@pytest.mark.parametrize("mode,threshold,check", [
    ("absolute", 0.5, lambda s, p: s <= 0.5),
    ("margin", 0.1, lambda s, p: s <= p - 0.1),
    ("percent", 0.95, lambda s, p: s <= 0.95 * p),
])
def test_positive_aware_modes(mode, threshold, check):
    pool = QueryPool("q", np.arange(6), np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.2], np.float32),
                     0.75, True)
    strategy = get_strategy("positive_aware")
    params = parse_params(strategy, {"mode": mode, "threshold": threshold})
    sel = strategy.select(pool, 2, params, None, np.random.default_rng(0))
    chosen = pool.scores[sel.selected]
    assert len(chosen) == 2 and all(check(s, 0.75) for s in chosen)
    assert sel.removed["above_ceiling"] == int((~sel.eligible).sum())
    # The highest-scoring survivors are taken.
    assert list(chosen) == sorted(pool.scores[sel.eligible], reverse=True)[:2]


def test_positive_aware_uses_the_lowest_positive(store, tmp_path):
    corpus = {f"d{i}": ("", t) for i, t in enumerate([
        "the capital of France is Paris", "Paris France capital city facts",
        "bananas are yellow fruit", "France borders Spain and Italy", "Paris has many museums",
        "Tokyo is in Japan", "the Seine flows through Paris"])}
    queries = {"q": "what is the capital of France"}
    ingest_tiny(store, write_beir(tmp_path / "b", corpus, queries, [("q", "d0", 1), ("q", "d2", 1)]))
    run = mine(store, MineRequest(strategy="positive_aware", num_negatives=2,
                                  params={"mode": "percent"}))
    cands = store.run_candidates(run.run_id)
    from core.embed import load_encoder
    enc = load_encoder(None)
    v = enc.encode([queries["q"], document_text("", corpus["d0"][1]),
                    document_text("", corpus["d2"][1])])
    lowest = min(float(v[0] @ v[1]), float(v[0] @ v[2]))
    assert cands.pos_score.iloc[0] == pytest.approx(lowest, abs=1e-4)


def test_rank_window_samples_inside_the_window_and_reports_short(topical_store):
    run = mine(topical_store, MineRequest(strategy="rank_window", num_negatives=3,
                                          params={"lo": 5, "hi": 12}))
    sel = _selected(topical_store, run)
    assert sel["rank"].between(6, 12).all()  # ranks are 1-based in the store, lo is 0-based
    tight = mine(topical_store, MineRequest(strategy="rank_window", num_negatives=3,
                                            params={"lo": 5, "hi": 7}))
    assert len(tight.short_queries) == 12 and tight.filter_counts["widened_queries"] == 0
    with pytest.raises(WorkbenchError, match="0 <= lo < hi"):
        mine(topical_store, MineRequest(strategy="rank_window", params={"lo": 9, "hi": 3}))


def test_simans_prefers_scores_near_the_positive():
    strategy = get_strategy("simans")
    scores = np.linspace(0.95, 0.0, 200).astype(np.float32)
    pool = QueryPool("q", np.arange(200), scores, 0.5, True)
    sharp = parse_params(strategy, {"a": 200.0})
    picks = np.concatenate([
        scores[strategy.select(pool, 5, sharp, None, np.random.default_rng(s)).selected]
        for s in range(40)])
    assert abs(float(np.median(picks)) - 0.5) < 0.05
    flat = parse_params(strategy, {"a": 0.0})
    spread = np.concatenate([
        scores[strategy.select(pool, 5, flat, None, np.random.default_rng(s)).selected]
        for s in range(40)])
    assert spread.std() > 3 * picks.std()


def test_cluster_negatives_share_the_query_cluster(topical_store):
    run = mine(topical_store, MineRequest(strategy="cluster", num_negatives=3,
                                          params={"n_clusters": 6}))
    sel = _selected(topical_store, run)
    topic_of = lambda doc: doc.split("-")[0]  # noqa: E731
    same_topic = [topic_of(d) == q.split("-")[1] for q, d in zip(sel.query_id, sel.doc_id)]
    assert np.mean(same_topic) >= 0.9
    assert run.filter_counts["other_cluster"] > 0


def test_bm25_ranks_lexically(store, tmp_path):
    corpus = {"d0": ("", "zebra stripes are black and white"),
              "d1": ("", "zebra crossings help pedestrians cross roads"),
              "d2": ("", "the savanna is home to many animals"),
              "d3": ("", "pedestrians and traffic lights"),
              "d4": ("", "an unrelated note about cooking pasta")}
    ingest_tiny(store, write_beir(tmp_path / "b", corpus, {"q": "zebra crossings pedestrians"},
                                  [("q", "d0", 1)]))
    run = mine(store, MineRequest(strategy="bm25", num_negatives=2))
    cands = store.run_candidates(run.run_id)
    assert cands.sort_values("rank").doc_id.tolist()[:2] == ["d1", "d3"]
    assert (cands.source == "lexical").all() and cands.lexical_score.notna().all()


def test_parameter_errors_are_one_sentence(topical_store):
    with pytest.raises(WorkbenchError, match="has no parameter 'lol' .*mode, threshold"):
        mine(topical_store, MineRequest(strategy="positive_aware", params={"lol": "1"}))
    with pytest.raises(WorkbenchError, match="must be float, got 'abc'"):
        mine(topical_store, MineRequest(strategy="positive_aware", params={"threshold": "abc"}))
    with pytest.raises(WorkbenchError, match="mode must be one of"):
        mine(topical_store, MineRequest(strategy="positive_aware", params={"mode": "x"}))
    with pytest.raises(WorkbenchError, match="at least 1"):
        mine(topical_store, MineRequest(strategy="top_k", num_negatives=0))
    with pytest.raises(WorkbenchError, match="too few for 500 negatives"):
        mine(topical_store, MineRequest(strategy="top_k", num_negatives=500, pool_depth=500))
    assert PositiveAwareParams("margin", 0.1).ceiling(0.8) == pytest.approx(0.7)


def test_failure_midway_marks_the_run_failed(topical_store, monkeypatch):
    strategy = get_strategy("top_k")

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(strategy, "select", explode)
    with pytest.raises(RuntimeError):
        mine(topical_store, MineRequest(strategy="top_k"))
    run = topical_store.list_runs()[0]
    assert run.status == "failed" and "disk on fire" in run.error


def test_progress_reports_each_phase(topical_store):
    phases = []
    mine(topical_store, MineRequest(strategy="top_k"),
         progress=lambda phase, done, total: phases.append(phase))
    assert {"encode queries", "encode documents", "search", "mine"} <= set(phases)


def test_given_negatives_are_kept_as_candidates(store, tmp_path):
    rows = pd.DataFrame({
        "anchor": ["what orbits a star", "what orbits a star", "best pasta sauce"],
        "positive": ["a planet orbits a star", "comets orbit the sun", "tomato garlic sauce"],
        "negative": ["a recipe for bread", "bananas are yellow", "a galaxy far away"],
    })
    path = tmp_path / "triplets.jsonl"
    rows.to_json(path, orient="records", lines=True)
    from core.ingest import ingest

    ingest(store, path)
    run = mine(store, MineRequest(strategy="top_k", num_negatives=1))
    cands = store.run_candidates(run.run_id)
    docs = store.dataset_frame(store.get_dataset().dataset_id, "documents")
    text_of = dict(zip(docs.doc_id, docs.text))
    given = cands[cands.source == "given"]
    assert sorted(text_of[d] for d in given.doc_id) == sorted(rows.negative)
    # In the pool they keep their rank and may be selected like any other candidate.
    assert given["rank"].notna().all()
