"""Encode backends side by side: throughput against torch fp32 and a retrieval fidelity report.

Throughput: every backend encodes the same fixed sample of corpus texts, repetitions interleaved
(the order rotates each round) so load on the machine hits all alike; the figure is the median over
rounds of torch's time divided by the backend's time in the same round. "torch" is the torch
backend (fp32 with fused linear layers); the row "torch (plain model.encode)" times
sentence-transformers' own encode of the same model, so the speed-ups against either can be read.

Fidelity (scifact, test split): each backend encodes the whole corpus and the test queries; exact
search; nDCG@10 against the test qrels; per query, the overlap of the top-10 mined candidates
(labeled positives excluded) with torch fp32's; cosine of each document vector to fp32's. Vectors
are cached per backend in a workspace (``--cache``), so a second run only re-measures throughput.

    .venv/bin/python bench/encode_backends.py --json bench/encode-backends.jsonl

``--backends openvino-bf16,openvino-int8`` compares only those with torch (bench/RESULTS.md has
the commands behind each table).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.backends import backend_names, get_backend  # noqa: E402
from core.backends.torch_backend import encode_with  # noqa: E402
from core.embed import Encoder, embed_texts, load_encoder  # noqa: E402
from core.store import Store  # noqa: E402
from core.text import document_text, text_hash  # noqa: E402

SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"
TARGET_SPEEDUP = 2.5
NDCG_TOLERANCE = 0.01
OVERLAP_TARGET = 0.90


@dataclass(frozen=True)
class Beir:
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]


def read_beir(folder: Path, split: str) -> Beir:
    """Corpus texts as the workbench ingests them, the split's queries and graded qrels."""
    docs = [json.loads(line) for line in open(folder / "corpus.jsonl", encoding="utf-8")]
    queries = {}
    for line in open(folder / "queries.jsonl", encoding="utf-8"):
        row = json.loads(line)
        queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        for line in f:
            q, d, score = line.rstrip("\n").split("\t")[:3]
            if q == "query-id":
                continue
            if int(score) > 0:
                qrels.setdefault(q, {})[d] = int(score)
    query_ids = sorted(qrels, key=lambda q: (len(q), q))
    return Beir([str(r["_id"]) for r in docs],
                [document_text(r.get("title"), r.get("text")) for r in docs],
                query_ids, [queries[q] for q in query_ids], qrels)


UNFUSED = "torch (plain model.encode)"
"""Timed beside the backends: sentence-transformers' own encode of the same fp32 model, without
the torch backend's fused layers (its throughput only; its vectors are torch's to float rounding)."""


def unfused_torch(torch: Encoder) -> Encoder:
    """The torch encoder's model run by ``SentenceTransformer.encode`` itself."""
    return dataclasses.replace(torch, name=UNFUSED, encode_fn=functools.partial(encode_with,
                                                                                torch.model))


def throughput(encoders: dict[str, Encoder], texts: list[str], repeats: int) -> dict[str, dict]:
    """Texts per second of each backend, its median paired speed-up over torch fp32, and the
    cosine of its vectors to torch's on the timed texts."""
    names = list(encoders)
    for encoder in encoders.values():
        encoder.encode(texts[:8])  # warm-up: sessions, kernels, allocator
    seconds: dict[str, list[float]] = {n: [] for n in names}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            started = time.perf_counter()
            vectors[name] = encoders[name].encode(texts)
            seconds[name].append(time.perf_counter() - started)
        print(f"  round {round_ + 1}/{repeats}: " + ", ".join(
            f"{n} {seconds[n][-1]:.1f}s" for n in names), file=sys.stderr, flush=True)
    base = np.array(seconds["torch"])
    out = {}
    for n in names:
        cos = np.einsum("ij,ij->i", vectors[n], vectors["torch"])
        out[n] = {
            "texts_per_s": round(len(texts) / float(np.median(seconds[n])), 2),
            "speedup_vs_torch": round(float(np.median(base / np.array(seconds[n]))), 3),
            "seconds": [round(s, 2) for s in seconds[n]],
            "sample_cosine_mean": round(float(cos.mean()), 5),
            "sample_cosine_min": round(float(cos.min()), 5),
        }
    return out


