"""Synthetic precomputed embeddings with realistic cluster structure, for the scale benchmark.

No corpus of a million documents is available offline, so this writes one in the precomputed
format that ``core.vectors`` ingests (a folder with ``embeddings.json``, ``corpus.vectors.parquet``,
``queries.vectors.parquet`` and ``qrels/train.tsv``; no texts).

Structure, chosen to look like sentence embeddings rather than uniform noise:
- a shared mean direction (real embeddings are anisotropic: unrelated texts still score ~0.1-0.2);
- ``n_topics`` super-topics, each holding many clusters (sizes log-normal: a few huge, a long
  tail of small ones), so neighbouring clusters are closer than unrelated ones;
- per-cluster spread drawn log-normal, so some clusters are tight (near-duplicates) and others
  diffuse;
- each query is a noisy copy of its positive document (cosine to it about 0.5-0.8), and one
  query in ten labels a second positive from the same cluster.

With ``--texts`` it also writes corpus.jsonl and queries.jsonl: made-up words drawn from each
document's topic and cluster vocabularies (so cluster names and the review card have something to
show; the vectors stay the same with or without texts).

Run:
    .venv/bin/python bench/synthetic.py --out data/workspaces/bench/synthetic-1m \
        --docs 1000000 --queries 100000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 100_000


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _vector_table(ids: list[str], vectors: np.ndarray) -> pa.Table:
    """id (string) + vector (list<float>) as the precomputed format defines."""
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32))
    return pa.table({"id": pa.array(ids, type=pa.string()),
                     "vector": pa.ListArray.from_arrays(offsets, flat)})


class Layout:
    """The cluster structure: centres and spreads, shared by documents and queries."""

    def __init__(self, dim: int, n_clusters: int, n_topics: int, n_docs: int,
                 rng: np.random.Generator) -> None:
        mean = _normalize(rng.standard_normal((1, dim)))
        topics = _normalize(rng.standard_normal((n_topics, dim)))
        topic_of = rng.integers(0, n_topics, n_clusters)
        self.topic_of = topic_of
        own = _normalize(rng.standard_normal((n_clusters, dim)))
        self.centres = _normalize(0.35 * mean + 0.75 * topics[topic_of] + 0.6 * own)
        sizes = rng.lognormal(0.0, 1.0, n_clusters)
        self.weights = sizes / sizes.sum()
        # Noise scale per dimension: cosine(doc, centre) ~ 1 / sqrt(1 + spread^2 * dim).
        self.spread = rng.lognormal(np.log(0.055), 0.35, n_clusters).astype(np.float32)
        self.dim = dim
        self.cluster_of = rng.choice(n_clusters, size=n_docs, p=self.weights).astype(np.int32)

    def documents(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cluster_of[rows]
        noise = rng.standard_normal((len(rows), self.dim), dtype=np.float32)
        return _normalize(self.centres[c].astype(np.float32) + self.spread[c, None] * noise)


_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "bra", "dri", "fla", "gro",
              "ple", "stu", "tor", "wen", "xil", "yun", "quo")


def _words(rng: np.random.Generator, n: int) -> list[str]:
    return ["".join(rng.choice(_SYLLABLES, size=rng.integers(2, 4))) for _ in range(n)]


def write_texts(out: Path, layout: Layout, doc_ids: list[str], query_ids: list[str],
                positives: np.ndarray, seed: int) -> None:
    """corpus.jsonl and queries.jsonl of made-up words: each document mixes its topic's, its
    cluster's and common words; each query takes words of its positive."""
    rng = np.random.default_rng(seed + 1)
    common = _words(rng, 300)
    topics = [_words(rng, 40) for _ in range(int(layout.topic_of.max()) + 1)]
    clusters = [_words(rng, 6) for _ in range(len(layout.topic_of))]
    words = {}
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for row, doc_id in enumerate(doc_ids):
            c = int(layout.cluster_of[row])
            picked = (list(rng.choice(clusters[c], 4)) + list(rng.choice(topics[layout.topic_of[c]],
                                                                         10))
                      + list(rng.choice(common, 12)))
            rng.shuffle(picked)
            words[row] = picked
            f.write(json.dumps({"_id": doc_id, "title": " ".join(picked[:3]).capitalize(),
                                "text": " ".join(picked[3:]) + "."}) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for query_id, doc in zip(query_ids, positives):
            picked = list(rng.choice(words[int(doc)], 6, replace=False))
            f.write(json.dumps({"_id": query_id, "text": " ".join(picked) + "?"}) + "\n")


def generate(out: Path, n_docs: int, n_queries: int, dim: int = 384, n_clusters: int = 0,
             n_topics: int = 0, seed: int = 0, model: str = "synthetic-384",
             texts: bool = False) -> dict:
    """Write the folder and return a summary (counts, cluster count, seconds)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_clusters = n_clusters or max(10, int(2 * np.sqrt(n_docs)))
    n_topics = n_topics or max(3, int(np.sqrt(n_clusters)))
    layout = Layout(dim, n_clusters, n_topics, n_docs, rng)
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    width = len(str(n_docs))
    positives = rng.choice(n_docs, size=n_queries, replace=False)

    writer = pq.ParquetWriter(out / "corpus.vectors.parquet",
                              _vector_table(["x"], np.zeros((1, dim), np.float32)).schema)
    pos_vectors = np.empty((n_queries, dim), dtype=np.float32)
    order = np.argsort(positives)
    sorted_pos = positives[order]
    for start in range(0, n_docs, CHUNK):
        rows = np.arange(start, min(start + CHUNK, n_docs))
        block = layout.documents(rows, rng)
        writer.write_table(_vector_table([f"d{r:0{width}d}" for r in rows], block),
                           row_group_size=CHUNK)
        lo, hi = np.searchsorted(sorted_pos, [rows[0], rows[-1] + 1])
        pos_vectors[order[lo:hi]] = block[sorted_pos[lo:hi] - start]
    writer.close()

    # Queries: a noisy copy of the positive, pulled slightly towards its cluster centre.
    noise = rng.lognormal(np.log(0.06), 0.25, n_queries).astype(np.float32)
    centre = layout.centres[layout.cluster_of[positives]].astype(np.float32)
    queries = _normalize(pos_vectors + 0.25 * centre
                         + noise[:, None] * rng.standard_normal((n_queries, dim), dtype=np.float32))
    qwidth = len(str(n_queries))
    query_ids = [f"q{i:0{qwidth}d}" for i in range(n_queries)]
    pq.write_table(_vector_table(query_ids, queries), out / "queries.vectors.parquet",
                   row_group_size=CHUNK)

    # A second positive for one query in ten: another document of the same cluster.
    members = np.argsort(layout.cluster_of, kind="stable")
    bounds = np.searchsorted(layout.cluster_of[members], np.arange(n_clusters + 1))
    lines = ["query-id\tcorpus-id\tscore"]
    second = 0
    for i, doc in enumerate(positives):
        lines.append(f"{query_ids[i]}\td{doc:0{width}d}\t1")
        c = layout.cluster_of[doc]
        size = bounds[c + 1] - bounds[c]
        if i % 10 == 0 and size > 1:
            other = members[bounds[c] + rng.integers(0, size)]
            if other != doc:
                lines.append(f"{query_ids[i]}\td{other:0{width}d}\t1")
                second += 1
    (out / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if texts:
        write_texts(out, layout, [f"d{r:0{width}d}" for r in range(n_docs)], query_ids,
                    positives, seed)
    cos_pos = float(np.mean(np.einsum("ij,ij->i", queries, pos_vectors)))
    summary = {"documents": n_docs, "queries": n_queries, "dim": dim, "clusters": n_clusters,
               "topics": n_topics, "second_positives": second,
               "mean_cosine_query_positive": round(cos_pos, 3),
               "texts": texts, "seconds": round(time.perf_counter() - t0, 1)}
    manifest = {"model": model, "dim": dim, "normalized": True,
                "description": "bench/synthetic.py: clustered synthetic vectors"
                               + (", made-up texts" if texts else ", no texts"),
                "generator": {"seed": seed, **summary}}
    (out / "embeddings.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=0, help="0: 2 sqrt(docs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--texts", action="store_true",
                        help="also write corpus.jsonl and queries.jsonl of made-up words")
    args = parser.parse_args()
    summary = generate(args.out, args.docs, args.queries, args.dim, args.clusters, seed=args.seed,
                       texts=args.texts)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
