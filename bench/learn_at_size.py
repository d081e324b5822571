"""How long learning from decisions takes on a large run (the Review page's "Learn from decisions"
button and `python -m core learn`), against the code at another git revision, side by side.

Copies ``--workspace`` (a workspace with a scored run, e.g. the one bench/scale.py builds) once
per code tree, gives the copy ``--per-label`` seeded random decisions of each label on the run's
candidates when it has fewer, and then times ``learn_from_decisions`` ``--repeats`` times in
each tree, alternating, each in a fresh process (wall time and the process's peak RSS). Learning
again on the same copy costs what learning the first time does: the model is anchored on the
cold suspicion kept in the signals. Meanwhile a thread records a decision every 50 ms, as an
annotator does while the Review page re-learns in the background, and the longest any of them
waited is reported (the time learning holds the workspace's write lock).

    .venv/bin/python bench/learn_at_size.py --workspace data/workspaces/bench/scale-1m.duckdb \
        --baseline 42b301f --json bench/learn-at-size.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def time_once(workspace: Path) -> dict:
    """Learn once on ``workspace`` with the ``core`` found first on sys.path (scikit-learn is
    imported before the clock starts: a process pays that second once, not at every learning)."""
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401

    from core.false_negatives.learning import learn_from_decisions
    from core.store import Store

    with Store(workspace) as store:
        # An annotator deciding while the Review page re-learns in the background
        # (core.relearning): a decision every 50 ms on an already decided pair (same label, so
        # the model learns the same), timed; the longest wait is the write lock's hold.
        decided = store.decision_records()
        decided = decided[decided["label"] == "hard_negative"].iloc[0]
        waits: list[float] = []
        stop = threading.Event()

        def decide_meanwhile() -> None:
            while not stop.is_set():
                begin = time.perf_counter()
                store.record_decision(decided.query_hash, decided.doc_hash, "hard_negative",
                                      decided.annotator)
                waits.append(time.perf_counter() - begin)
                stop.wait(0.05)

        annotator = threading.Thread(target=decide_meanwhile)
        annotator.start()
        start = time.perf_counter()
        try:
            report = learn_from_decisions(store)
        finally:
            seconds = time.perf_counter() - start
            stop.set()
            annotator.join()
    return {"seconds": round(seconds, 2), "decision_wait_max_s": round(max(waits), 2),
            "decision_wait_median_s": round(statistics.median(waits), 3),
            "decisions_meanwhile": len(waits), "rescored": report.rescored,
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


def add_decisions(workspace: Path, per_label: int, seed: int = 0) -> int:
    """Seeded random decisions of each label on the run's candidates, up to ``per_label``."""
    import numpy as np

    from core.store import Store

    with Store(workspace) as store:
        pool = store.run_candidates(store.get_run(None).run_id)
        rng = np.random.default_rng(seed)
        added = 0
        for label in ("false_negative", "hard_negative"):
            missing = per_label - int((pool["decision"] == label).sum())
            undecided = pool[pool["decision"].isna()]
            if missing <= 0 or undecided.empty:
                continue
            picked = undecided.iloc[rng.choice(len(undecided), min(missing, len(undecided)),
                                               replace=False)]
            for q, d in zip(picked["query_hash"], picked["doc_hash"]):
                store.record_decision(q, d, label, "bench")
            pool.loc[picked.index, "decision"] = label
            added += len(picked)
    return added


def _run_in(tree: Path, workspace: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "learn_at_size.py"), "--time-once", str(workspace)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
        capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--baseline", help="a git revision to time side by side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-label", type=int, default=160)
    parser.add_argument("--json", type=Path, help="append the result as a JSON line")
    parser.add_argument("--time-once", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_once:
        print(json.dumps(time_once(args.time_once)))
        return
    if args.workspace is None or not args.workspace.is_file():
        parser.error(f"--workspace {args.workspace} is not a workspace file")
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="learn-at-size-") as tmp:
        trees = {"current": REPO}
        if args.baseline:
            base = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base),
                            args.baseline], check=True, capture_output=True)
            trees["baseline"] = base
        try:
            copies = {}
            for name in trees:
                copies[name] = Path(tmp) / f"{name}.duckdb"
                shutil.copy(args.workspace, copies[name])
                added = add_decisions(copies[name], args.per_label)
            times: dict[str, list[dict]] = {name: [] for name in trees}
            for _ in range(args.repeats):
                for name, tree in trees.items():
                    times[name].append(_run_in(tree, copies[name]))
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(trees["baseline"])], check=False, capture_output=True)
    row = {"bench": "learn-at-size", "workspace": str(args.workspace),
           "baseline": args.baseline, "decisions_added": added,
           "rescored": times["current"][0]["rescored"]}
    for name, runs in times.items():
        row[f"{name}_s"] = statistics.median(r["seconds"] for r in runs)
        row[f"{name}_decision_wait_max_s"] = statistics.median(
            r["decision_wait_max_s"] for r in runs)
        row[f"{name}_peak_rss_gb"] = max(r["peak_rss_gb"] for r in runs)
        print(f"{name:>9}: median {row[f'{name}_s']:.1f} s of "
              f"{[r['seconds'] for r in runs]} (a decision meanwhile waited at most "
              f"{row[f'{name}_decision_wait_max_s']:.1f} s), peak RSS "
              f"{row[f'{name}_peak_rss_gb']:.2f} GB")
    if args.baseline:
        row["ratio"] = round(row["baseline_s"] / row["current_s"], 2)
        print(f"learning now takes {row['current_s'] / row['baseline_s']:.2f}x the time it "
              f"took at {args.baseline}")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
