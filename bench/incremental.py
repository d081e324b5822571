"""Incremental work, measured side by side on a real corpus slice (issue 5, target 2).

1. Adding 1 % new documents to a workspace: the grown folder is ingested again under the same
   name (a new version of the dataset). The embedding cache is keyed per text, so re-mining it
   encodes only the new documents, and the previous version's stored pool is extended with them
   (``core.remine.grown_pools``) instead of searching every query again. Compared with a full
   encode of the same corpus in a fresh workspace, in the same repeat (same load on the
   machine); the incremental run is checked against a fresh search of the grown version.
2. Changing mining parameters: a second run selects from the first run's stored pool (no encode,
   no search), compared with the same request forced to search again.

Run (bundled all-MiniLM-L6-v2, torch fp32; scifact train split):
    .venv/bin/python bench/incremental.py --docs 2000 --repeats 3 --json bench/incremental.jsonl
"""

from __future__ import annotations

import argparse
import json
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.embed import load_encoder  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.mine import MineRequest, mine  # noqa: E402
from core.store import Store  # noqa: E402

SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"
SLICE = "scifact-slice"  # both versions are ingested under one name, as a re-ingest would be


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_slices(root: Path, n_docs: int, new_fraction: float, seed: int) -> tuple[Path, Path]:
    """Two BEIR folders over one scifact slice: the base, and the base plus new documents.

    The slice holds every train positive and random other documents up to ``n_docs``; the new
    documents are ``new_fraction`` of the slice, never a positive (the queries do not change).
    """
    import random

    corpus = {d["_id"]: d for d in _read_jsonl(SCIFACT / "corpus.jsonl")}
    queries = {q["_id"]: q for q in _read_jsonl(SCIFACT / "queries.jsonl")}
    lines = (SCIFACT / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()
    qrels = [line.split("\t") for line in lines[1:] if line.strip()]
    positives = sorted({d for _, d, _ in qrels})
    rng = random.Random(seed)
    others = sorted(set(corpus) - set(positives))
    chosen = positives[:n_docs] + rng.sample(others, max(0, n_docs - len(positives)))
    kept = set(chosen)
    qrels = [r for r in qrels if r[1] in kept]
    spare = [d for d in chosen if d not in set(positives)]
    new = set(rng.sample(spare, max(1, round(new_fraction * len(chosen)))))
    out = []
    for name, docs in (("base", [d for d in chosen if d not in new]), ("grown", chosen)):
        folder = root / name
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(corpus[d]) + "\n")
        with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
            for q in sorted({q for q, _, _ in qrels}):
                f.write(json.dumps(queries[q]) + "\n")
        (folder / "qrels" / "train.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
        out.append(folder)
    return out[0], out[1]


def _timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def one_repeat(root: Path, base: Path, grown: Path, seed: int) -> dict:
    """Full encode, incremental encode and pool reuse, measured back to back."""
    row: dict = {}
    # Full: a fresh workspace encodes the grown corpus from nothing.
    full = Store(root / f"full-{seed}.duckdb")
    _, t_ingest = _timed(lambda: ingest(full, grown, format="beir", split="train", name=SLICE))
    run, t_mine = _timed(lambda: mine(full, MineRequest(strategy="top_k")))
    row["full_encode_s"] = run.timings["encode_documents"] + run.timings["encode_queries"]
    row["full_ingest_and_mine_s"] = t_ingest + t_mine
    row["documents"] = full.get_dataset().n_documents
    full.close()
    # Incremental: the base was mined before; the grown version adds 1 % new documents.
    inc = Store(root / f"inc-{seed}.duckdb")
    ingest(inc, base, format="beir", split="train", name=SLICE)
    mine(inc, MineRequest(strategy="top_k"))
    row["load_1min"] = os.getloadavg()[0]
    _, t_ingest = _timed(lambda: ingest(inc, grown, format="beir", split="train", name=SLICE))
    run, t_mine = _timed(lambda: mine(inc, MineRequest(strategy="top_k")))
    row["new_documents"] = row["documents"] - inc.get_dataset(dataset_id=1).n_documents
    row["incremental_encode_s"] = run.timings["encode_documents"] + run.timings["encode_queries"]
    row["incremental_ingest_and_mine_s"] = t_ingest + t_mine
    row["incremental_timings"] = {k: round(v, 4) for k, v in run.timings.items()}
    row["searched_again"] = run.search.get("searched_again")  # None: every query was searched
    # Pool reuse: new parameters on the grown dataset, reused vs searched again.
    request = MineRequest(strategy="curated", params={"max_suspicion": 0.5})
    reused, t_reuse = _timed(lambda: mine(inc, request))
    fresh, t_fresh = _timed(lambda: mine(inc, MineRequest(**{**request.__dict__,
                                                             "reuse_pool": False})))
    assert reused.search.get("reused_pool_of") == run.run_id, reused.search
    row["remine_reused_s"], row["remine_searched_s"] = t_reuse, t_fresh
    row["same_selection"] = _selected(inc, reused) == _selected(inc, fresh)
    # Last (it becomes the newest run): the incremental run against a fresh search of the grown
    # version.
    row["same_as_fresh_search"] = _pool(inc, run) == _pool(
        inc, mine(inc, MineRequest(strategy="top_k", reuse_pool=False)))
    inc.close()
    row["encode_ratio"] = row["incremental_encode_s"] / row["full_encode_s"]
    row["end_to_end_ratio"] = row["incremental_ingest_and_mine_s"] / row["full_encode_s"]
    row["reuse_ratio"] = t_reuse / t_fresh
    return row


def _pool(store: Store, run) -> list:
    """The run's candidates with rank, selection and suspicion (rounded to 6 decimals)."""
    frame = store.run_candidates(run.run_id).sort_values(["query_id", "rank", "doc_id"])
    return [(q, d, r, s, round(float(v), 6)) for q, d, r, s, v in zip(
        frame["query_id"], frame["doc_id"], frame["rank"], frame["selected"], frame["suspicion"])]


def _selected(store: Store, run) -> set:
    frame = store.run_candidates(run.run_id)
    return set(zip(frame.loc[frame["selected"], "query_id"], frame.loc[frame["selected"],
                                                                       "doc_id"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="corpus slice size (2000)")
    parser.add_argument("--new", type=float, default=0.01, help="fraction added (0.01)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="append one JSON line per repeat here")
    args = parser.parse_args()
    load_encoder().encode(["warm up the model once"])
    root = Path(tempfile.mkdtemp(prefix="incremental-"))
    rows = []
    try:
        base, grown = write_slices(root, args.docs, args.new, seed=0)
        for seed in range(args.repeats):
            row = one_repeat(root, base, grown, seed)
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k],
                                                                                   float)}
    print("\nmedians over", len(rows), "repeats:")
    for key, value in med.items():
        print(f"  {key}: {value:.4f}")


if __name__ == "__main__":
    main()
