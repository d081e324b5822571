"""End to end in a real browser: `streamlit run app.py` driven by Debian's chromium via Playwright.

Load a dataset, mine, review three candidates with the keyboard shortcuts, undo one, export and
download; a document carrying an HTML/Markdown payload must show literally and run nothing.
Screenshots of every page go to test-output/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from core.audit import audit_pairs, audit_report
from core.store import Store
from tests.conftest import REPO, topical_corpus, write_beir

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAYLOAD = ('<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> **bold** '
           '[link](javascript:alert(1))')
SHOTS = REPO / "test-output"
SERVER_START_S = 60
STEP_MS = 30_000
MINE_MS = 180_000  # the server process loads the model on its first run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: make browser"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _data_folder(root: Path) -> Path:
    """The topical corpus plus a document carrying the payload, positive of its own query."""
    corpus, queries, qrels = topical_corpus()
    corpus["payload"] = ("Payload", PAYLOAD)
    queries["q-payload"] = "script window payload bold link"
    qrels.append(("q-payload", "payload", 1))
    write_beir(root / "topical", corpus=corpus, queries=queries, qrels=qrels)
    return root


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"streamlit did not answer within {SERVER_START_S} s")


@dataclass
class Server:
    """A running app: its address, workspace and data folder; ``stop`` releases the workspace."""

    url: str
    workspace: Path
    data: Path
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@contextmanager
def serve(data: Path, workspace: Path, log: Path) -> Iterator[Server]:
    """``streamlit run app.py`` on a free loopback port over ``workspace`` (its data folder
    ``data``), healthy before it is handed out; always stopped."""
    port = _free_port()
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    app = Server(f"http://127.0.0.1:{port}", workspace, data, None)
    with open(log, "wb") as out:
        app.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
             "--", "--workspace", str(workspace)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(app.url, app.process, log)
        yield app
    finally:
        app.stop()


@pytest.fixture
def server(tmp_path):
    """A streamlit server on a free loopback port over an empty workspace; always stopped."""
    data = _data_folder(tmp_path / "data")
    with serve(data, data / "workspaces" / "browser.duckdb", tmp_path / "streamlit.log") as app:
        yield app


def _settle(page, quiet_checks: int = 4) -> None:
    """Wait until the app has stopped running: no status widget for ``quiet_checks`` looks in a
    row (the widget appears a moment after a run starts), bounded by MINE_MS."""
    status = page.locator("[data-testid='stStatusWidget']")
    deadline = time.monotonic() + MINE_MS / 1000
    quiet = 0
    while quiet < quiet_checks:
        if time.monotonic() > deadline:
            raise AssertionError("the app kept running for longer than expected")
        quiet = quiet + 1 if status.count() == 0 else 0
        page.wait_for_timeout(250)


def _goto(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.locator("h1", has_text=title if title != "Overview" else "workbench").wait_for(
        timeout=STEP_MS)
    _settle(page)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _key(page, letter: str, expect: str) -> None:
    """Press a shortcut with the focus on the page (not in a text field); wait for its message."""
    page.locator("h1").first.click()
    page.keyboard.press(letter)
    page.locator("[data-testid='stAlert']", has_text=expect).first.wait_for(timeout=STEP_MS)
    _settle(page)


def _select(page, key: str, option: str) -> None:
    """Pick an option of a select box by typing it into the box's filter."""
    box = page.locator(f".st-key-{key} input")
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option, exact=True).click()
    _settle(page)


def _box_select_all(page) -> None:
    """Drag a selection box over the whole map and wait for the selection table."""
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + 2, area["y"] + 2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] - 2, steps=8)
    page.mouse.up()
    page.get_by_text("Selection:").wait_for()
    _settle(page)


