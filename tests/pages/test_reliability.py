"""The app under bad input, foreign paths, a workspace held by another process, and sign-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core.store
from core.ingest import ingest
from core.store import Store
from tests.conftest import topical_corpus, write_beir
from tests.pages.conftest import open_page
from tests.workloads import HeldWorkspace, add_fake_run


def _errors(at) -> list[str]:
    return [e.value.replace("\\", "") for e in at.error]


def _bad_beir(root: Path) -> None:
    folder = write_beir(root / "bad-beir")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tD404\t1\n")


BAD_FILES = [
    pytest.param(_bad_beir, "bad-beir", "qrels/train.tsv line 2: document 'D404' is not in "
                 "corpus.jsonl", id="beir-unknown-doc"),
    pytest.param(lambda root: (root / "bad.jsonl").write_text(
        '{"anchor": "a", "positive": "p"}\n{"anchor": "b"}\n'), "bad.jsonl",
        "bad.jsonl line 2: field 'positive' is missing", id="pairs-missing-field"),
    pytest.param(lambda root: (root / "latin1.csv").write_bytes(b"anchor,positive\na,caf\xe9\n"),
                 "latin1.csv", "latin1.csv line 2: not valid UTF-8", id="csv-not-utf8"),
    pytest.param(lambda root: (root / "empty.parquet").write_bytes(b""), "empty.parquet",
                 "empty.parquet: file is empty", id="parquet-empty"),
]


@pytest.mark.parametrize(("write", "typed", "message"), BAD_FILES)
def test_data_page_shows_one_error_for_a_bad_file_and_offers_no_import(
        data_dir, write, typed, message):
    write(data_dir)
    workspace = data_dir / "workspaces" / "bad-input.duckdb"
    at = open_page(workspace, "data")
    at.text_input(key="data_path").input(typed).run()
    assert not at.exception
    assert len(at.error) == 1 and message in _errors(at)[0]
    assert not [b for b in at.button if b.key == "data_import"]
    assert Store(workspace).list_datasets(include_inactive=True) == []


def test_a_bad_upload_is_one_error(data_dir):
    at = open_page(data_dir / "workspaces" / "bad-upload.duckdb", "data")
    at.radio(key="data_source").set_value("Upload a file").run()
    truncated = json.dumps({"anchor": "a", "positive": "p"}).encode() + b'\n{"anchor": "b", "po'
    at.file_uploader(key="data_upload").upload("cut.jsonl", truncated, "application/jsonl").run()
    assert not at.exception
    assert len(at.error) == 1
    assert "line 2: not valid JSON" in _errors(at)[0] and "cut" in _errors(at)[0]


@pytest.mark.parametrize(("typed", "message"), [
    ("/tmp/elsewhere.duckdb", "is outside the data folder"),
    ("{data}/workspaces/../../escape.duckdb", "contains '..'"),
    ("{data}/workspaces/notes.txt", "must be a .duckdb file"),
    ("{data}/workspaces/link.duckdb", "is outside the data folder"),
])
def test_workspace_paths_typed_in_the_sidebar_stay_in_the_data_folder(
        data_dir, tmp_path, typed, message):
    (data_dir / "workspaces").mkdir(parents=True, exist_ok=True)
    link = data_dir / "workspaces" / "link.duckdb"
    if not link.is_symlink():
        link.symlink_to(tmp_path / "outside.duckdb")  # a link that leads out of the folder
    typed = typed.format(data=data_dir)
    at = open_page(typed, "data")
    assert not at.exception
    assert len(at.error) == 1 and message in _errors(at)[0]
    assert not Path(typed).exists() and not (tmp_path / "outside.duckdb").exists()


def test_the_server_workspace_may_live_outside_the_data_folder(data_dir, tmp_path, monkeypatch):
    outside = tmp_path / "configured.duckdb"
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(outside))
    at = open_page(outside, "data")
    assert not at.exception and not at.error


def test_a_workspace_held_by_another_process_is_one_error(data_dir, monkeypatch):
    workspace = data_dir / "workspaces" / "held.duckdb"
    Store(workspace).close()
    monkeypatch.setattr(core.store, "LOCK_WAIT_S", 0.2)
    holder = HeldWorkspace(workspace)
    try:
        at = open_page(workspace, "overview")
        assert not at.exception
        assert len(at.error) == 1 and "is open in another process" in _errors(at)[0]
    finally:
        holder.release()


# -- sign-in (st.login) ------------------------------------------------------------------------
@pytest.fixture
def review_workspace(data_dir) -> Path:
    """The topical corpus with a model-free run, for reviewing."""
    corpus, queries, qrels = topical_corpus()
    workspace = data_dir / "workspaces" / "signed.duckdb"
    store = Store(workspace)
    if not store.list_runs():
        dataset = ingest(store, write_beir(data_dir / "signed", corpus=corpus, queries=queries,
                                           qrels=qrels), format="beir", split="train").dataset
        add_fake_run(store, dataset.dataset_id, depth=8, k=3)
    return workspace


def _signed(workspace: Path, page: str, user: dict, annotator: str = ""):
    from streamlit.testing.v1 import AppTest

    from tests.pages.conftest import APP, TIMEOUT

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = user
    at.session_state["workspace"] = str(workspace)
    at.session_state["annotator"] = annotator
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    return at


def test_without_sign_in_annotators_type_their_name(review_workspace):
    at = open_page(review_workspace, "review", annotator="typed-name")
    assert at.sidebar.text_input(key="annotator").value == "typed-name"
    assert not [b for b in at.sidebar.button if b.key in ("auth_login", "auth_logout")]


def test_signed_in_identity_is_the_annotator(review_workspace):
    user = {"is_logged_in": True, "email": "ann@example.com", "name": "Ann"}
    at = _signed(review_workspace, "review", user, annotator="someone-else")
    assert not at.exception
    assert not [t for t in at.sidebar.text_input if t.key == "annotator"]
    assert "ann@example.com" in at.sidebar.caption[0].value.replace("\\", "")
    at.button(key="review_hard_negative").click().run()
    assert not at.exception
    decisions = Store(review_workspace).latest_decisions()
    assert decisions and {d.annotator for d in decisions} == {"ann@example.com"}


def test_signed_in_upload_carries_only_your_own_decisions(review_workspace):
    """Review's judged-file upload under sign-in: a line naming another annotator refuses the
    whole file (one sentence, nothing written); lines naming nobody are the identity's."""
    from core.judging import queue_jsonl, queue_records
    from core.review import review_head

    store = Store(review_workspace)
    run_id = store.get_run().run_id
    lines = queue_records(store, run_id, review_head(store, run_id, 2))
    lines[0]["label"], lines[1]["label"] = "false_negative", "hard_negative"
    lines[1]["annotator"] = "bob@example.com"
    before = len(store.decision_log())
    user = {"is_logged_in": True, "email": "ann@example.com", "name": "Ann"}
    at = _signed(review_workspace, "review", user)
    at.file_uploader(key="review_judge_upload").upload(
        "judged.jsonl", queue_jsonl(lines), "application/jsonl").run()
    at.button(key="review_judge_import").click().run()
    assert not at.exception
    assert ("judged.jsonl line 2: field 'annotator' is 'bob@example.com', and only "
            "'ann@example.com''s decisions can be imported here") in _errors(at)[0]
    assert len(store.decision_log()) == before
    lines[1]["annotator"] = None
    at.file_uploader(key="review_judge_upload").clear().upload(
        "judged.jsonl", queue_jsonl(lines), "application/jsonl").run()
    at.button(key="review_judge_import").click().run()
    assert not at.exception and not _errors(at)
    added = store.decision_log()[before:]  # (ids within one import follow no order)
    assert sorted((d.doc_id, d.label, d.annotator) for d in added) == sorted(
        (x["doc_id"], x["label"], "ann@example.com") for x in lines)


def test_signed_out_user_gets_a_log_in_button_and_cannot_decide(review_workspace):
    at = _signed(review_workspace, "review", {"is_logged_in": False}, annotator="mallory")
    assert not at.exception
    assert at.sidebar.button(key="auth_login")
    assert "Log in" in _errors(at)[0]
    assert not [b for b in at.button if b.key == "review_hard_negative"]