def ndcg_at_10(top: np.ndarray, data: Beir) -> float:
    """Mean nDCG@10 of ranked document indices (one row per query) against the qrels."""
    discounts = 1.0 / np.log2(np.arange(2, 12))
    values = []
    for row, qid in zip(top, data.query_ids):
        rel = data.qrels[qid]
        gains = np.array([rel.get(data.doc_ids[j], 0) for j in row[:10]], dtype=float)
        ideal = np.sort(np.array(list(rel.values()), dtype=float))[::-1][:10]
        values.append(float(gains @ discounts[:len(gains)]) / float(ideal @ discounts[:len(ideal)]))
    return float(np.mean(values))


def ranked(q_vecs: np.ndarray, d_vecs: np.ndarray, depth: int) -> np.ndarray:
    """Exact inner-product search: the ``depth`` best document indices per query, best first."""
    scores = q_vecs @ d_vecs.T
    depth = min(depth, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def mined_top10(top: np.ndarray, data: Beir) -> list[set[int]]:
    """Each query's top-10 candidates once its labeled positives are left out."""
    position = {d: i for i, d in enumerate(data.doc_ids)}
    out = []
    for row, qid in zip(top, data.query_ids):
        positives = {position[d] for d in data.qrels[qid] if d in position}
        out.append(set([j for j in row if j not in positives][:10]))
    return out


def seed_cache(cache: Path, sources: list[Path], encoders: dict[str, Encoder],
               texts: list[str]) -> None:
    """Copy vectors other workspaces already hold (e.g. bench/vs_reference.py's) into the cache.

    Vectors are keyed by backend fingerprint and text hash, so only identical encodings are copied.
    """
    hashes = [text_hash(t) for t in texts]
    store = Store(cache)
    try:
        for source in sources:
            other = Store(source)
            try:
                for encoder in encoders.values():
                    found = other.cached_vectors(encoder.fingerprint, "", hashes)
                    if found:
                        store.register_model(encoder.fingerprint, encoder.name, encoder.dim)
                        store.put_vectors(encoder.fingerprint, "", list(found),
                                          np.stack(list(found.values())))
                        print(f"  seeded {len(found)} {encoder.backend} vectors from {source}",
                              file=sys.stderr)
            finally:
                other.close()
    finally:
        store.close()


def fidelity(encoders: dict[str, Encoder], data: Beir, cache: Path) -> dict[str, dict]:
    """nDCG@10, candidate overlap and cosine to torch fp32 for every backend."""
    store = Store(cache)
    try:
        vectors = {}
        for name, encoder in encoders.items():
            started = time.perf_counter()
            progress = _progress(f"{name} corpus")
            d_vecs = embed_texts(store, encoder, data.doc_texts, progress=progress)
            q_vecs = embed_texts(store, encoder, data.query_texts)
            vectors[name] = (q_vecs, d_vecs)
            print(f"  {name}: vectors ready in {time.perf_counter() - started:.0f}s",
                  file=sys.stderr, flush=True)
    finally:
        store.close()
    ref_q, ref_d = vectors["torch"]
    ref_top = ranked(ref_q, ref_d, 40)
    ref_mined = mined_top10(ref_top, data)
    out = {}
    for name, (q_vecs, d_vecs) in vectors.items():
        top = ranked(q_vecs, d_vecs, 40)
        overlap = [len(a & b) / 10 for a, b in zip(mined_top10(top, data), ref_mined)]
        cos = np.einsum("ij,ij->i", d_vecs, ref_d)
        out[name] = {"ndcg_at_10": round(ndcg_at_10(top, data), 4),
                     "top10_overlap_mean": round(float(np.mean(overlap)), 4),
                     "top10_overlap_min": round(float(np.min(overlap)), 2),
                     "doc_cosine_mean": round(float(cos.mean()), 5),
                     "doc_cosine_min": round(float(cos.min()), 5)}
    return out


def _progress(label: str):
    state = {"next": 0.0}

    def report(done: int, total: int) -> None:
        if total and (done >= total or time.perf_counter() >= state["next"]):
            state["next"] = time.perf_counter() + 30
            print(f"    {label}: {done}/{total}", file=sys.stderr, flush=True)

    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, default=SCIFACT, help="BEIR folder (scifact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--backends", default=",".join(backend_names()[1:]),
                        help="compared with torch fp32 (default: every other backend)")
    parser.add_argument("--throughput-texts", type=int, default=256,
                        help="fixed random sample of corpus texts timed per round (256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache", type=Path,
                        default=REPO / "data" / "workspaces" / "bench-backends.duckdb",
                        help="workspace caching each backend's vectors between runs")
    parser.add_argument("--skip-fidelity", action="store_true")
    parser.add_argument("--fidelity-backends",
                        help="comma-separated backends that encode the whole corpus for the "
                        "fidelity report (default: all; torch is always included)")
    parser.add_argument("--seed-cache", type=Path, action="append", default=[],
                        help="workspace whose cached vectors of these texts are reused "
                        "(repeatable), e.g. bench/vs_reference.py's")
    parser.add_argument("--json", type=Path, help="also write the result rows here")
    args = parser.parse_args(argv)

    data = read_beir(args.beir, args.split)
    model_cache = args.cache.resolve().parent / "model-cache"
    encoders: dict[str, Encoder] = {"torch": load_encoder(None, args.batch_size)}
    encoders[UNFUSED] = unfused_torch(encoders["torch"])
    skipped = {}
    for name in [n.strip() for n in args.backends.split(",") if n.strip() and n != "torch"]:
        reason = get_backend(name).unavailable()
        if reason:
            skipped[name] = reason
            print(f"skipping {name}: {reason}", file=sys.stderr)
            continue
        started = time.perf_counter()
        encoders[name] = load_encoder(None, args.batch_size, name, model_cache)
        print(f"loaded {name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    rng = np.random.default_rng(0)
    sample = [data.doc_texts[i] for i in rng.choice(len(data.doc_texts), args.throughput_texts,
                                                     replace=False)]
    print(f"throughput: {len(sample)} scifact texts x {args.repeats} rounds", file=sys.stderr)
    load_before = os.getloadavg()[0]
    speed = throughput(encoders, sample, args.repeats)
    load = [round(load_before, 1), round(os.getloadavg()[0], 1)]  # the machine is shared
    quality = {}
    if not args.skip_fidelity:
        chosen = ({"torch", *[n.strip() for n in args.fidelity_backends.split(",")]}
                  if args.fidelity_backends else set(encoders) - {UNFUSED})
        subset = {n: e for n, e in encoders.items() if n in chosen}
        seed_cache(args.cache, args.seed_cache, subset, data.doc_texts + data.query_texts)
        quality = fidelity(subset, data, args.cache)
    rows = []
    base = quality.get("torch", {})
    for name in encoders:
        row = {"backend": name, "cpu_threads": os.cpu_count(), "load_average_1min": load,
               **speed[name], **quality.get(name, {})}
        if name in quality:
            row["ndcg_delta"] = round(row["ndcg_at_10"] - base["ndcg_at_10"], 4)
            row["meets_fidelity"] = bool(abs(row["ndcg_delta"]) <= NDCG_TOLERANCE
                                         and row["top10_overlap_mean"] >= OVERLAP_TARGET)
        row["meets_speed"] = row["speedup_vs_torch"] >= TARGET_SPEEDUP
        rows.append(row)
    for name, reason in skipped.items():
        rows.append({"backend": name, "skipped": reason})
    _print_table(rows, f"{args.beir.name} ({args.split})", len(data.doc_texts),
                 len(data.query_ids))
    print(f"\nload average (1 min) before / after the timed rounds: {load[0]} / {load[1]}")
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return 0


def _print_table(rows: list[dict], data_name: str, n_docs: int, n_queries: int) -> None:
    print(f"\n{data_name}: {n_docs} documents, {n_queries} queries\n")
    print("| backend | texts/s | speed-up vs torch fp32 | cosine to fp32, timed texts (mean / min) "
          "| nDCG@10 | delta | top-10 overlap (mean / min) | doc cosine (mean / min) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['backend']} | skipped: {r['skipped']} | | | | | | |")
            continue
        fid = (f"{r['ndcg_at_10']:.4f} | {r['ndcg_delta']:+.4f} | {r['top10_overlap_mean']:.3f} / "
               f"{r['top10_overlap_min']:.1f} | {r['doc_cosine_mean']:.4f} / "
               f"{r['doc_cosine_min']:.4f}") if "ndcg_at_10" in r else "- | - | - | -"
        print(f"| {r['backend']} | {r['texts_per_s']:.1f} | {r['speedup_vs_torch']:.2f}x | "
              f"{r['sample_cosine_mean']:.4f} / {r['sample_cosine_min']:.4f} | {fid} |")

if __name__ == "__main__":
    sys.exit(main())
