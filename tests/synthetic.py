"""A mined workspace without a model: the tiny corpus, planted topic vectors and a hand-made run.

Core modules behind the app (margins, projection, clusters, map, annotation) are tested on it in
milliseconds; the app tests use the real bundled model instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.store import Store
from tests.conftest import ingest_tiny, write_beir

MODEL_FP = "fp-synthetic"
TOPIC_OF = {"d1": 0, "d2": 0, "d3": 0, "d4": 1, "d5": 1, "d6": 2, "d7": 2, "d8": 3, "d9": 3,
            "d10": 3, "d11": 4, "d12": 4, "q1": 0, "q2": 1, "q3": 2, "q4": 3}
DIM = 8


@dataclass(frozen=True)
class SyntheticRun:
    """The workspace's dataset id and run id, and the run's candidate frame as stored."""

    dataset_id: int
    run_id: int
    candidates: pd.DataFrame


def _vector(key: str, rng: np.random.Generator) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[TOPIC_OF[key]] = 1.0
    v += rng.normal(scale=0.15, size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _candidates(store: Store, dataset_id: int, vectors: dict[str, np.ndarray],
                k: int) -> pd.DataFrame:
    positives = store.dataset_frame(dataset_id, "positives")
    pos_of = positives.groupby("query_id")["doc_id"].agg(list)
    docs = store.dataset_frame(dataset_id, "documents")["doc_id"].tolist()
    rows = []
    for query_id, pos in pos_of.items():
        pos_score = min(float(vectors[query_id] @ vectors[p]) for p in pos)
        pool = sorted(((float(vectors[query_id] @ vectors[d]), d) for d in docs if d not in pos),
                      reverse=True)
        for rank, (score, doc_id) in enumerate(pool, start=1):
            rows.append({"query_id": query_id, "doc_id": doc_id, "rank": rank, "score": score,
                         "pos_score": pos_score, "lexical_score": np.nan, "source": "search",
                         "eligible": True, "selected": rank <= k})
    return pd.DataFrame(rows)


def add_run(store: Store, dataset_id: int, k: int = 2, strategy: str = "top_k",
            selected: pd.DataFrame | None = None) -> SyntheticRun:
    """Store a finished run over the planted vectors (top k selected unless ``selected`` says)."""
    rng = np.random.default_rng(0)
    keys = list(TOPIC_OF)
    vectors = {key: _vector(key, rng) for key in keys}
    frame = _candidates(store, dataset_id, vectors, k)
    if selected is not None:
        chosen = set(zip(selected["query_id"], selected["doc_id"]))
        frame["selected"] = [p in chosen for p in zip(frame["query_id"], frame["doc_id"])]
    run_id = store.create_run(dataset_id, strategy, {}, "synthetic", MODEL_FP, "", "", 0, k, 20)
    store.finish_run(run_id, frame, {"total": 0.5, "encode_queries": 0.1},
                     {"selected": int(frame["selected"].sum()), "short_queries": 0},
                     frame["query_id"].nunique(), [])
    return SyntheticRun(dataset_id, run_id, frame)


def synthetic_workspace(store: Store, root: Path, k: int = 2) -> SyntheticRun:
    """Ingest the tiny corpus, cache planted topic vectors for it, and store one top-k run."""
    ingest_tiny(store, write_beir(root))
    dataset_id = store.get_dataset().dataset_id
    rng = np.random.default_rng(0)
    vectors = {key: _vector(key, rng) for key in TOPIC_OF}
    store.register_model(MODEL_FP, "synthetic", DIM)
    for table, id_column in (("documents", "doc_id"), ("queries", "query_id")):
        frame = store.dataset_frame(dataset_id, table)
        store.put_vectors(MODEL_FP, "", frame["text_hash"].tolist(),
                          np.stack([vectors[i] for i in frame[id_column]]))
    return add_run(store, dataset_id, k)
