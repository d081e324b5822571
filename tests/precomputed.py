"""Precomputed-embedding folders for tests: clustered vectors, no model, milliseconds to mine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MODEL = "test-vectors"


def vector_table(ids: list[str], vectors: np.ndarray) -> pa.Table:
    """id + vector (list<float>) as the precomputed format defines."""
    return pa.table({"id": pa.array(ids, pa.string()),
                     "vector": pa.array([list(map(float, v)) for v in vectors],
                                        pa.list_(pa.float32()))})


def clustered_vectors(n_docs: int, n_queries: int, dim: int, clusters: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(documents, queries, each query's positive document): topic clusters, queries near their
    positive."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    docs = centres[rng.integers(0, clusters, n_docs)] + 0.35 * rng.normal(size=(n_docs, dim))
    positives = rng.choice(n_docs, n_queries, replace=False)
    queries = docs[positives] + 0.25 * rng.normal(size=(n_queries, dim))
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return norm(docs), norm(queries), positives


def write_vector_folder(root: Path, n_docs: int = 300, n_queries: int = 40, dim: int = 16,
                        clusters: int = 12, seed: int = 0, texts: bool = False,
                        model: str = MODEL) -> Path:
    """A folder in the precomputed format: Parquet vectors without texts, or (``texts``)
    corpus.jsonl/queries.jsonl with corpus.npy/queries.npy beside them."""
    docs, queries, positives = clustered_vectors(n_docs, n_queries, dim, clusters, seed)
    doc_ids = [f"d{i}" for i in range(n_docs)]
    query_ids = [f"q{i}" for i in range(n_queries)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "embeddings.json").write_text(json.dumps({"model": model, "dim": dim}))
    if texts:
        with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
            for i, d in enumerate(doc_ids):
                f.write(json.dumps({"_id": d, "title": "", "text": f"document {i} topic"}) + "\n")
        with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
            for i, q in enumerate(query_ids):
                f.write(json.dumps({"_id": q, "text": f"query {i}"}) + "\n")
        np.save(root / "corpus.npy", docs)
        np.save(root / "queries.npy", queries)
    else:
        pq.write_table(vector_table(doc_ids, docs), root / "corpus.vectors.parquet")
        pq.write_table(vector_table(query_ids, queries), root / "queries.vectors.parquet")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{doc_ids[p]}\t1" for q, p in zip(query_ids, positives)]
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
