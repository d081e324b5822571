"""Scale benchmark (issue 5, target 4): precomputed vectors in, a 100-deep pool mined, app queries timed.

Input: a folder from bench/synthetic.py (or any precomputed-embeddings folder). Steps, each timed:
ingest the vectors; mine ``curated`` with ``--model precomputed:NAME`` (index chosen by size, its
recall@100 against exact search measured on 1,000 queries and stored with the run); a second
run with other parameters (re-uses the stored pool); then the app's queries on the resulting
candidate rows, each repeated and reported as a median: the next review item, margin histograms,
the comparison of the two runs, the export (50 queries' negatives with texts; the Export page's
preview, its first 200 queries in every column; all 500k negatives, ids only and with texts),
a decision's round trip; then writing the whole run as a flag-embedding file (timed once).
Peak RSS is the process's high-water mark after each step.

Run:
    .venv/bin/python bench/synthetic.py --out data/workspaces/bench/synthetic-1m
    .venv/bin/python bench/scale.py --data data/workspaces/bench/synthetic-1m \
        --workspace data/workspaces/bench/scale-1m.duckdb --json bench/scale.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.export import ExportOptions, export_run, planned_negatives, preview_export  # noqa: E402
from core.margins import margin_histogram  # noqa: E402
from core.mine import MineRequest, mine  # noqa: E402
from core.review import decide, next_review_item  # noqa: E402
from core.runs import selection_overlap  # noqa: E402
from core.store import Store  # noqa: E402
from core.vectors import ingest_vectors, read_manifest  # noqa: E402
from results import report  # noqa: E402  (bench/, the script's own folder)


def peak_rss_gb() -> float:
    """The process's peak resident set size so far (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


class PhaseMemory:
    """Samples the resident set size every 0.2 s and keeps the peak of each phase (GB)."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.2):
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page / 1e9
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), round(rss, 2))

    def progress(self, phase: str, done: int, total: int) -> None:
        """A ``core.mine`` progress callback: the mining phase names the memory phase."""
        self.phase = f"mine: {phase}"

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def timed_median(fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls (after one untimed call), and the last result."""
    fn()
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="precomputed-embeddings folder")
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--repeats", type=int, default=5, help="per app query (5)")
    parser.add_argument("--json", type=Path, help="append the result as one JSON line here")
    parser.add_argument("--queries-only", action="store_true",
                        help="time the app queries on the workspace's first two runs")
    args = parser.parse_args()
    result: dict = {"data": str(args.data), "cpus": os.cpu_count(),
                    "load_average_start": os.getloadavg()[0]}
    if args.queries_only:
        store = Store(args.workspace)
        run, other = store.get_run(1), store.get_run(2)
        result["candidate_rows"] = store.count_candidates(run.run_id)
        time_queries(store, run, other, args, result)
        return
    for suffix in ("", ".wal"):
        Path(str(args.workspace) + suffix).unlink(missing_ok=True)
    model = read_manifest(args.data)[0]
    t0 = time.perf_counter()
    memory = PhaseMemory()
    store = Store(args.workspace)
    t = time.perf_counter()
    memory.phase = "ingest"
    report = ingest_vectors(store, args.data)
    result["ingest_s"] = time.perf_counter() - t
    result["documents"] = report.dataset.n_documents
    result["queries"] = report.dataset.n_queries
    result["peak_rss_after_ingest_gb"] = peak_rss_gb()
    print(json.dumps(result), flush=True)

    t = time.perf_counter()
    memory.phase = "mine: load"
    run = mine(store, MineRequest(strategy="curated", model=f"precomputed:{model}",
                                  pool_depth=100, num_negatives=5), progress=memory.progress)
    result["mine_s"] = time.perf_counter() - t
    result["mine_phases_s"] = {k: round(v, 2) for k, v in run.timings.items()}
    result["search"] = run.search
    result["candidate_rows"] = store.count_candidates(run.run_id)
    result["ingest_and_mine_s"] = time.perf_counter() - t0
    result["peak_rss_after_mine_gb"] = peak_rss_gb()
    print(json.dumps(result), flush=True)

    memory.phase = "remine"
    result["engine_memory_gb"] = store.engine_memory_bytes() / 1e9
    t = time.perf_counter()
    other = mine(store, MineRequest(strategy="curated", model=f"precomputed:{model}",
                                    pool_depth=100, num_negatives=5,
                                    params={"max_suspicion": 0.7}))
    result["remine_s"] = time.perf_counter() - t
    result["remine_reused_pool_of"] = other.search.get("reused_pool_of")
    result["peak_rss_after_remine_gb"] = peak_rss_gb()
    result["peak_rss_by_phase_gb"] = memory.stop()
    print(json.dumps(result), flush=True)
    time_queries(store, run, other, args, result)


def time_queries(store: Store, run, other, args: argparse.Namespace, result: dict) -> None:
    """Time the app's queries on ``run`` (and the comparison with ``other``); print, append."""
    queries: dict[str, float] = {}
    queries["next_review_item"], item = timed_median(
        lambda: next_review_item(store, run.run_id), args.repeats)
    queries["margin_histogram_selected"], _ = timed_median(
        lambda: margin_histogram(store, run.run_id, 40), args.repeats)
    queries["margin_histogram_pool"], _ = timed_median(
        lambda: margin_histogram(store, run.run_id, 40, selected_only=False), args.repeats)
    queries["run_comparison"], (overlap, _) = timed_median(
        lambda: selection_overlap(store, run.run_id, other.run_id), args.repeats)
    queries["export_choice"], planned = timed_median(
        lambda: planned_negatives(store, run.run_id), args.repeats)
    first_queries = overlap["query_id"].head(50).tolist()
    queries["export_preview_50_queries"], _ = timed_median(
        lambda: store.export_negatives(run.run_id, run.dataset_id, run.num_negatives,
                                       first_queries, run.short_queries), args.repeats)
    queries["export_page_preview"], _ = timed_median(
        lambda: preview_export(store, run.run_id, ExportOptions("triplet")), args.repeats)
    queries["export_rows_with_texts"], rows = timed_median(
        lambda: store.export_negatives(run.run_id, run.dataset_id, run.num_negatives,
                                       short_queries=run.short_queries),
        args.repeats)
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        decide(store, run.run_id, item["query_id"], item["doc_id"], "hard_negative", "bench")
        item = next_review_item(store, run.run_id)
        times.append(time.perf_counter() - t)
    queries["decision_round_trip"] = statistics.median(times)
    result["app_queries_s"] = {k: round(v, 4) for k, v in queries.items()}
    target = args.workspace.with_name(args.workspace.stem + "-export.jsonl")
    t = time.perf_counter()
    written = export_run(store, run.run_id, target, ExportOptions("flag-embedding"))
    result["export_file_s"] = round(time.perf_counter() - t, 2)  # a file, not an app query
    result["export_file_rows"] = written.rows
    target.unlink()
    Path(str(target) + ".manifest.json").unlink()
    result["export_rows"] = len(rows)
    result["overlap_queries"] = len(overlap)
    result["planned_negatives"] = len(planned)
    result["workspace_gb"] = args.workspace.stat().st_size / 1e9
    result["peak_rss_gb"] = peak_rss_gb()
    result["load_average_end"] = os.getloadavg()[0]
    store.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
