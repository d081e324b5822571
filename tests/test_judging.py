"""core.judging: the review queue written for a judge outside the app, and the judged file read
back as decisions (core.decisions), on a real curated run over the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from core.decisions import import_decisions, import_summary
from core.errors import InputError, WorkbenchError
from core.judging import write_queue
from core.mine import MineRequest, mine
from core.review import review_head
from core.store import Store
from tests.conftest import ingest_tiny, opened_copy, topical_corpus, write_beir


@pytest.fixture(scope="module")
def judged_ws(tmp_path_factory):
    """A closed workspace: the topical corpus mined with curated (k = 3); (path, run id)."""
    root = tmp_path_factory.mktemp("judging")
    corpus, queries, qrels = topical_corpus(docs_per_topic=6)
    path = root / "ws.duckdb"
    with Store(path) as store:
        ingest_tiny(store, write_beir(root / "beir", corpus, queries, qrels))
        run = mine(store, MineRequest(strategy="curated", num_negatives=3))
    return path, run.run_id


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _latest(store: Store) -> dict[tuple[str, str], tuple[str, str]]:
    return {(d.query_id, d.doc_id): (d.label, d.annotator) for d in store.latest_decisions()}


def test_queue_file_holds_the_queue_with_its_texts_and_comes_back_as_decisions(judged_ws,
                                                                                tmp_path):
    with opened_copy(judged_ws, tmp_path) as (store, run_id):
        head = review_head(store, run_id, 6)
        written = write_queue(store, run_id, tmp_path / "queue.jsonl", limit=6)
        lines = _lines(written.path)
        assert (written.rows, written.queries) == (6, len(set(head["query_id"])))
        # the Review page's order, with everything a judge reads
        assert [(x["query_id"], x["doc_id"]) for x in lines] == list(zip(head["query_id"],
                                                                         head["doc_id"]))
        run = store.get_run(run_id)
        for line in lines:
            positives = store.query_positives(run.dataset_id, line["query_id"])
            texts = store.lookup_texts(run.dataset_id, "documents", [line["doc_id"], *positives])
            assert line["query"] == store.lookup_texts(run.dataset_id, "queries",
                                                       [line["query_id"]])[line["query_id"]]
            assert line["candidate"] == texts[line["doc_id"]]
            assert line["positives"] == [texts[p] for p in positives] and positives
            assert (line["query_hash"], line["doc_hash"]) == store.pair_hashes(
                run.dataset_id, line["query_id"], line["doc_id"])
            assert 0 <= line["suspicion"] <= 1 and line["reasons"]
            assert isinstance(line["would_export"], bool) and line["dataset"] == "beir"
            assert line["label"] is None and line["annotator"] is None

        # the judge labels three lines (one under its own name) and leaves three
        for line, label in zip(lines, ("false_negative", "hard_negative", "unsure")):
            line["label"] = label
        lines[1]["annotator"], lines[1]["note"] = "llm-judge", "answers a different question"
        judged = _write(tmp_path / "judged.jsonl", lines)
        merged = import_decisions(store, judged, "alice")
        assert (merged.read, merged.added, merged.already_present, merged.unlabeled) == (3, 3, 0,
                                                                                          3)
        latest = _latest(store)
        assert [latest[(x["query_id"], x["doc_id"])] for x in lines[:3]] == [
            ("false_negative", "alice"), ("hard_negative", "llm-judge"), ("unsure", "alice")]
        assert [d.note for d in store.latest_decisions() if d.annotator == "llm-judge"] == [
            "answers a different question"]
        decided = {(x["query_id"], x["doc_id"]) for x in lines[:3]}
        assert not decided & set(zip(*review_head(store, run_id, 50)[["query_id",
                                                                       "doc_id"]].T.values))

        again = import_decisions(store, judged, "alice")  # importing again adds nothing
        assert (again.added, again.already_present) == (0, 3)
        assert len(store.decision_log()) == 3
        lines[0]["label"] = "hard_negative"  # a changed verdict is a new decision, and wins
        changed = import_decisions(store, _write(tmp_path / "judged.jsonl", lines), "alice")
        assert (changed.added, changed.already_present) == (1, 2)
        assert _latest(store)[(lines[0]["query_id"], lines[0]["doc_id"])] == ("hard_negative",
                                                                              "alice")


def test_a_bad_judged_file_is_one_sentence_and_writes_nothing(judged_ws, tmp_path):
    with opened_copy(judged_ws, tmp_path) as (store, run_id):
        lines = _lines(write_queue(store, run_id, tmp_path / "queue.jsonl", limit=3).path)
        lines[0]["label"], lines[1]["label"] = "false_negative", "relevant"
        with pytest.raises(InputError, match=r"judged\.jsonl line 2: field 'label' is "
                                             r"'relevant', not one of"):
            import_decisions(store, _write(tmp_path / "judged.jsonl", lines), "alice")
        lines[1]["label"] = "hard_negative"
        with pytest.raises(InputError, match="line 1: field 'annotator' is missing"):
            import_decisions(store, _write(tmp_path / "judged.jsonl", lines))
        assert store.decision_records().empty
        untouched = import_decisions(store, tmp_path / "queue.jsonl", "alice")
        assert (untouched.read, untouched.added, untouched.unlabeled) == (0, 0, 3)
        # a verdict on texts this workspace does not hold is kept, and said to apply nowhere yet
        elsewhere = {**lines[0], "query_hash": "0" * 32, "label": "false_negative"}
        merged = import_decisions(store, _write(tmp_path / "elsewhere.jsonl", [elsewhere]), "bo")
        assert (merged.added, merged.unheld) == (1, 1)
        assert "1 pairs are of texts no dataset here holds" in import_summary(merged)
        assert store.decision_records()["query_hash"].tolist() == ["0" * 32]
        head = review_head(store, run_id, 3)
        assert (lines[0]["query_id"], lines[0]["doc_id"]) in set(zip(head["query_id"],
                                                                     head["doc_id"]))
        with pytest.raises(WorkbenchError, match="must end in .jsonl"):
            write_queue(store, run_id, tmp_path / "queue.csv")
        with pytest.raises(WorkbenchError, match="existing folder"):
            write_queue(store, run_id, tmp_path / "missing" / "queue.jsonl")
        with pytest.raises(WorkbenchError, match="at least one candidate"):
            write_queue(store, run_id, tmp_path / "queue.jsonl", limit=0)


def test_cli_lists_writes_and_imports_the_queue(judged_ws, tmp_path, capsys):
    with opened_copy(judged_ws, tmp_path) as (store, run_id):
        head = review_head(store, run_id, 4)
    workspace = str(tmp_path / "ws.duckdb")
    assert main(["queue", "--workspace", workspace, "--limit", "4"]) == 0
    shown = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(r[1], r[2]) for r in shown] == list(zip(head["query_id"], head["doc_id"]))
    assert all(r[3].startswith("suspicion ") for r in shown)
    out = tmp_path / "queue.jsonl"
    assert main(["queue", "--workspace", workspace, "--limit", "4", "--out", str(out)]) == 0
    assert "wrote the next 4 candidates" in capsys.readouterr().out
    lines = _lines(out)
    lines[0]["label"] = "false_negative"
    _write(out, lines)
    assert main(["decisions", "import", "--workspace", workspace, "--in", str(out),
                 "--annotator", "judge"]) == 0
    assert "read 1 decisions" in capsys.readouterr().out
    assert main(["decisions", "import", "--workspace", workspace, "--in", str(out)]) == 1
    err = capsys.readouterr().err
    assert "queue.jsonl line 1: field 'annotator' is missing" in err and len(
        err.strip().splitlines()) == 1
    with Store(workspace) as store:
        assert [(d.query_id, d.label, d.annotator) for d in store.latest_decisions()] == [
            (lines[0]["query_id"], "false_negative", "judge")]
