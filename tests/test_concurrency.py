"""Concurrent annotators through the API the Review page uses (core.review.decide and
Store.retract_last_decision): threads sharing one process's Store, as Streamlit's sessions do, and
separate processes taking turns on one workspace file."""

from __future__ import annotations

import multiprocessing
import random
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from core.errors import WorkbenchError
from core.review import decide
from core.store import LABELS, Store
from tests.test_cli import assert_one_sentence_error, run_cli
from tests.workloads import HeldWorkspace, build_workspace

ANNOTATORS = [f"annotator-{i}" for i in range(8)]
PER_ANNOTATOR = 500
UNDO_EVERY = 50  # each annotator undoes its own last decision after every 50th


def _pairs(store: Store, run_id: int) -> list[tuple[str, str]]:
    pool = store.run_candidates(run_id)
    return list(zip(pool["query_id"], pool["doc_id"]))


def _annotate(store: Store, run_id: int, name: str, pairs: list[tuple[str, str]],
              undone: list[int], errors: list[str]) -> None:
    """One annotator: 500 decisions on a seeded shuffle of the pool, an undo every 50th."""
    rng = random.Random(name)
    try:
        for i, (query_id, doc_id) in enumerate(rng.sample(pairs, PER_ANNOTATOR)):
            label = rng.choice(LABELS)
            decision_id = decide(store, run_id, query_id, doc_id, label, name, f"{name}#{i}")
            if (i + 1) % UNDO_EVERY == 0:
                undo = store.retract_last_decision(name)
                if undo is None or undo.decision_id != decision_id or undo.annotator != name:
                    errors.append(f"{name}: undo took {undo} instead of decision {decision_id}")
                undone.append(decision_id)
    except Exception as err:  # reported by the test, with the thread's name
        errors.append(f"{name}: {type(err).__name__}: {err}")


def _expected_latest(store: Store, undone: set[int]) -> dict[tuple[str, str], int]:
    """Each pair's latest live decision, recomputed from the raw log and the undos asked for."""
    latest: dict[tuple[str, str], tuple] = {}
    for d in store.decision_log():
        key, order = (d.query_hash, d.doc_hash), (d.created_at, d.decision_id)
        if d.decision_id not in undone and (key not in latest or order > latest[key]):
            latest[key] = order
    return {key: order[1] for key, order in latest.items()}


