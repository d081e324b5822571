"""core.decisions: decisions outlive re-ingesting, re-mining and changing model or strategy; they
export to JSONL and import (merge) into other workspaces, idempotently and in any order."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.cli import main
from core.decisions import export_decisions, import_decisions, read_decisions
from core.errors import WorkbenchError
from core.export import ExportOptions, export_run
from core.ingest import ingest
from core.mine import MineRequest, mine
from core.review import decide, review_head
from core.store import Store
from tests.conftest import topical_corpus, write_beir
from tests.workloads import add_fake_run, synthetic_beir


def _records(store: Store) -> list[tuple]:
    """The log in a workspace-independent form (ids are local), sorted."""
    frame = store.decision_records().astype(object).where(lambda f: f.notna(), None)
    return sorted(tuple(str(v) for v in row) for row in frame.itertuples(index=False))


def _latest(store: Store) -> dict[tuple[str, str], tuple[str, str]]:
    return {(d.query_hash, d.doc_hash): (d.label, d.annotator) for d in store.latest_decisions()}


def _annotated(path, beir, decisions) -> tuple[Store, int]:
    """A workspace with ``beir`` ingested, a fake run and ``decisions`` (pool row, label, who)."""
    store = Store(path)
    dataset = ingest(store, beir, format="beir", split="train").dataset
    run_id = add_fake_run(store, dataset.dataset_id, depth=10)
    pool = store.run_candidates(run_id)
    for row, label, who in decisions:
        decide(store, run_id, pool["query_id"][row], pool["doc_id"][row], label, who,
               note=f"{who} on row {row}")
    return store, run_id


@pytest.fixture
def beir(tmp_path):
    return synthetic_beir(tmp_path / "beir", n_queries=8, docs_per_query=6)


def test_round_trip_into_an_empty_workspace_and_idempotent_import(tmp_path, beir):
    source, _ = _annotated(tmp_path / "a.duckdb", beir, [
        (0, "hard_negative", "alice"), (1, "false_negative", "alice"), (1, "unsure", "bob"),
        (2, "unsure", "bob"), (3, "hard_negative", "carol")])
    source.retract_last_decision("bob")  # bob's "unsure" on row 2: exported as retracted
    out = tmp_path / "decisions.jsonl"
    written = export_decisions(source, out)
    assert (written.decisions, written.retracted) == (5, 1)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["label"] for line in lines][:2] == ["hard_negative", "false_negative"]
    assert sum(line["retracted_at"] is not None for line in lines) == 1

    target = Store(tmp_path / "b.duckdb")
    first = import_decisions(target, out)
    assert (first.read, first.added, first.already_present, first.retractions_added) == (5, 5, 0, 1)
    assert _records(target) == _records(source)
    assert _latest(target) == _latest(source)
    again = import_decisions(target, out)
    assert (again.added, again.already_present, again.retractions_added) == (0, 5, 0)
    assert len(target.decision_log()) == 5 and _records(target) == _records(source)


def test_merging_annotators_work_gives_the_same_result_in_any_order(tmp_path, beir):
    alice, _ = _annotated(tmp_path / "alice.duckdb", beir, [
        (0, "hard_negative", "alice"), (1, "false_negative", "alice"), (2, "unsure", "alice")])
    bob, _ = _annotated(tmp_path / "bob.duckdb", beir, [
        (1, "hard_negative", "bob"), (2, "false_negative", "bob"), (4, "unsure", "bob")])
    bob.retract_last_decision("bob")
    files = {name: export_decisions(store, tmp_path / f"{name}.jsonl").path
             for name, store in (("alice", alice), ("bob", bob))}
    import_decisions(alice, files["bob"])
    import_decisions(bob, files["alice"])
    assert _records(alice) == _records(bob) and len(_records(alice)) == 6
    assert _latest(alice) == _latest(bob)
    # The newest decision per pair wins, whichever workspace it was recorded in.
    latest_labels = sorted(label for label, _ in _latest(alice).values())
    assert latest_labels == ["false_negative", "hard_negative", "hard_negative"]  # bob's
    # row-4 decision was undone, and the undo travelled with it.
    assert {who for _, who in _latest(alice).values()} == {"alice", "bob"}


def test_imported_decisions_apply_to_the_same_texts_under_other_ids(tmp_path, beir):
    source, run_id = _annotated(tmp_path / "a.duckdb", beir, [(0, "false_negative", "alice")])
    pair = source.run_candidates(run_id).iloc[0]
    export_decisions(source, tmp_path / "d.jsonl")
    # The same texts, renamed: decisions are keyed by content, not by id or dataset.
    corpus, queries, qrels = {}, {}, []
    for _, doc in source.dataset_frame(1, "documents").iterrows():
        corpus["X" + doc["doc_id"]] = (doc["title"], doc["text"][len(doc["title"]) + 1:])
    for _, query in source.dataset_frame(1, "queries").iterrows():
        queries["X" + query["query_id"]] = query["text"]
    positives = source.dataset_frame(1, "positives")
    qrels = [("X" + q, "X" + d, 1) for q, d in zip(positives["query_id"], positives["doc_id"])]
    renamed = write_beir(tmp_path / "renamed", corpus=corpus, queries=queries, qrels=qrels)
    target = Store(tmp_path / "b.duckdb")
    dataset = ingest(target, renamed, format="beir", split="train", name="other").dataset
    import_decisions(target, tmp_path / "d.jsonl")
    frame = target.dataset_frame(dataset.dataset_id, "documents")
    assert frame.loc[frame["doc_id"].eq("X" + pair["doc_id"]), "text_hash"].item() == \
        pair["doc_hash"]
    run_id = target.create_run(dataset.dataset_id, "top_k", {}, "m", "fp", "", "", 0, 1, 1)
    target.finish_run(run_id, pd.DataFrame({
        "query_id": ["X" + pair["query_id"]], "doc_id": ["X" + pair["doc_id"]], "rank": [1],
        "score": [0.5], "pos_score": [0.9], "lexical_score": [None], "source": ["search"],
        "eligible": [True], "selected": [True]}), {}, {}, 1, [])
    assert target.run_candidates(run_id)["decision"].tolist() == ["false_negative"]


def test_a_decision_on_texts_not_held_here_leaves_the_queue_working(tmp_path, beir):
    """Decisions travel between workspaces by text hash, so one may concern texts no dataset
    here holds; the review queue, which reads the dataset's decided pairs, still works (it once
    lost every column of its empty decided-pairs frame and failed)."""
    store, run_id = _annotated(tmp_path / "a.duckdb", beir, [])
    before = review_head(store, run_id, 3)  # reads the decided pairs with none decided
    store.record_decision("0" * 32, "1" * 32, "false_negative", "alice")
    after = review_head(store, run_id, 3)
    assert after[["query_id", "doc_id"]].equals(before[["query_id", "doc_id"]])


def test_export_refuses_other_suffixes_and_missing_folders(tmp_path, store):
    with pytest.raises(WorkbenchError, match="must end in .jsonl"):
        export_decisions(store, tmp_path / "d.csv")
    with pytest.raises(WorkbenchError, match="existing folder"):
        export_decisions(store, tmp_path / "missing" / "d.jsonl")


def test_cli_round_trip(tmp_path, beir, capsys):
    source, _ = _annotated(tmp_path / "a.duckdb", beir, [(0, "hard_negative", "alice"),
                                                         (1, "unsure", "bob")])
    expected = _records(source)
    source.close()
    out = tmp_path / "team.jsonl"
    assert main(["decisions", "export", "--workspace", str(tmp_path / "a.duckdb"),
                 "--out", str(out)]) == 0
    assert "wrote 2 decisions (0 retracted)" in capsys.readouterr().out
    target = tmp_path / "b.duckdb"
    for added, present in ((2, 0), (0, 2)):
        assert main(["decisions", "import", "--workspace", str(target), "--in", str(out)]) == 0
        assert f"{added} added, {present} already present" in capsys.readouterr().out
    with Store(target) as store:
        assert _records(store) == expected
    assert len(read_decisions(out)) == 2


# -- decisions outlive everything ------------------------------------------------------------------
def test_decisions_survive_reingest_remining_and_a_new_model_or_strategy(tmp_path,
                                                                         tiny_model_dir):
    corpus, queries, qrels = topical_corpus()
    beir = write_beir(tmp_path / "topical", corpus=corpus, queries=queries, qrels=qrels)
    store = Store(tmp_path / "ws.duckdb")
    ingest(store, beir, format="beir", split="train")
    first = mine(store, MineRequest(strategy="top_k", num_negatives=3, model=str(tiny_model_dir)))
    pool = store.run_candidates(first.run_id)
    picked = pool.drop_duplicates("query_id").head(6)
    labels = ["false_negative", "hard_negative", "unsure"] * 2
    for (q, d), label in zip(zip(picked["query_id"], picked["doc_id"]), labels):
        decide(store, first.run_id, q, d, label, "ann")
    log, latest = _records(store), _latest(store)

    ingest(store, beir, format="beir", split="train")  # a new version of the same dataset
    runs = [
        mine(store, MineRequest(strategy="top_k", num_negatives=3, model=str(tiny_model_dir))),
        mine(store, MineRequest(strategy="bm25", num_negatives=3, model=str(tiny_model_dir))),
        mine(store, MineRequest(strategy="curated", num_negatives=3)),  # the bundled model
    ]
    assert len({r.model_fp for r in runs}) == 2 and len({r.dataset_id for r in runs}) == 1
    assert runs[0].dataset_id != first.dataset_id
    assert _records(store) == log and _latest(store) == latest  # nothing dropped or changed
    active = store.get_dataset()
    for run in [first, *runs]:
        shown = store.run_candidates(run.run_id).dropna(subset=["decision"])
        found = {(q, d): label for q, d, label in
                 zip(shown["query_hash"], shown["doc_hash"], shown["decision"])}
        assert all(found[key] == label for key, (label, _) in latest.items() if key in found)
    # None is orphaned: every live decision names a query and a document of the active dataset.
    queries_now = set(store.dataset_frame(active.dataset_id, "queries")["text_hash"])
    docs_now = set(store.dataset_frame(active.dataset_id, "documents")["text_hash"])
    assert all(q in queries_now and d in docs_now for q, d in latest)
    # And an export of a new run honours them: a false negative is never a negative.
    wrong = next(key for key, (label, _) in latest.items() if label == "false_negative")
    out = tmp_path / "out.jsonl"
    export_run(store, runs[2].run_id, out, ExportOptions(format="flag-embedding"))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    texts = store.dataset_frame(active.dataset_id, "documents").set_index("text_hash")["text"]
    asked = store.dataset_frame(active.dataset_id, "queries").set_index("text_hash")["text"]
    [row] = [row for row in rows if row["query"] == asked[wrong[0]]]
    assert texts[wrong[1]] not in row["neg"]
    store.close()
