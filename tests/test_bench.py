"""The hidden-positive benchmark: metrics, the labeled split, and the command end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.cli import main
from core.errors import WorkbenchError
from core.store import Store
from core.evaluation import (
    derive_labeled_split, oracle_hardness, read_relevant, score_export, suspicion_auc,
)
from tests.conftest import topical_corpus, write_beir


def test_score_export_counts_hidden_positives():
    negatives = pd.DataFrame({"query_id": ["a", "a", "b"], "doc_id": ["x", "y", "z"],
                              "score": [0.9, 0.5, 0.4]})
    score = score_export(negatives, {("a", "x")}, ["a", "b", "c"], k=2)
    assert score.fn_rate == pytest.approx(1 / 3)
    assert score.fn_queries == pytest.approx(1 / 3)
    assert score.hardness == pytest.approx(0.6)
    assert score.filled == pytest.approx(1 / 3)


def test_suspicion_auc_and_oracle():
    pool = pd.DataFrame({"query_id": ["a"] * 4, "doc_id": list("wxyz"), "rank": [1, 2, 3, 60],
                         "score": [0.9, 0.8, 0.7, 0.1], "suspicion": [0.9, 0.1, 0.2, 0.99]})
    relevant = {("a", "w")}
    assert suspicion_auc(pool, relevant) == 1.0  # rank 60 is outside the top-50 pool
    assert oracle_hardness(pool, relevant, k=2) == pytest.approx(0.75)


def test_derived_split_follows_the_protocol():
    qrels = pd.DataFrame({"query_id": ["2", "2", "2", "10", "10", "3"],
                          "doc_id": ["d2", "d1", "d3", "d9", "d8", "d1"],
                          "grade": [2, 2, 1, 1, 0, 1]})
    split = derive_labeled_split(qrels)
    # Query 3 has one relevant document, query 10 has one relevant (grade 0 is not relevant).
    assert split["query_id"].tolist() == ["2"]
    import random

    rng = random.Random(0)
    assert split["doc_id"].tolist() == [rng.choice(["d1", "d2"])]


def test_read_relevant_skips_header_and_grade_zero(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq\td1\t1\nq\td2\t0\n")
    assert read_relevant(path) == {("q", "d1")}


def _bench_folder(tmp_path, corpus, queries, full, qrels):
    """A BEIR folder whose test split holds ``full`` and whose labeled split holds each query's
    first pair of ``qrels`` (the benchmark's labeled positive)."""
    root = write_beir(tmp_path / "slice", corpus, queries, full, split="test")
    labeled = pd.DataFrame(qrels, columns=["query-id", "corpus-id", "score"]).groupby(
        "query-id").head(1)
    labeled.to_csv(root / "qrels" / "labeled.tsv", sep="\t", index=False)
    return root


def test_bench_command_end_to_end(tmp_path, capsys, monkeypatch):
    corpus, queries, qrels = topical_corpus(docs_per_topic=8)
    # Full judgements: the even-numbered documents of the query's topic are relevant, so the
    # hard candidates are a mix of hidden positives and true negatives.
    full = [(q, d, 1) for q in queries for d in corpus
            if d.startswith(q.split("-")[1] + "-") and int(d.split("-")[1]) % 2 == 0]
    root = _bench_folder(tmp_path, corpus, queries, full, qrels)
    out = tmp_path / "rows.jsonl"
    import core.bench

    relearned: list[int] = []  # the second review curve re-learns as the Review page does
    relearn = core.bench.relearn_if_due
    monkeypatch.setattr(core.bench, "relearn_if_due", lambda store, run_id, every: (
        relearned.append(every) or relearn(store, run_id, every)))
    code = main(["bench", "hidden-positive", "--beir", str(root), "--k", "3",
                 "--review-budget", "0,2", "--learn-decisions", "80", "--relearn-every", "6",
                 "--strategies", "curated,top_k", "--cache", str(tmp_path / "cache.duckdb"),
                 "--json", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    methods = {r["method"] for r in rows if r["kind"] == "strategy"}
    assert {"curated", "top_k", "st-TopK-PercPos 0.95", "st-FlagEmbedding 10-210"} <= methods
    cold = [r for r in rows if r["kind"] == "suspicion" and r["method"] == "cold"]
    assert cold and 0.0 <= cold[0]["roc_auc"] <= 1.0
    learned = next(r for r in rows if r["kind"] == "suspicion" and r["method"] == "learned")
    assert isinstance(learned["learned_weights"], dict)  # empty when no correction applied
    assert bool(learned["learned_weights"]) == learned["corrections"]
    for method in ("curated", "curated, re-learning /6"):
        curve = [r for r in rows if r["kind"] == "review" and r["method"] == method]
        assert [r["reviews_per_query"] for r in curve] == [0, 2]
        assert curve[1]["decisions"] == 2 * 12
        assert curve[1]["fn_rate"] <= curve[0]["fn_rate"]
    assert relearned and set(relearned) == {6}  # checked after each batch of that series only
    printed = capsys.readouterr().out
    assert "fn_rate" in printed and "suspicion (cold)" in printed


def test_bench_rows_file_is_written_whole_or_not_at_all(tmp_path, capsys, monkeypatch):
    """--json is written at the end, atomically: a run that fails part-way leaves the earlier
    file as it was (it once left it empty), and a folder that does not exist is refused before
    anything runs."""
    import core.bench

    def failing(config, report):
        report({"kind": "strategy", "method": "top_k"})
        raise WorkbenchError("the run failed part-way")

    monkeypatch.setattr(core.bench, "run_hidden_positive", failing)
    out = tmp_path / "rows.jsonl"
    out.write_text('{"earlier": "rows"}\n')
    args = ["bench", "hidden-positive", "--beir", str(tmp_path), "--json", str(out)]
    assert main(args) == 1
    assert out.read_text() == '{"earlier": "rows"}\n'
    assert main([*args[:-1], str(tmp_path / "missing" / "rows.jsonl")]) == 1
    assert "give a file in an existing folder" in capsys.readouterr().err


def test_bench_consults_a_teacher_and_keeps_its_vectors(tmp_path, tiny_model_dir):
    """With --teacher every run's suspicion reads the teacher, whose vectors the cache workspace
    keeps beside the mining model's, so later phases and runs do not encode them again."""
    corpus, queries, qrels = topical_corpus(docs_per_topic=6)
    root = _bench_folder(tmp_path, corpus, queries, qrels, qrels)
    cache = tmp_path / "cache.duckdb"
    code = main(["bench", "hidden-positive", "--beir", str(root), "--k", "2",
                 "--review-budget", "0", "--learn-decisions", "0", "--strategies", "top_k",
                 "--cache", str(cache), "--teacher", str(tiny_model_dir),
                 "--teacher-kind", "bi-encoder"])
    assert code == 0
    store = Store(cache)
    try:
        names = [name for _, name, _ in store.list_models()]
        assert len(names) == 2 and any(n.startswith("teacher ") for n in names)
    finally:
        store.close()
    assert main(["bench", "hidden-positive", "--beir", str(root), "--learn-decisions", "0",
                 "--review-budget", "0", "--strategies", "top_k", "--cache", str(cache),
                 "--teacher", str(tiny_model_dir), "--teacher-kind", "llm"]) == 1


def test_bench_keeps_a_cross_encoder_teachers_pair_scores(tmp_path, cross_encoder_dir,
                                                          monkeypatch):
    """A cross-encoder teacher's pair scores go to the cache workspace with the vectors: the
    first bench run's later phases and a second run score no pair again (a spy counts predict's
    pairs and passes them to the real, randomly initialised model)."""
    from sentence_transformers import CrossEncoder

    calls: list[int] = []
    predict = CrossEncoder.predict
    monkeypatch.setattr(CrossEncoder, "predict", lambda self, pairs, *a, **kw: (
        calls.append(len(pairs)) or predict(self, pairs, *a, **kw)))
    corpus, queries, qrels = topical_corpus(docs_per_topic=6)
    root = _bench_folder(tmp_path, corpus, queries, qrels, qrels)
    cache = tmp_path / "cache.duckdb"
    args = ["bench", "hidden-positive", "--beir", str(root), "--k", "2", "--review-budget", "0",
            "--learn-decisions", "0", "--strategies", "top_k,curated", "--cache", str(cache),
            "--teacher", str(cross_encoder_dir)]
    assert main(args) == 0
    first = sum(calls)
    with Store(cache) as store:
        assert first and store.count_pair_scores() == first  # each pair once over every phase
    calls.clear()
    assert main(args) == 0
    assert calls == []


def test_bench_mines_with_another_model(tmp_path, tiny_model_dir):
    """--model mines every phase with that model: the cache keeps its vectors, not MiniLM's."""
    corpus, queries, qrels = topical_corpus(docs_per_topic=6)
    root = _bench_folder(tmp_path, corpus, queries, qrels, qrels)
    cache = tmp_path / "cache.duckdb"
    assert main(["bench", "hidden-positive", "--beir", str(root), "--k", "2",
                 "--review-budget", "0", "--learn-decisions", "0", "--strategies", "top_k",
                 "--cache", str(cache), "--model", str(tiny_model_dir)]) == 0
    store = Store(cache)
    try:
        models = store.list_models()
        assert len(models) == 1 and models[0][2] == 32  # the tiny model's dimension
    finally:
        store.close()