def test_eight_annotators_in_threads_share_one_store(tmp_path):
    workspace = tmp_path / "ws.duckdb"
    _, run_id = build_workspace(workspace, tmp_path / "beir", n_queries=60, docs_per_query=25)
    store = Store(workspace)
    pairs = _pairs(store, run_id)
    undone: list[int] = []
    errors: list[str] = []
    # One Store object for every thread, as st.cache_resource hands one to every session.
    threads = [threading.Thread(target=_annotate, args=(store, run_id, name, pairs, undone,
                                                        errors), name=name)
               for name in ANNOTATORS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    log = store.decision_log()
    # Every decision persisted exactly once: the notes number each annotator's decisions.
    assert len(log) == len(ANNOTATORS) * PER_ANNOTATOR
    notes = Counter(d.note for d in log)
    assert set(notes) == {f"{a}#{i}" for a in ANNOTATORS for i in range(PER_ANNOTATOR)}
    assert max(notes.values()) == 1
    assert len({d.decision_id for d in log}) == len(log)
    # Undo retracted exactly the decisions each annotator asked for, and nothing else.
    retracted = int(store.decision_records()["retracted_at"].notna().sum())
    assert retracted == len(undone) == len(ANNOTATORS) * PER_ANNOTATOR // UNDO_EVERY
    # The latest-decision view agrees with the log recomputed by hand, and the pool shows it.
    expected = _expected_latest(store, set(undone))
    assert {(d.query_hash, d.doc_hash): d.decision_id for d in store.latest_decisions()} == expected
    by_id = {d.decision_id: d for d in log}
    pool = store.run_candidates(run_id).dropna(subset=["decision"])
    shown = {(q, d): (label, who) for q, d, label, who in
             zip(pool["query_hash"], pool["doc_hash"], pool["decision"], pool["decided_by"])}
    assert shown == {key: (by_id[i].label, by_id[i].annotator) for key, i in expected.items()}


def test_two_sessions_of_one_annotator_undo_each_decision_once(tmp_path):
    """Undo is read-then-write: two tabs undoing at once must never retract one decision twice."""
    workspace = tmp_path / "ws.duckdb"
    _, run_id = build_workspace(workspace, tmp_path / "beir", n_queries=10, docs_per_query=12)
    store = Store(workspace)
    pairs = _pairs(store, run_id)[:100]
    mine = [decide(store, run_id, q, d, "hard_negative", "zed") for q, d in pairs]
    other = decide(store, run_id, *pairs[0], "unsure", "ann")
    undone: list[int] = []

    def undo_many() -> None:
        for _ in range(60):
            result = store.retract_last_decision("zed")
            if result is not None:
                undone.append(result.decision_id)

    threads = [threading.Thread(target=undo_many) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(undone) == sorted(mine)  # each once, none of ann's
    assert [d.decision_id for d in store.latest_decisions()] == [other]


# -- processes -------------------------------------------------------------------------------------
PROCESSES = 8
TURNS = 2          # each process opens the workspace twice ...
PER_TURN = 25      # ... and records 25 decisions each time


def _process_annotator(workspace: str, run_id: int, name: str, pairs: list) -> None:
    """A separate process: open, decide, close, repeatedly (waiting its turn for the file)."""
    rng = random.Random(name)
    chosen = rng.sample(pairs, TURNS * PER_TURN)
    for turn in range(TURNS):
        with Store(workspace, lock_wait=120) as store:
            for i in range(turn * PER_TURN, (turn + 1) * PER_TURN):
                decide(store, run_id, *chosen[i], rng.choice(LABELS), name, f"{name}#{i}")


def test_processes_take_turns_and_lose_nothing(tmp_path):
    workspace = tmp_path / "ws.duckdb"
    _, run_id = build_workspace(workspace, tmp_path / "beir", n_queries=20, docs_per_query=12)
    store = Store(workspace)
    pairs = _pairs(store, run_id)
    store.close()  # a process holds the file only while it works
    # A fork server that has imported core once starts the 8 processes cheaply; unlike a bare
    # fork it carries none of this test process's threads or open connections.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["core.review"])
    workers = [context.Process(target=_process_annotator,
                               args=(str(workspace), run_id, f"proc-{i}", pairs))
               for i in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    with Store(workspace) as store:
        log = store.decision_log()
    assert len(log) == PROCESSES * TURNS * PER_TURN
    assert {d.note for d in log} == {f"proc-{p}#{i}" for p in range(PROCESSES)
                                     for i in range(TURNS * PER_TURN)}


def test_a_second_process_refuses_with_one_sentence_and_the_file_survives(tmp_path, monkeypatch):
    workspace = tmp_path / "ws.duckdb"
    _, run_id = build_workspace(workspace, tmp_path / "beir", n_queries=5, docs_per_query=6)
    store = Store(workspace)
    query_id, doc_id = _pairs(store, run_id)[0]
    decide(store, run_id, query_id, doc_id, "false_negative", "ann")
    store.close()

    holder = HeldWorkspace(workspace)  # e.g. an app process serving the workspace
    try:
        with pytest.raises(WorkbenchError, match=rf"is open in another process \(PID "
                                                 rf"{holder.pid}\)") as caught:
            Store(workspace, lock_wait=0.2)
        assert "\n" not in str(caught.value)
        monkeypatch.setenv("WORKBENCH_LOCK_WAIT_S", "0.2")
        result = run_cli("decide", "--workspace", str(workspace), "--run", str(run_id),
                         "--query", query_id, "--doc", doc_id, "--label", "unsure",
                         "--annotator", "bob")
        assert_one_sentence_error(result, "is open in another process", "one process at a time")
    finally:
        holder.release()

    with Store(workspace) as store:  # once the holder is gone the file opens, as it was
        assert [(d.label, d.annotator) for d in store.latest_decisions()] == [
            ("false_negative", "ann")]
        assert store.get_run(run_id).status == "done"


def test_not_a_workspace_is_one_sentence(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("not a database\n")
    with pytest.raises(WorkbenchError, match="is not a DuckDB workspace"):
        Store(path, lock_wait=0)
    assert path.read_text() == "not a database\n"


def test_a_workspace_beside_another_files_log_is_one_sentence(tmp_path):
    """A workspace file replaced (copied over) while its old write-ahead log stayed: DuckDB
    refuses the pair; the sentence says which file to move aside, and nothing is touched."""
    import duckdb

    Store(tmp_path / "ws.duckdb").close()
    other = duckdb.connect(str(tmp_path / "other.duckdb"))  # open: its log is not checkpointed
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("INSERT INTO t VALUES (1)")
    shutil.copy(tmp_path / "other.duckdb.wal", tmp_path / "ws.duckdb.wal")
    other.close()
    log = (tmp_path / "ws.duckdb.wal").read_bytes()
    with pytest.raises(WorkbenchError, match=r"its write-ahead log .*ws\.duckdb\.wal belongs to "
                                             r"another database file.*move ws\.duckdb\.wal aside"):
        Store(tmp_path / "ws.duckdb", lock_wait=0)
    assert (tmp_path / "ws.duckdb.wal").read_bytes() == log
    (tmp_path / "ws.duckdb.wal").unlink()
    Store(tmp_path / "ws.duckdb").close()  # as last saved


def test_store_opened_by_many_threads_at_once_migrates_once(tmp_path):
    workspace = tmp_path / "fresh.duckdb"
    stores: list[Store] = []
    errors: list[str] = []

    def open_it() -> None:
        try:
            stores.append(Store(workspace))
        except Exception as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(stores) == 8
    assert {s.schema_version() for s in stores} == {stores[0].schema_version()}
    assert Path(workspace).is_file()
