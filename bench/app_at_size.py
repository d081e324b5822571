"""The app at size (issue 5, target 6): the Map page with 100,000 points and the Review page's
decision round trip, measured in headless chromium.

1. Builds (or reuses) a workspace over a synthetic precomputed-vector folder with texts
   (bench/synthetic.py --texts): ingest, one curated run (pool depth 100), and the projection the
   Map page will ask for (``--points`` points, cached in the workspace; its time is target 5's).
2. Starts ``streamlit run app.py`` on a free loopback port over that workspace and drives Debian's
   chromium with Playwright, as tests/test_browser.py does:
   - map_first_visit: the Map page opened with its default 2,000 points (numba's import, the
     small UMAP and the k-means clusters all cold);
   - map_first_render: Max points set to ``--points`` -> the chart drawn with every point
     (the projection read from the workspace, roles and the figure computed);
   - map_render_again: the Map page opened again from the sidebar and set to ``--points`` again
     (the page's widgets start over; its caches are warm);
   - selection: a box dragged over the middle of the map -> the selection table shown;
   - review round trip: a shortcut key (H, F, U in turn) -> the next card shown, median over
     ``--decisions`` decisions (``--reason-kind``: on the queue the Reason filter narrows).
   Each time ends when the app stops running (no status widget, no stale element), checked
   every 50 ms.
Times go with the 1-minute load average (the machine is shared).

Run:
    .venv/bin/python bench/synthetic.py --out data/workspaces/bench/synthetic-100k \
        --docs 100000 --queries 10000 --texts
    .venv/bin/python bench/app_at_size.py --data data/workspaces/bench/synthetic-100k \
        --workspace data/workspaces/bench/app-100k.duckdb --json bench/app-at-size.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from results import report  # noqa: E402  (bench/, the script's own folder)
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the tests' launch)

STEP_MS = int(os.environ.get("APP_BENCH_STEP_MS", "600000"))
# The app is busy while Streamlit's status widget shows or an element is still marked stale.
_BUSY_JS = ("() => !!document.querySelector(\"[data-testid='stStatusWidget']\") || "
            "!!document.querySelector(\"[data-stale='true']\")")
# Points plotly drew (its full data knows each trace's length, typed arrays included).
_MAP_POINTS_JS = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  if (!plot || !plot._fullData) return 0;
  return plot._fullData.filter(t => t.mode === 'markers')
                       .reduce((n, t) => n + (t._length || 0), 0);
}"""


def build_workspace(data: Path, workspace: Path, points: int) -> dict:
    """Ingest and mine once (reused when the workspace has a run), then cache the projection."""
    from core.mine import MineRequest, mine
    from core.projection import embedding_version, project, version_runs
    from core.store import Store
    from core.vectors import ingest_vectors, read_manifest

    result: dict = {}
    workspace.parent.mkdir(parents=True, exist_ok=True)
    store = Store(workspace)
    try:
        if not store.list_runs():
            t = time.perf_counter()
            ingest_vectors(store, data)
            result["ingest_s"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            model = f"precomputed:{read_manifest(data)[0]}"
            mine(store, MineRequest(strategy="curated", model=model))
            result["mine_s"] = round(time.perf_counter() - t, 1)
        run = store.get_run()
        version = embedding_version(run)
        t = time.perf_counter()
        project(store, version, points, run.seed, version_runs(store, version))
        result["projection_s"] = round(time.perf_counter() - t, 1)
        result["run_id"] = run.run_id
        result["candidate_rows"] = store.count_candidates(run.run_id)
        dataset = store.get_dataset(dataset_id=run.dataset_id)
        result["documents"], result["queries"] = dataset.n_documents, dataset.n_queries
    finally:
        store.close()
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workspace: Path, log: Path) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(workspace.parent), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
             "--", "--workspace", str(workspace.resolve())],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return url, server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("streamlit did not answer within 60 s")


def idle_at(page, quiet_s: float = 0.6, timeout_s: float = STEP_MS / 1000) -> float:
    """perf_counter() when the app last became idle: the start of a ``quiet_s`` idle stretch."""
    deadline = time.perf_counter() + timeout_s
    since = None
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError("the app kept running")
        if page.locator("[data-testid='stException']").count():
            raise RuntimeError("the page failed: " + page.locator(
                "[data-testid='stException']").first.inner_text()[:2000])
        if page.evaluate(_BUSY_JS):
            since = None
        elif since is None:
            since = now
        elif now - since >= quiet_s:
            return since
        page.wait_for_timeout(50)


def _goto(page, title: str) -> float:
    """Click a sidebar page; return the click time."""
    t = time.perf_counter()
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    heading = "workbench" if title == "Overview" else title  # the Overview's title names the app
    page.locator("h1", has_text=heading).first.wait_for(timeout=STEP_MS)
    return t


