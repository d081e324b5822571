"""Several real browser sessions at once on one app server, over dataset text that tries to be
code: four annotators (one with a hostile name) review at the same time in chromium; every
decision lands once under its annotator, each undo takes back only its own session's decision,
and no payload (script, img onerror, svg onload, iframe or Markdown javascript: link) runs or
becomes markup anywhere. tests/test_browser.py drives the full single-user flow."""

from __future__ import annotations

from collections import Counter

import pytest

from core.ingest import ingest
from core.store import Store
from tests.conftest import topical_corpus, write_beir
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_MS, _select, _settle, _shot, serve
from tests.workloads import add_fake_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing: make browser"),
]

PAYLOADS = (
    '<script>window.__xss=1</script>',
    '<img src=x onerror="window.__xss=2">',
    '[click](javascript:window.__xss=3)',
    '<svg onload="window.__xss=4"></svg>',
    '<iframe src="javascript:window.__xss=5"></iframe>',
    '![pic](javascript:window.__xss=6) **bold** `code` # heading',
)
HOSTILE = " ".join(PAYLOADS)
ANNOTATORS = ("alice", "bob", "carol", '<img src=x onerror="window.__xss=7">**dave**')
LABEL_KEYS = ("h", "f", "u")
ROUNDS = 3


def _seed(root):
    """A data folder whose workspace holds the topical corpus plus hostile texts, names and ids,
    and a model-free finished run (so no session waits for a model)."""
    corpus, queries, qrels = topical_corpus(docs_per_topic=6)
    corpus["<b>payload</b>"] = (PAYLOADS[1], HOSTILE)
    corpus["payload-2"] = (PAYLOADS[0], f"A second hostile document: {HOSTILE}")
    queries["q-payload"] = f"which text runs? {HOSTILE}"
    qrels.append(("q-payload", "<b>payload</b>", 1))
    workspace = root / "workspaces" / "sessions.duckdb"
    with Store(workspace) as store:
        dataset = ingest(store, write_beir(root / "hostile", corpus=corpus, queries=queries,
                                           qrels=qrels), format="beir", split="train",
                         name=PAYLOADS[0] + PAYLOADS[2]).dataset
        add_fake_run(store, dataset.dataset_id, depth=12, k=3)
    return workspace


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "data"
    with serve(data, _seed(data), tmp_path / "streamlit.log") as app:
        yield app


def _inert(page) -> None:
    """Nothing from the dataset ran or became an element."""
    assert page.evaluate("typeof window.__xss") == "undefined"
    main = page.locator("section[data-testid='stMain'], [data-testid='stSidebar']")
    for selector in ("script", "img[src='x']", "svg[onload]", "iframe",
                     "a[href^='javascript']", "img[src^='javascript']"):
        assert main.locator(selector).count() == 0, selector


def _decided(page, expected: int) -> None:
    """Wait until the session's "You decided" metric shows ``expected``."""
    from playwright.sync_api import expect

    metric = page.locator("[data-testid='stMetric']", has_text="You decided")
    expect(metric.locator("[data-testid='stMetricValue']")).to_have_text(str(expected),
                                                                         timeout=STEP_MS)


def test_four_sessions_review_at_once_and_hostile_text_stays_text(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pages = []
        try:
            for name in ANNOTATORS:  # one context each: separate cookies, separate sessions
                page = browser.new_context(viewport={"width": 1300, "height": 1400}).new_page()
                page.set_default_timeout(STEP_MS)
                page.goto(f"{server.url}/review", timeout=STEP_MS)
                page.locator("h1", has_text="Review").wait_for()
                _settle(page)
                page.locator(".st-key-annotator input").fill(name)
                page.locator(".st-key-annotator input").press("Enter")
                page.locator(".st-key-review_hard_negative button").wait_for()
                _settle(page)
                pages.append(page)
            for round_ in range(ROUNDS):
                for i, page in enumerate(pages):  # all sessions decide, then all are awaited
                    page.locator("h1").first.click()
                    page.keyboard.press(LABEL_KEYS[(round_ + i) % 3])
                for page in pages:
                    _decided(page, round_ + 1)
                    _settle(page)
            for page in pages:  # each session undoes its own last decision
                page.locator("h1").first.click()
                page.keyboard.press("z")
            for page in pages:
                page.get_by_text("Undid").first.wait_for()
                _decided(page, ROUNDS - 1)
                _settle(page)
                _inert(page)

            page = pages[-1]  # the hostile query's texts show literally, on every page
            _select(page, "review_query", "q-payload")
            page.get_by_text(PAYLOADS[0], exact=False).first.wait_for()
            page.get_by_text(PAYLOADS[2], exact=False).first.wait_for()
            _inert(page)
            _shot(page, "sessions-payload")
            for title in ("Overview", "Data", "Review"):  # names and ids show there too
                page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
                _settle(page)
                _inert(page)
        except Exception:
            for i, page in enumerate(pages):
                _shot(page, f"sessions-failure-{i}")
            raise
        finally:
            browser.close()

    server.stop()  # DuckDB lets one process hold the workspace
    with Store(server.workspace) as store:
        log = store.decision_log()
        records = store.decision_records()
    assert len(log) == len(ANNOTATORS) * ROUNDS
    assert Counter(d.annotator for d in log) == {name: ROUNDS for name in ANNOTATORS}
    retracted = records[records["retracted_at"].notna()]
    assert sorted(retracted["annotator"]) == sorted(ANNOTATORS)  # one undo each, its own
    for name in ANNOTATORS:  # ... and of that annotator's newest decision
        own = records[records["annotator"].eq(name)].sort_values("created_at")
        assert own["retracted_at"].notna().tolist() == [False] * (ROUNDS - 1) + [True]
