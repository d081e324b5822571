"""Synthetic workspaces for the reliability tests: any size of BEIR folder, and finished runs that
need no model (candidate pools with seeded random scores)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.ingest import ingest
from core.store import Store
from tests.conftest import REPO, write_beir

WORDS = ("river", "engine", "violin", "protein", "harbour", "galaxy", "ledger", "glacier", "saddle",
         "lantern", "orchard", "copper", "tunnel", "meadow", "falcon", "quartz", "pepper", "canyon")


def synthetic_beir(root: Path, n_queries: int, docs_per_query: int, seed: int = 0,
                   extra: dict[str, tuple[str, str]] | None = None) -> Path:
    """A BEIR folder: ``n_queries`` queries, each with one positive among ``docs_per_query``
    documents of seeded word salad (split 'train'); ``extra`` adds documents as given."""
    rng = random.Random(seed)
    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels = []
    for q in range(n_queries):
        for d in range(docs_per_query):
            words = " ".join(rng.choice(WORDS) for _ in range(12))
            corpus[f"d{q}-{d}"] = (f"Note {q}-{d}", f"{words} ({q}/{d})")
        queries[f"q{q}"] = f"question {q}: " + " ".join(rng.choice(WORDS) for _ in range(5))
        qrels.append((f"q{q}", f"d{q}-0", 1))
    corpus.update(extra or {})
    return write_beir(root, corpus=corpus, queries=queries, qrels=qrels)


def add_fake_run(store: Store, dataset_id: int, depth: int = 20, k: int = 5,
                 seed: int = 0, strategy: str = "top_k") -> int:
    """Store a finished run whose pools are ``depth`` random non-positive documents per query."""
    rng = np.random.default_rng(seed)
    positives = store.dataset_frame(dataset_id, "positives")
    docs = store.dataset_frame(dataset_id, "documents")["doc_id"].to_numpy()
    pos_of = positives.groupby("query_id")["doc_id"].agg(set)
    parts = []
    for query_id, pos in pos_of.items():
        pool = [d for d in rng.choice(docs, size=min(len(docs), depth + len(pos)), replace=False)
                if d not in pos][:depth]
        scores = np.sort(rng.uniform(0.2, 0.9, size=len(pool)).astype(np.float32))[::-1]
        parts.append(pd.DataFrame({
            "query_id": query_id, "doc_id": pool, "rank": np.arange(1, len(pool) + 1),
            "score": scores, "pos_score": np.float32(0.95), "lexical_score": np.nan,
            "source": "search", "eligible": True, "selected": np.arange(len(pool)) < k,
        }))
    frame = pd.concat(parts, ignore_index=True)
    run_id = store.create_run(dataset_id, strategy, {}, "synthetic", "fp-fake", "", "", seed, k,
                              depth)
    store.finish_run(run_id, frame, {"total": 0.1}, {"selected": int(frame["selected"].sum())},
                     len(pos_of), [])
    return run_id


def build_workspace(path: Path, root: Path, n_queries: int, docs_per_query: int,
                    depth: int = 20) -> tuple[int, int]:
    """Ingest a synthetic BEIR folder into ``path`` and add a fake run; returns (dataset, run)."""
    store = Store(path)
    dataset = ingest(store, synthetic_beir(root, n_queries, docs_per_query), format="beir",
                     split="train").dataset
    return dataset.dataset_id, add_fake_run(store, dataset.dataset_id, depth=depth)


class HeldWorkspace:
    """Another process holding a workspace open (as a running app does) until ``release()``."""

    def __init__(self, workspace: Path) -> None:
        code = ("import sys; from core.store import Store; s = Store(sys.argv[1]); "
                "print('ready', flush=True); sys.stdin.read(); s.close()")
        self.process = subprocess.Popen([sys.executable, "-c", code, str(workspace)], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
