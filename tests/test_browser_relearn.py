"""Re-learning in the background, in a real browser on a real server: the 50th decision since the
run was scored starts it and the next card comes at once; a later card says what it learned and
the page around the card shows the new model's weights (the card's fragment reruns the page)."""

from __future__ import annotations

import time

import pytest

from core.false_negatives.learning import RELEARN_EVERY
from core.ingest import ingest
from core.mine import MineRequest, mine
from core.store import Store
from tests.conftest import topical_corpus, write_beir
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_MS, _key, _settle, _shot, serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: make browser"),
]


def _seed(data) -> None:
    """The topical corpus mined with top_k (k = 3, the bundled model), and one decision short of
    re-learning: half false negatives (candidates of the query's own topic), half hard ones."""
    corpus, queries, qrels = topical_corpus()
    workspace = data / "workspaces" / "relearn.duckdb"
    with Store(workspace) as store:
        ingest(store, write_beir(data / "topical", corpus=corpus, queries=queries, qrels=qrels),
               format="beir", split="train")
        run = mine(store, MineRequest(strategy="top_k", num_negatives=3))
        pool = store.run_candidates(run.run_id).drop_duplicates(["query_id", "doc_id"])
        own = [q.split("-")[1] == d.split("-")[0] for q, d in zip(pool.query_id, pool.doc_id)]
        false = pool[own].tail(25)  # the queue's first cards stay undecided
        hard = pool[[not o for o in own]].tail(RELEARN_EVERY - 1 - len(false))
        for frame, label in ((false, "false_negative"), (hard, "hard_negative")):
            for q, d in zip(frame.query_hash, frame.doc_hash):
                store.record_decision(q, d, label, "seed")
    return workspace


def test_the_review_page_relearns_in_the_background(tmp_path):
    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    workspace = _seed(data)
    with serve(data, workspace, tmp_path / "streamlit.log") as app, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1600})
            page.set_default_timeout(STEP_MS)
            page.goto(f"{app.url}/review", timeout=STEP_MS)
            page.locator(".st-key-annotator input").fill("ann")
            page.locator(".st-key-annotator input").press("Enter")
            page.locator(".st-key-review_hard_negative button").wait_for()
            _settle(page)
            _key(page, "h", "re-learning the suspicion from the decisions meanwhile")
            said = page.locator("[data-testid='stAlert']", has_text="Suspicion re-learned from")
            deadline = time.monotonic() + 120
            while not said.count():  # each next card looks whether it has finished
                assert time.monotonic() < deadline, "the background re-learning never finished"
                page.wait_for_timeout(1000)
                _key(page, "h", "hard negative")
            assert f"from {RELEARN_EVERY} decisions" in said.first.inner_text()
            page.get_by_text("How suspicion weighs its signals").click()
            page.get_by_text(f"The model learned from {RELEARN_EVERY} decisions").wait_for()
            _shot(page, "review-relearned")
        finally:
            browser.close()
    with Store(workspace) as store:
        assert (store.run_candidates(store.get_run().run_id).scorer == "learned").all()
