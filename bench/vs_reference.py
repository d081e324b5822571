"""Our CLI pipeline against sentence-transformers' ``mine_hard_negatives``, one run, same data.

Same model (the bundled all-MiniLM-L6-v2), same data (scifact: the train split's queries and
positives, the whole corpus), k = 5 hard negatives per query written as triplets:

* reference: ``sentence_transformers.util.mine_hard_negatives(use_faiss=True)`` with its defaults,
  then ``Dataset.to_json``, in one process;
* ours: ``python -m core ingest``, ``mine --strategy top_k --backend B``, ``export --format
  triplet``, each its own process, in a fresh workspace (no vector cached), for B = torch and
  an int8 backend (``--int8-backend``, default openvino-int8). The int8 model is built once per model and kept beside the workspace; the run copies
  an already built one (``--model-cache``, default the one bench/encode_backends.py built) and
  reports its one-time build time from its manifest. ``--cold`` also times a run that builds it.

Every command runs in its own subprocess; wall time is measured around it, CPU time (user + sys)
and peak memory are the child's own (``os.wait4``: maximum resident set size). Ours is the sum of
its three commands' times and the largest of their peaks. The 1-minute load average is recorded
after each command: on a shared machine wall time depends on it, CPU time and memory much less.

    .venv/bin/python bench/vs_reference.py --json bench/vs-reference.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"
PYTHON = sys.executable


def timed(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` to completion; its wall seconds and peak RSS in MiB (raises if it fails)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "ab") as sink:
        sink.write(("$ " + " ".join(cmd) + "\n").encode())
        sink.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}; see {log}")
    return {"cmd": " ".join(cmd), "seconds": round(seconds, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "load_1min_after": load_average()}


def load_average() -> float:
    """The machine's 1-minute load average (other work on it slows wall time, not memory)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_reference(args: argparse.Namespace, work: Path) -> dict:
    out = work / "reference-triplets.jsonl"
    step = timed([PYTHON, str(Path(__file__).resolve()), "--child-reference", "--beir",
                  str(args.beir), "--split", args.split, "--num-negatives",
                  str(args.num_negatives), "--out", str(out)], work / "reference.log")
    return {"pipeline": "sentence-transformers mine_hard_negatives(use_faiss=True)",
            "seconds": step["seconds"], "cpu_s": step["cpu_s"],
            "peak_rss_mib": step["peak_rss_mib"],
            "rows": _count_lines(out), "steps": [step]}


