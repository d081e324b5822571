"""The workspace store: schema, migrations, datasets, cache, runs and the decision log."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.errors import WorkbenchError
from core.store import SCHEMA_VERSION, DatasetContent, Store


def _content(name: str = "ds", doc_text: str = "doc one") -> DatasetContent:
    return DatasetContent(
        name=name, format="beir", source="/x", split="train",
        queries=pd.DataFrame({"query_id": ["q1"], "text": ["query one"], "text_hash": ["hq1"]}),
        documents=pd.DataFrame({"doc_id": ["d1", "d2"], "title": [None, "T"],
                                "text": [doc_text, "doc two"], "text_hash": ["hd1", "hd2"]}),
        positives=pd.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "grade": [1],
                                "source": ["qrels"]}),
        given_negatives=pd.DataFrame({"query_id": ["q1"], "doc_id": ["d2"], "source": ["given"]}),
    )


def test_schema_created_and_reopened(workspace):
    s = Store(workspace)
    assert s.schema_version() == SCHEMA_VERSION
    s.close()
    s = Store(workspace)
    assert s.schema_version() == SCHEMA_VERSION
    s.close()
    con = duckdb.connect(str(workspace))
    versions = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    con.close()
    assert [v[0] for v in versions] == list(range(1, SCHEMA_VERSION + 1))


def test_newer_schema_is_refused(workspace):
    Store(workspace).close()
    con = duckdb.connect(str(workspace))
    con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION + 5])
    con.close()
    with pytest.raises(WorkbenchError, match="newer than this program"):
        Store(workspace)


def test_directory_as_workspace_is_refused(tmp_path):
    with pytest.raises(WorkbenchError, match="is a directory"):
        Store(tmp_path)


def test_datasets_reingest_retires_old_version(store):
    first = store.add_dataset(_content())
    assert (first.n_queries, first.n_documents, first.n_positives) == (1, 2, 1)
    second = store.add_dataset(_content(doc_text="doc one, revised"))
    assert store.get_dataset().dataset_id == second.dataset_id
    assert [d.dataset_id for d in store.list_datasets()] == [second.dataset_id]
    everything = store.list_datasets(include_inactive=True)
    assert {d.dataset_id: d.active for d in everything} == {
        first.dataset_id: False, second.dataset_id: True}
    docs = store.dataset_frame(second.dataset_id, "documents")
    assert docs["text"].tolist() == ["doc one, revised", "doc two"]
    assert store.dataset_frame(first.dataset_id, "given_negatives")["doc_id"].tolist() == ["d2"]


def test_get_dataset_errors_name_the_problem(store):
    with pytest.raises(WorkbenchError, match="no dataset yet"):
        store.get_dataset()
    store.add_dataset(_content("alpha"))
    with pytest.raises(WorkbenchError, match="no dataset named 'beta' .*alpha"):
        store.get_dataset("beta")


def test_hostile_names_and_texts_are_plain_data(store):
    hostile = "'); DROP TABLE decisions; --"
    content = _content(hostile, doc_text=hostile)
    info = store.add_dataset(content)
    assert store.get_dataset(hostile).dataset_id == info.dataset_id
    store.record_decision("hq1", "hd1", "hard_negative", hostile, note=hostile)
    assert store.latest_decisions()[0].annotator == hostile
    assert store.dataset_frame(info.dataset_id, "documents")["text"][0] == hostile


def test_embedding_cache_roundtrip_and_keys(store):
    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    store.put_vectors("m1", "", ["a", "b", "c"], vectors)
    store.put_vectors("m1", "", ["a"], vectors[:1] * 0)  # existing keys are left alone
    got = store.cached_vectors("m1", "", ["c", "a", "zz"])
    assert set(got) == {"a", "c"}
    np.testing.assert_array_equal(got["a"], vectors[0])
    assert store.cached_vectors("m1", "query: ", ["a"]) == {}
    assert store.cached_vectors("m2", "", ["a"]) == {}
    assert store.count_vectors() == 3 and store.count_vectors("m2") == 0


def _frame(selected=(True, False)) -> pd.DataFrame:
    return pd.DataFrame({
        "query_id": ["q1", "q1"], "doc_id": ["d2", "d1"], "rank": [1, 2],
        "score": [0.9, 0.5], "pos_score": [0.8, 0.8], "lexical_score": [np.nan, np.nan],
        "source": ["search", "search"], "eligible": [True, True], "selected": list(selected),
    })


def test_runs_lifecycle(store):
    ds = store.add_dataset(_content())
    with pytest.raises(WorkbenchError, match="no finished mining run"):
        store.get_run()
    run_id = store.create_run(ds.dataset_id, "top_k", {"x": 1}, "m", "fp", "", "", 0, 5, 100)
    assert store.get_run(run_id).status == "running"
    store.finish_run(run_id, _frame(), {"total": 1.5}, {"selected": 1}, 1, ["q1"])
    run = store.get_run()
    assert (run.run_id, run.status, run.params, run.timings, run.filter_counts,
            run.short_queries) == (run_id, "done", {"x": 1}, {"total": 1.5}, {"selected": 1}, ["q1"])
    failed = store.create_run(ds.dataset_id, "top_k", {}, "m", "fp", "", "", 0, 5, 100)
    store.fail_run(failed, "boom")
    assert store.get_run(failed).status == "failed" and store.get_run(failed).error == "boom"
    assert store.get_run().run_id == run_id  # newest *finished* run
    cands = store.run_candidates(run_id)
    assert cands["doc_id"].tolist() == ["d2", "d1"]
    assert cands["doc_hash"].tolist() == ["hd2", "hd1"]
    with pytest.raises(WorkbenchError, match="no run 99"):
        store.get_run(99)


def test_decisions_are_append_only_and_latest_wins(store):
    ds = store.add_dataset(_content())
    run_id = store.create_run(ds.dataset_id, "top_k", {}, "m", "fp", "", "", 0, 5, 100)
    store.finish_run(run_id, _frame(), {}, {}, 1, [])
    store.record_decision("hq1", "hd2", "hard_negative", "ann")
    store.record_decision("hq1", "hd2", "false_negative", "bob", note="same entity")
    latest = store.latest_decisions()
    assert [(d.label, d.annotator, d.note) for d in latest] == [
        ("false_negative", "bob", "same entity")]
    assert store.run_candidates(run_id).set_index("doc_id")["decision"]["d2"] == "false_negative"
    undone = store.retract_last_decision("bob")
    assert undone is not None and undone.label == "false_negative"
    assert [d.label for d in store.latest_decisions()] == ["hard_negative"]
    assert len(store.decision_log()) == 2  # nothing deleted
    assert store.retract_last_decision("bob") is None
    # Undo only touches the annotator's own decisions.
    assert store.retract_last_decision("ann").annotator == "ann"
    assert store.latest_decisions() == []


def test_decision_validation(store):
    with pytest.raises(WorkbenchError, match="not one of"):
        store.record_decision("q", "d", "maybe", "ann")
    with pytest.raises(WorkbenchError, match="annotator name is required"):
        store.record_decision("q", "d", "unsure", "  ")


def test_decisions_survive_reingest(store):
    ds = store.add_dataset(_content())
    store.record_decision("hq1", "hd2", "false_negative", "ann")
    new = store.add_dataset(_content())
    run_id = store.create_run(new.dataset_id, "top_k", {}, "m", "fp", "", "", 0, 5, 100)
    store.finish_run(run_id, _frame(), {}, {}, 1, [])
    assert ds.dataset_id != new.dataset_id
    assert store.run_candidates(run_id).set_index("doc_id")["decision"]["d2"] == "false_negative"


def test_failed_transaction_writes_nothing(store, monkeypatch):
    bad = _content()
    bad = DatasetContent(**{**bad.__dict__, "positives": pd.DataFrame({"query_id": ["q1"]})})
    with pytest.raises(Exception):
        store.add_dataset(bad)
    assert store.list_datasets(include_inactive=True) == []


def test_a_run_is_finished_with_its_suspicion_or_not_at_all(store):
    """The pool and its explained suspicion go in one transaction: a failure in the second
    leaves the run unfinished with no candidate stored (a run is never done without scores)."""
    ds = store.add_dataset(_content())
    scored = pd.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["d2", "d1"],
                           "suspicion": [0.2, 0.9], "reasons": ["[]", '["near-duplicate"]'],
                           "signals": ["{}", "{}"]})
    run_id = store.create_run(ds.dataset_id, "top_k", {}, "m", "fp", "", "", 0, 5, 100)
    with pytest.raises(Exception):
        store.finish_run(run_id, _frame(), {}, {}, 1, [],
                         suspicion=(scored.drop(columns="reasons"), "cold"))
    assert store.get_run(run_id).status == "running" and store.count_candidates(run_id) == 0
    store.finish_run(run_id, _frame(), {}, {}, 1, [], suspicion=(scored, "cold"))
    pool = store.run_candidates(run_id).set_index("doc_id")
    assert store.get_run(run_id).status == "done"
    assert pool["suspicion"].to_dict() == pytest.approx({"d1": 0.9, "d2": 0.2})
    # A run re-using that pool copies the scores in its own finishing transaction.
    again = store.create_run(ds.dataset_id, "top_k", {}, "m", "fp", "", "", 0, 5, 100)
    store.finish_run(again, _frame(), {}, {}, 1, [], suspicion_from=run_id)
    assert store.run_candidates(again).set_index("doc_id")["reasons"]["d1"] == '["near-duplicate"]'
