"""SIGKILL at random points: `python -m core ingest | mine | export` killed after seeded random
delays, then the workspace must open with everything committed before the kill intact.

Each trial starts from a copy of a template workspace holding a dataset, a finished run and
annotators' decisions (some retracted). After the kill: the workspace opens; datasets, runs and
the whole decision log are as before; a dataset being ingested is there completely or not at all;
an interrupted mining run is marked failed; an export's target is absent or complete; and a
mining run killed mid-encode resumes from the embedding cache.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.review import decide
from core.store import INTERRUPTED, Store
from tests.conftest import REPO, topical_corpus, write_beir
from tests.workloads import build_workspace, synthetic_beir

SEED = 20250601


@dataclass
class Outcome:
    """A command run until it finished or was killed: exit code, stderr, whether killed."""

    killed: bool
    returncode: int
    stderr: str


def run_and_kill(args: list[str], delay: float | None, kill_when=None,
                 timeout: float = 300) -> Outcome:
    """Run ``python -m core ARGS``; SIGKILL it ``delay`` seconds after start (or, with
    ``kill_when``, as soon as ``kill_when(stderr so far)`` is true) unless it finished first."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    trigger = threading.Event()

    def pump() -> None:
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            chunks.append(chunk)
            if kill_when is not None and kill_when(b"".join(chunks).decode("utf-8", "replace")):
                trigger.set()
        trigger.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if kill_when is None:
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pass
    else:
        trigger.wait(timeout=timeout)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=timeout)
    reader.join(timeout=30)
    return Outcome(killed, process.returncode, b"".join(chunks).decode("utf-8", "replace"))


def timed(args: list[str]) -> tuple[float, Outcome]:
    start = time.monotonic()
    outcome = run_and_kill(args, delay=600)
    assert outcome.returncode == 0, outcome.stderr
    return time.monotonic() - start, outcome


def snapshot(store: Store) -> dict:
    """What must survive: datasets, runs (with their pools) and the whole decision log."""
    return {
        "datasets": [(d.dataset_id, d.name, d.active, d.n_queries, d.n_documents, d.n_positives)
                     for d in store.list_datasets(include_inactive=True)],
        "runs": [(r.run_id, r.status, r.strategy, len(store.run_candidates(r.run_id)))
                 for r in store.list_runs() if r.status == "done"],
        "decisions": [tuple(str(v) for v in row)
                      for row in store.decision_records().itertuples(index=False)],
        "latest": [(d.decision_id, d.label) for d in store.latest_decisions()],
    }


def add_decisions(store: Store, run_id: int, n: int = 30) -> None:
    pool = store.run_candidates(run_id)
    labels = ("hard_negative", "false_negative", "unsure")
    for i, (q, d) in enumerate(zip(pool["query_id"][:n], pool["doc_id"][:n])):
        decide(store, run_id, q, d, labels[i % 3], f"ann{i % 4}", note=f"n{i}")
    for name in ("ann1", "ann2"):
        store.retract_last_decision(name)


