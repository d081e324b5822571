"""The Review page's full render on a large run, and the workspace reads it spends its time in
(bench/RESULTS.md, "Session 10").

Opens the app's Review page on ``--workspace`` with Streamlit's AppTest, which reruns the page's
whole script on every click (in the browser a decision reruns only the card's fragment; a filter
change, a visit or the Learn button rerun the whole page), then clicks the decision buttons
``--decisions`` times (hard, false, unsure in turn) and reports, per decision, the whole render's
time and the Store calls that took longest (each public Store method timed by a wrapper). The
workspace is copied first (decisions are written); it must be a scored run, e.g.
bench/scale.py's.

    .venv/bin/python bench/review_render_at_size.py \
        --workspace data/workspaces/bench/scale-1m.duckdb
"""

from __future__ import annotations

import argparse
import collections
import functools
import inspect
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.results import report  # noqa: E402
from core.store import Store  # noqa: E402

LABELS = ("hard_negative", "false_negative", "unsure")


def _time_store_calls() -> tuple[dict[str, float], collections.Counter]:
    """Wrap every public Store method to add its seconds and calls to the returned tallies."""
    seconds: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter = collections.Counter()

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start
                calls[name] += 1
        return wrapper

    for name in dir(Store):
        static = inspect.getattr_static(Store, name)
        if not name.startswith("_") and inspect.isfunction(static):
            setattr(Store, name, timed(name, static))
    return seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--decisions", type=int, default=6)
    parser.add_argument("--top", type=int, default=5, help="Store calls reported per decision")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.workspace.is_file():
        parser.error(f"--workspace {args.workspace} is not a workspace file")
    from streamlit.testing.v1 import AppTest

    seconds, calls = _time_store_calls()
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        os.environ["WORKBENCH_DATA_DIR"] = tmp  # the app opens workspaces inside its data folder
        copy = Path(tmp) / "workspaces" / args.workspace.name
        copy.parent.mkdir()
        shutil.copyfile(args.workspace, copy)
        candidates = Store(copy).count_candidates(Store(copy).get_run().run_id)
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
        at.session_state["workspace"], at.session_state["annotator"] = str(copy), "bench"
        at.run()
        at.switch_page("app_pages/review.py").run()
        if at.exception or at.error:
            raise SystemExit(f"the Review page failed: {[e.value for e in at.error]}")
        renders = []
        for i in range(args.decisions):
            seconds.clear()
            calls.clear()
            start = time.perf_counter()
            at.button(key=f"review_{LABELS[i % 3]}").click().run()
            renders.append(time.perf_counter() - start)
            if at.exception:
                raise SystemExit(f"decision {i + 1} failed: {at.exception[0].message}")
            slowest = sorted(seconds.items(), key=lambda item: -item[1])[:args.top]
            report({"bench": "review-render", "candidates": candidates, "decision": i + 1,
                    "label": LABELS[i % 3], "render_s": round(renders[-1], 3),
                    "slowest_store_calls": {k: [round(v, 3), calls[k]] for k, v in slowest},
                    "load_1min": round(os.getloadavg()[0], 2)}, args.json)
        report({"bench": "review-render", "candidates": candidates, "decisions": args.decisions,
                "render_median_s": round(statistics.median(renders), 3),
                "load_1min": round(os.getloadavg()[0], 2)}, args.json)
        Store(copy).close()


if __name__ == "__main__":
    main()