def test_load_mine_review_export_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, workspace, data = server.url, server.workspace, server.data
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
            page.set_default_timeout(STEP_MS)
            # a deep link on a fresh server runs app.py (navigation, sidebar), not the page alone
            page.goto(f"{url}/review", timeout=STEP_MS)
            page.locator("h1", has_text="Review").wait_for()
            _settle(page)
            page.locator("[data-testid='stSidebarNav'] a", has_text="Overview").wait_for()
            assert page.locator(".st-key-workspace input").input_value() == str(workspace)
            _goto(page, "Overview")
            page.locator(".st-key-annotator input").fill("alice")
            page.locator(".st-key-annotator input").press("Enter")
            _settle(page)

            _goto(page, "Data")
            page.locator(".st-key-data_path input").fill("topical")
            page.locator(".st-key-data_path input").press("Enter")
            page.locator(".st-key-data_import button").click()
            page.get_by_text("Imported dataset").wait_for()
            _settle(page)
            _shot(page, "data")

            _goto(page, "Mine")
            page.locator(".st-key-mine_run button").click()
            page.get_by_text("negatives for 13 queries").wait_for(timeout=MINE_MS)
            _settle(page)
            _shot(page, "mine")

            _goto(page, "Review")
            page.locator(".st-key-review_hard_negative button").wait_for()
            _key(page, "h", "hard negative")
            _key(page, "f", "false negative")
            _key(page, "u", "unsure")
            _key(page, "z", "Undid unsure")
            page.locator("[data-testid='stMetricValue']", has_text="2").first.wait_for()

            _select(page, "review_query", "q-payload")
            page.get_by_text(PAYLOAD, exact=False).first.wait_for()
            assert page.evaluate("typeof window.__xss") == "undefined"
            assert page.locator("img[src='x']").count() == 0
            assert page.locator("a[href^='javascript']").count() == 0
            assert page.locator("main script").count() == 0
            _shot(page, "review")

            # judge outside the app: the filtered queue downloads with its texts, comes back
            page.get_by_text("Judge outside the app").click()
            with page.expect_download(timeout=STEP_MS) as queue_download:
                page.locator(".st-key-review_judge_download button").click()
            lines = [json.loads(line) for line in
                     Path(queue_download.value.path()).read_text(encoding="utf-8").splitlines()]
            assert lines and {line["query_id"] for line in lines} == {"q-payload"}
            assert all(PAYLOAD in line["positives"][0] for line in lines)  # texts as stored
            lines[0]["label"] = "false_negative"
            page.locator(".st-key-review_judge_upload input[type='file']").set_input_files(
                {"name": "judged.jsonl", "mimeType": "application/jsonl",
                 "buffer": "".join(json.dumps(line) + "\n" for line in lines).encode()})
            _settle(page)
            page.locator(".st-key-review_judge_import button").click()
            page.get_by_text("Read 1 decisions from judged.jsonl").wait_for()
            _settle(page)

            _goto(page, "Export")
            # how hard and how suspect the previewed negatives are (core.export_quality)
            page.get_by_text("Of the pool's hardest 5").wait_for()
            page.get_by_text("Above suspicion 0.65").wait_for()
            page.locator(".st-key-export_write button").click()
            page.get_by_text("Wrote").wait_for()
            _settle(page)
            with page.expect_download(timeout=STEP_MS) as download:
                page.locator(".st-key-export_download button").click()
            downloaded = Path(download.value.path()).read_bytes()
            _shot(page, "export")

            for title in ("Overview", "Margins", "Map"):
                _goto(page, title)
                if title == "Map":
                    page.locator(".js-plotly-plot").first.wait_for(timeout=MINE_MS)
                    _settle(page)
                    _box_select_all(page)
                _shot(page, title.lower())
            page.locator(".st-key-map_send_review button").click()
            page.get_by_text("sent from the map").wait_for()
            _settle(page)
            assert page.evaluate("typeof window.__xss") == "undefined"

            _goto(page, "Export")  # audit: draw a sample, decide its first pair on Review
            page.locator(".st-key-audit_size input").fill("4")
            page.locator(".st-key-audit_size input").press("Enter")
            _settle(page)
            page.locator(".st-key-audit_draw button").click()
            page.get_by_text("Drew audit").wait_for()
            _settle(page)
            _shot(page, "export-audit")
            page.locator(".st-key-audit_review button").click()
            page.get_by_text("pairs of audit").wait_for()
            _settle(page)
            _key(page, "h", "hard negative")
            _shot(page, "audit")
        except Exception:
            _shot(page, "failure")  # what the page showed when a step failed
            raise
        finally:
            browser.close()

    server.stop()  # DuckDB lets one process hold the workspace
    store = Store(workspace)
    try:
        live = store.latest_decisions()
        assert sorted(d.label for d in live) == [  # the last on the audit's pair
            "false_negative", "false_negative", "hard_negative", "hard_negative"]
        assert {d.annotator for d in live} == {"alice"}
        assert (lines[0]["query_id"], lines[0]["doc_id"], "false_negative") in {
            (d.query_id, d.doc_id, d.label) for d in live}  # the judged file's verdict
        run = store.get_run()
        wrong = [d for d in live if d.label == "false_negative"]
        query_texts = store.lookup_texts(run.dataset_id, "queries", [d.query_id for d in wrong])
        doc_texts = store.lookup_texts(run.dataset_id, "documents", [d.doc_id for d in wrong])
        wrong_texts = {(query_texts[d.query_id], doc_texts[d.doc_id]) for d in wrong}
        audit = audit_report(store, run_id=run.run_id)
        assert audit.audit.size == 4 and audit.audit.created_by == "alice"
        newest = max(live, key=lambda d: d.decision_id)
        assert (newest.query_id, newest.doc_id) in audit_pairs(store, audit.audit.audit_id)
        assert newest.label == "hard_negative" and audit.hard_negatives >= 1
    finally:
        store.close()
    written = data / "exports" / f"topical-run{run.run_id}-triplet.jsonl"
    assert downloaded == written.read_bytes()
    rows = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert rows and all(set(r) == {"anchor", "positive", "negative"} for r in rows)
    assert not any((r["anchor"], r["negative"]) in wrong_texts for r in rows)
    manifest = json.loads(written.with_name(written.name + ".manifest.json").read_text())
    assert manifest["counts"]["rows"] == len(rows)
    assert manifest["counts"]["false_negatives_excluded"] == 2  # pressed F, and the judged file