def copy_workspace(template: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return target


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A closed workspace: 2,000 queries and 20,000 documents, a fake finished run (20
    candidates a query) and 30 decisions, two of them retracted; with its BEIR folder."""
    root = tmp_path_factory.mktemp("crash-template")
    workspace = root / "template.duckdb"
    _, run_id = build_workspace(workspace, root / "beir", n_queries=2000, docs_per_query=10)
    store = Store(workspace)
    add_decisions(store, run_id)
    before = snapshot(store)
    store.close()
    return workspace, root / "beir", before


def reopen_and_check(workspace: Path, before: dict) -> Store:
    """Open after a kill and check that nothing committed before it changed."""
    store = Store(workspace, lock_wait=30)
    after = snapshot(store)
    assert after["decisions"] == before["decisions"]
    assert after["latest"] == before["latest"]
    assert after["runs"][-len(before["runs"]):] == before["runs"]
    assert after["datasets"][-len(before["datasets"]):] == before["datasets"]
    assert not [r for r in store.list_runs() if r.status == "running"]
    return store


def test_sigkill_during_ingest(template, tmp_path):
    workspace, beir, before = template
    rng = random.Random(SEED)
    full, _ = timed(["ingest", "--workspace", str(copy_workspace(workspace, tmp_path / "full.duckdb")),
                     "--beir", str(beir), "--name", "incoming"])
    outcomes = []
    for trial in range(9):
        target = copy_workspace(workspace, tmp_path / f"ingest-{trial}.duckdb")
        outcome = run_and_kill(["ingest", "--workspace", str(target), "--beir", str(beir),
                                "--name", "incoming"], delay=rng.uniform(0.3, 1.0) * full)
        outcomes.append(outcome.killed)
        store = reopen_and_check(target, before)
        incoming = [d for d in store.list_datasets() if d.name == "incoming"]
        assert incoming == [] or [(d.n_queries, d.n_documents, d.n_positives)
                                  for d in incoming] == [(2000, 20000, 2000)]
        assert outcome.killed or incoming  # a run that finished wrote it all
        store.close()
    assert any(outcomes)


def test_sigkill_during_export(template, tmp_path):
    workspace, _, before = template
    rng = random.Random(SEED + 1)
    target = copy_workspace(workspace, tmp_path / "ws.duckdb")
    reference = tmp_path / "reference.jsonl"
    full, _ = timed(["export", "--workspace", str(target), "--format", "triplet",
                     "--out", str(reference)])
    expected = reference.read_bytes()
    outcomes = []
    for trial in range(9):
        folder = tmp_path / f"export-{trial}"
        folder.mkdir()
        out = folder / "train.jsonl"
        outcome = run_and_kill(["export", "--workspace", str(target), "--format", "triplet",
                                "--out", str(out)], delay=rng.uniform(0.3, 1.0) * full)
        outcomes.append(outcome.killed)
        assert not out.exists() or out.read_bytes() == expected  # never a partial file
        manifest = out.with_name(out.name + ".manifest.json")
        if manifest.exists():
            assert json.loads(manifest.read_text())["counts"]["rows"] == expected.count(b"\n")
        leftovers = [p.name for p in folder.iterdir()
                     if p.name not in (out.name, manifest.name)]
        assert all(re.fullmatch(r"\.train\.jsonl(\.manifest\.json)?\.[0-9a-f]{12}\.tmp", name)
                   for name in leftovers), leftovers
        reopen_and_check(target, before).close()
    assert any(outcomes)


# -- mining --------------------------------------------------------------------------------------
def _mine_template(root: Path) -> tuple[Path, dict]:
    """The topical corpus, a fake finished run and decisions: small enough to mine in seconds."""
    from core.ingest import ingest
    from tests.workloads import add_fake_run

    corpus, queries, qrels = topical_corpus()
    workspace = root / "mine.duckdb"
    store = Store(workspace)
    dataset = ingest(store, write_beir(root / "topical", corpus=corpus, queries=queries,
                                       qrels=qrels), format="beir", split="train").dataset
    add_decisions(store, add_fake_run(store, dataset.dataset_id, depth=10), n=12)
    before = snapshot(store)
    store.close()
    return workspace, before


def mine_args(model: Path) -> list[str]:
    """Mining with the tests' tiny random model: the same cache and pipeline, fast encoding."""
    return ["--strategy", "top_k", "--num-negatives", "3", "--model", str(model)]


def test_sigkill_during_mining_marks_the_run_failed(tmp_path, tiny_model_dir):
    template, before = _mine_template(tmp_path)
    rng = random.Random(SEED + 2)
    for trial in range(2):
        target = copy_workspace(template, tmp_path / f"mine-{trial}.duckdb")
        delay = rng.uniform(0.0, 3.0)
        started: dict[str, float] = {}

        def after_start(stderr: str) -> bool:  # the delay counts from the workspace being open
            if "mining dataset" in stderr:
                started.setdefault("at", time.monotonic())
                return time.monotonic() - started["at"] >= delay
            return False

        outcome = run_and_kill(["mine", "--workspace", str(target), *mine_args(tiny_model_dir)],
                               delay=None, kill_when=after_start)
        with reopen_and_check(target, before) as store:
            new = [r for r in store.list_runs() if r.run_id > max(x[0] for x in before["runs"])]
            for run in new:
                assert run.status in ("done", "failed")
                if run.status == "failed":
                    assert run.error == INTERRUPTED
                    assert store.run_candidates(run.run_id).empty
            assert outcome.killed or [r.status for r in new] == ["done"]


def _encode_progress(stderr: str) -> tuple[int, int] | None:
    found = re.findall(r"encode documents:[^\r\n]*?(\d+)/(\d+)", stderr)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def test_embedding_resumes_from_its_cache_after_a_kill_mid_encode(tmp_path, tiny_model_dir):
    """2,000 documents are encoded in chunks of 512, each committed: killed after the first
    chunk, the next run encodes only what is missing and finishes."""
    from core.embed import ENCODE_CHUNK
    from core.ingest import ingest
    from core.mine import MineRequest
    from core.mine import mine as mine_run

    n_docs = 2000
    workspace = tmp_path / "big.duckdb"
    n_queries = 40
    beir = synthetic_beir(tmp_path / "big", n_queries=n_queries, docs_per_query=n_docs // n_queries)
    with Store(workspace) as store:
        ingest(store, beir, format="beir", split="train")
    mine = ["mine", "--workspace", str(workspace), *mine_args(tiny_model_dir)]

    def first_chunk_committed(stderr: str) -> bool:
        progress = _encode_progress(stderr)
        return progress is not None and ENCODE_CHUNK <= progress[0] < progress[1]

    first = run_and_kill(mine, delay=None, kill_when=first_chunk_committed)
    assert first.killed, first.stderr[-2000:]
    todo_first = _encode_progress(first.stderr)[1]
    with Store(workspace) as store:
        [run] = store.list_runs()
        assert (run.status, run.error) == ("failed", INTERRUPTED)
        cached = store.count_vectors()
        assert n_queries + ENCODE_CHUNK <= cached < n_queries + n_docs  # >= one chunk survived

    # Mining again (in this process, to save a start-up) encodes only what the kill left out.
    totals: dict[str, int] = {}
    with Store(workspace) as store:
        run = mine_run(store, MineRequest(strategy="top_k", num_negatives=3,
                                          model=str(tiny_model_dir)),
                       progress=lambda phase, done, total: totals.__setitem__(phase, total))
        assert run.status == "done"
        assert totals["encode documents"] == todo_first - (cached - n_queries) < todo_first
        assert [r.status for r in store.list_runs()] == ["done", "failed"]
        assert store.count_vectors() == n_queries + n_docs


# -- recovery rules ------------------------------------------------------------------------------
def test_a_run_left_running_by_a_dead_process_is_failed_on_open(tmp_path):
    workspace = tmp_path / "ws.duckdb"
    dataset_id, _ = build_workspace(workspace, tmp_path / "beir", n_queries=5, docs_per_query=5)
    Store(workspace).close()
    code = ("import os, sys; from core.store import Store; s = Store(sys.argv[1]); "
            "print(s.create_run(1, 'top_k', {}, 'm', 'fp', '', '', 0, 5, 100)); "
            "sys.stdout.flush(); os._exit(0)")  # dies without finishing or failing the run
    result = subprocess.run([sys.executable, "-c", code, str(workspace)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    run_id = int(result.stdout.strip())
    with Store(workspace) as store:
        run = store.get_run(run_id)
        assert (run.status, run.error) == ("failed", INTERRUPTED)
        assert run.finished_at is not None


def test_reopening_never_fails_a_run_this_process_is_mining(tmp_path):
    workspace = tmp_path / "ws.duckdb"
    dataset_id, _ = build_workspace(workspace, tmp_path / "beir", n_queries=5, docs_per_query=5)
    store = Store(workspace)
    live = store.create_run(dataset_id, "top_k", {}, "m", "fp", "", "", 0, 5, 100)
    store.close()  # e.g. another session closed the workspace while this one mines
    store = Store(workspace)
    assert store.get_run(live).status == "running"
    store.fail_run(live, "stopped by the test")
    assert store.get_run(live).error == "stopped by the test"
    store.close()