def run_ours(args: argparse.Namespace, folder: Path, backend: str, label: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    workspace = folder / f"{label}.duckdb"
    out = folder / f"{label}-triplets.jsonl"
    log = folder / f"{label}.log"
    core = [PYTHON, "-m", "core"]
    steps = [
        timed([*core, "ingest", "--workspace", str(workspace), "--beir", str(args.beir),
               "--split", args.split], log),
        timed([*core, "mine", "--workspace", str(workspace), "--strategy", "top_k",
               "--num-negatives", str(args.num_negatives), "--backend", backend, "--quiet",
               *(["--batch-size", str(args.batch_size)] if args.batch_size else [])], log),
        timed([*core, "export", "--workspace", str(workspace), "--format", "triplet",
               "--out", str(out)], log),
    ]
    return {"pipeline": f"ours ({label})", "backend": backend,
            "seconds": round(sum(s["seconds"] for s in steps), 1),
            "cpu_s": round(sum(s["cpu_s"] for s in steps), 1),
            "peak_rss_mib": max(s["peak_rss_mib"] for s in steps), "rows": _count_lines(out),
            "steps": steps}


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def child_reference(args: argparse.Namespace) -> int:
    """The reference pipeline, run in its own process by ``run_reference``."""
    sys.path.insert(0, str(REPO))
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from core.embed import bundled_model_path
    from core.text import document_text

    corpus, by_id = [], {}
    for line in open(args.beir / "corpus.jsonl", encoding="utf-8"):
        row = json.loads(line)
        by_id[str(row["_id"])] = len(corpus)
        corpus.append(document_text(row.get("title"), row.get("text")))
    queries = {}
    for line in open(args.beir / "queries.jsonl", encoding="utf-8"):
        row = json.loads(line)
        queries[str(row["_id"])] = row["text"]
    anchors, positives = [], []
    with open(args.beir / "qrels" / f"{args.split}.tsv", encoding="utf-8") as f:
        for line in f:
            q, d, score = line.rstrip("\n").split("\t")[:3]
            if q != "query-id" and int(score) > 0 and d in by_id:
                anchors.append(queries[q])
                positives.append(corpus[by_id[d]])
    model = SentenceTransformer(bundled_model_path(), device="cpu")
    dataset = Dataset.from_dict({"anchor": anchors, "positive": positives})
    mined = mine_hard_negatives(dataset, model, corpus=corpus, num_negatives=args.num_negatives,
                                use_faiss=True, verbose=False)
    mined.to_json(str(args.out), lines=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, default=SCIFACT)
    parser.add_argument("--split", default="train")
    parser.add_argument("--num-negatives", type=int, default=5)
    parser.add_argument("--work", type=Path, default=REPO / "data" / "workspaces" / "vs-reference",
                        help="scratch folder, emptied first")
    parser.add_argument("--skip", default="", help="comma-separated: reference, torch, int8")
    parser.add_argument("--batch-size", type=int,
                        help="our mine's --batch-size (default: mine's own default)")
    parser.add_argument("--int8-backend", default="openvino-int8",
                        help="the quantised backend timed as 'int8' (openvino-int8 or onnx-int8)")
    parser.add_argument("--model-cache", type=Path,
                        default=REPO / "data" / "workspaces" / "model-cache",
                        help="built int8 models to start the int8 run with (copied)")
    parser.add_argument("--cold", action="store_true",
                        help="also time an int8 run that builds its model first")
    parser.add_argument("--json", type=Path, help="also write the result rows here")
    parser.add_argument("--child-reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_reference:
        return child_reference(args)

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows = []

    def report(row: dict) -> None:
        rows.append(row)
        print(f"{row['pipeline']}: {row['seconds']:.1f}s, peak {row['peak_rss_mib']:.0f} MiB, "
              f"{row['rows']} triplets", file=sys.stderr, flush=True)

    if "reference" not in skip:
        report(run_reference(args, args.work))
    if "torch" not in skip:
        report(run_ours(args, args.work / "torch", "torch", "torch"))
    if "int8" not in skip:
        name = args.int8_backend
        if args.cold:
            report(run_ours(args, args.work / f"{name}-cold", name, f"{name}-cold"))
        folder = args.work / name
        if args.model_cache.exists():
            shutil.copytree(args.model_cache, folder / "model-cache")
        report(run_ours(args, folder, name, name))
        for manifest in (folder / "model-cache").glob("*/manifest.json"):
            built = json.loads(manifest.read_text(encoding="utf-8"))
            rows[-1]["one_time_build_s"] = round(sum(v.get("seconds", 0) for v in built.values()), 1)
    ref = rows[0] if rows and rows[0]["pipeline"].startswith("sentence") else None
    print("\n| pipeline | wall s | ratio to reference | CPU s | ratio to reference | "
          "peak RSS MiB | ratio to reference | load after |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if ref:
            row["time_ratio"] = round(row["seconds"] / ref["seconds"], 3)
            row["cpu_ratio"] = round(row["cpu_s"] / ref["cpu_s"], 3)
            row["memory_ratio"] = round(row["peak_rss_mib"] / ref["peak_rss_mib"], 3)
        print(f"| {row['pipeline']} | {row['seconds']:.1f} | {row.get('time_ratio', '-')} | "
              f"{row['cpu_s']:.1f} | {row.get('cpu_ratio', '-')} | {row['peak_rss_mib']:.0f} | "
              f"{row.get('memory_ratio', '-')} | {row['steps'][-1]['load_1min_after']} |")
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