def _map_shown(page, points: int) -> float:
    """Wait until the chart holds ``points`` markers and the app is idle; return that time."""
    page.wait_for_function(
        f"() => ({_MAP_POINTS_JS})() >= {points} || "
        "!!document.querySelector(\"[data-testid='stException']\")", timeout=STEP_MS, polling=50)
    return idle_at(page)


def measure_map(page, points: int, result: dict) -> None:
    """First render with ``points`` points, a second visit, and a box selection."""
    t = _goto(page, "Map")
    result["map_first_visit_s"] = round(idle_at(page) - t, 2)  # 2,000 points, caches cold
    box = page.locator(".st-key-map_max_points input")
    box.fill(str(points))
    t = time.perf_counter()
    box.press("Enter")
    shown = _map_shown(page, points)
    result["map_first_render_s"] = round(shown - t, 2)
    result["map_points_drawn"] = page.evaluate(_MAP_POINTS_JS)
    result["load_at_map_first_render"] = os.getloadavg()[0]
    _goto(page, "Overview")
    idle_at(page)
    _goto(page, "Map")  # the page's widgets start over: 2,000 points again
    idle_at(page)
    box = page.locator(".st-key-map_max_points input")
    box.fill(str(points))
    t = time.perf_counter()
    box.press("Enter")
    result["map_render_again_s"] = round(_map_shown(page, points) - t, 2)
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    x0, y0 = area["x"] + 0.4 * area["width"], area["y"] + 0.4 * area["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 0.2 * area["width"], y0 + 0.2 * area["height"], steps=6)
    t = time.perf_counter()
    page.mouse.up()
    page.get_by_text("Selection:").first.wait_for(timeout=STEP_MS)
    result["map_selection_s"] = round(idle_at(page) - t, 2)
    result["map_selection_label"] = page.get_by_text("Selection:").first.inner_text()
    result["load_at_map_selection"] = os.getloadavg()[0]


def measure_review(page, decisions: int, result: dict, reason_kind: str | None = None) -> None:
    """Median click -> next card over ``decisions`` keyboard decisions (on the queue narrowed to
    ``reason_kind`` when given, chosen in the page's Reason filter)."""
    _goto(page, "Review")
    page.locator(".st-key-review_hard_negative button").wait_for(timeout=STEP_MS)
    idle_at(page)
    if reason_kind:
        page.locator(".st-key-review_reason").click()
        page.get_by_role("option", name=reason_kind, exact=True).click()
        idle_at(page)
        result["reason_kind"] = reason_kind
    times = []
    for i in range(decisions):
        letter, word = (("h", "hard negative"), ("f", "false negative"), ("u", "unsure"))[i % 3]
        page.locator("h1").first.click()
        t = time.perf_counter()
        page.keyboard.press(letter)
        page.locator("[data-testid='stAlert']", has_text=word).first.wait_for(timeout=STEP_MS)
        times.append(idle_at(page, quiet_s=0.4) - t)
    result["review_round_trips_s"] = [round(x, 3) for x in times]
    result["review_round_trip_median_s"] = round(statistics.median(times), 3)
    result["load_at_review"] = os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=9)
    parser.add_argument("--shots", type=Path, default=REPO / "test-output")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=("map", "review"),
                        help="measure only the Map page or only the review round trip")
    parser.add_argument("--reason-kind", help="decide on the queue narrowed to this reason kind")
    args = parser.parse_args()
    result = {"points": args.points, "load_average_start": os.getloadavg()[0]}
    if args.only:
        result["only"] = args.only
    result.update(build_workspace(args.data, args.workspace, args.points))
    print(json.dumps(result), flush=True)
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp(prefix="app-at-size-")) / "streamlit.log"
    url, server = start_server(args.workspace, log)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(STEP_MS)
            try:
                page.goto(url, timeout=STEP_MS)
                page.locator("h1").first.wait_for()
                idle_at(page)
                page.locator(".st-key-annotator input").fill("bench")
                page.locator(".st-key-annotator input").press("Enter")
                idle_at(page)
                args.shots.mkdir(exist_ok=True)
                if args.only != "review":
                    measure_map(page, args.points, result)
                    print(json.dumps(result), flush=True)
                    page.screenshot(path=str(args.shots / "app-at-size-map.png"))
                if args.only != "map":
                    measure_review(page, args.decisions, result, args.reason_kind)
                    page.screenshot(path=str(args.shots / "app-at-size-review.png"))
            except Exception:
                args.shots.mkdir(exist_ok=True)
                page.screenshot(path=str(args.shots / "app-at-size-failure.png"))
                raise
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    result["load_average_end"] = os.getloadavg()[0]
    report(result, args.json)


if __name__ == "__main__":
    main()
