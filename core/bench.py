"""The hidden-positive benchmark (shared/BENCHMARK.md), run end to end through the product's API.

Every phase works in a fresh workspace (decisions from one phase must not leak into another);
vectors come from a persistent cache workspace so repeated runs do not re-encode.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.evaluation import (
    derive_labeled_split, oracle_hardness, read_relevant, score_export, suspicion_auc,
)
from core.export import planned_negatives
from core.false_negatives.learning import RELEARN_EVERY, learn_from_decisions, relearn_if_due
from core.ingest import ingest
from core.mine import MineRequest, mine
from core.mining import strategy_names
from core.review import review_queue
from core.store import RunInfo, Store

# Settings equivalent to the sentence-transformers baselines of BENCHMARK.md.
REFERENCE_SETTINGS: tuple[tuple[str, str, dict], ...] = (
    ("st-top-k", "top_k", {}),
    ("st-TopK-PercPos 0.95", "positive_aware", {"mode": "percent", "threshold": 0.95}),
    ("st-TopK-MarginPos 0.05", "positive_aware", {"mode": "margin", "threshold": 0.05}),
    ("st-FlagEmbedding 10-210", "rank_window", {"lo": 10, "hi": 210}),
)

Report = Callable[[dict], None]


@dataclass(frozen=True)
class BenchConfig:
    """What to run. ``learn_decisions``: simulated decisions the learned suspicion is fit on;
    ``relearn_every``: the review curve's second series re-learns every this many decisions."""

    beir: Path
    k: int = 5
    budgets: tuple[int, ...] = (0, 1, 2, 5, 10)
    learn_decisions: int = 200
    relearn_every: int = RELEARN_EVERY  # 0: the review curve in cold queue order only
    full_split: str = "test"
    cache: Path = Path("data/workspaces/bench-cache.duckdb")
    strategies: tuple[str, ...] = field(default_factory=tuple)
    teacher: str | None = None
    teacher_kind: str = "cross-encoder"
    model: str | None = None  # None: the bundled all-MiniLM-L6-v2, as BENCHMARK.md measures

    def request(self, strategy: str, params: dict | None = None) -> MineRequest:
        """The mining request every phase makes: k negatives, with the configured model and
        teacher."""
        return MineRequest(strategy=strategy, num_negatives=self.k, params=params or {},
                           model=self.model, teacher=self.teacher,
                           teacher_kind=self.teacher_kind)


class _Workspaces:
    """Fresh workspaces with the labeled split ingested and vectors seeded from the cache."""

    def __init__(self, config: BenchConfig, tmp: Path) -> None:
        self.config, self.tmp, self.count = config, tmp, 0
        self.source = self._labeled_source(config.beir, tmp)
        self.cache = Store(config.cache)

    @staticmethod
    def _labeled_source(beir: Path, tmp: Path) -> Path:
        if (beir / "qrels" / "labeled.tsv").is_file():
            return beir
        full = pd.read_csv(beir / "qrels" / "test.tsv", sep="\t", dtype=str)
        full.columns = ["query_id", "doc_id", "grade"]
        full["grade"] = full["grade"].astype(int)
        root = tmp / "labeled-source"
        (root / "qrels").mkdir(parents=True)
        for name in ("corpus.jsonl", "queries.jsonl"):
            os.symlink((beir / name).resolve(), root / name)
        derive_labeled_split(full).to_csv(root / "qrels" / "labeled.tsv", sep="\t", index=False)
        return root

    def fresh(self) -> Store:
        self.count += 1
        store = Store(self.tmp / f"phase-{self.count}.duckdb")
        ingest(store, self.source, format="beir", split="labeled", name=self.config.beir.name)
        self._copy_cached(self.cache, store, self._hashes(store))
        return store

    def mined(self, strategy: str = "top_k") -> tuple[Store, RunInfo]:
        """A fresh workspace mined once with ``strategy`` (the configured k and teacher), its
        vectors and a cross-encoder teacher's pair scores saved to the cache for the next
        phase."""
        store = self.fresh()
        run = mine(store, self.config.request(strategy))
        self.save_caches(store)
        return store, run

    def _hashes(self, store: Store) -> list[str]:
        ds = store.get_dataset()
        return (store.dataset_frame(ds.dataset_id, "queries")["text_hash"].tolist()
                + store.dataset_frame(ds.dataset_id, "documents")["text_hash"].tolist())

    @staticmethod
    def _copy_cached(source: Store, target: Store, hashes: list[str]) -> None:
        """Copy every model's vectors of these texts (the mining model's and a bi-encoder
        teacher's) and a cross-encoder teacher's scores of pairs among them."""
        for fp, name, dim in source.list_models():
            found = source.cached_vectors(fp, "", hashes)
            if found:
                target.register_model(fp, name, dim)
                keys = list(found)
                target.put_vectors(fp, "", keys, np.stack([found[h] for h in keys]))
        for fp, scores in source.pair_scores_among(hashes).groupby("model_fp"):
            target.put_pair_scores(str(fp), scores)

    def save_caches(self, store: Store) -> None:
        self._copy_cached(store, self.cache, self._hashes(store))


def _queries(store: Store) -> list[str]:
    ds = store.get_dataset()
    return sorted(store.dataset_frame(ds.dataset_id, "positives")["query_id"].unique())


def _export_score(store: Store, run_id: int, relevant: set, k: int) -> dict:
    negatives = planned_negatives(store, run_id)
    pool = store.run_candidates(run_id).drop_duplicates(["query_id", "doc_id"])
    negatives = negatives.merge(pool[["query_id", "doc_id", "score"]], on=["query_id", "doc_id"])
    return asdict(score_export(negatives, relevant, _queries(store), k))


def _simulate_reviews(store: Store, run_id: int, relevant: set, target: int, done: int,
                      relearn_every: int = 0) -> int:
    """Decide queue items (answering from the full qrels) until ``target`` decisions in total;
    with ``relearn_every``, re-learn the suspicion as the Review page does (``relearn_if_due``,
    checked after each batch of about a twentieth of the queries)."""
    batch = max(1, len(_queries(store)) // 20)
    if relearn_every:
        batch = min(batch, relearn_every)
    while done < target:
        queue = review_queue(store, run_id, limit=min(batch, target - done))
        if queue.empty:
            break
        for row in queue.itertuples():
            label = "false_negative" if (row.query_id, row.doc_id) in relevant else "hard_negative"
            store.record_decision(row.query_hash, row.doc_hash, label, "simulated-annotator",
                                  row.query_id, row.doc_id)
            done += 1
        if relearn_every:
            relearn_if_due(store, run_id, relearn_every)
    return done


def _strategy_rows(config: BenchConfig, ws: _Workspaces, relevant: set) -> Iterator[dict]:
    store = ws.fresh()
    settings = [(name, name, {}) for name in (config.strategies or strategy_names())]
    for label, strategy, params in [*settings, *REFERENCE_SETTINGS]:
        run = mine(store, config.request(strategy, params))
        ws.save_caches(store)
        yield {"kind": "strategy", "method": label, "strategy": strategy, "params": run.params,
               **_export_score(store, run.run_id, relevant, config.k),
               "seconds": round(run.timings.get("total", math.nan), 2)}
        if strategy == "top_k" and label == "top_k":
            pool = store.run_candidates(run.run_id)
            yield {"kind": "suspicion", "method": "cold", "decisions": 0,
                   "roc_auc": suspicion_auc(pool, relevant),
                   "cosine_roc_auc": suspicion_auc(pool, relevant, column="score"),
                   "oracle_hardness": oracle_hardness(pool, relevant, config.k)}


def _learning_row(config: BenchConfig, ws: _Workspaces, relevant: set) -> dict:
    store, run = ws.mined("top_k")
    _simulate_reviews(store, run.run_id, relevant, config.learn_decisions, 0)
    report = learn_from_decisions(store, run.run_id)
    pool = store.run_candidates(run.run_id)
    held_out = pool[pool["decision"].isna()]
    cold, cold_run = ws.mined("top_k")
    cold_pool = cold.run_candidates(cold_run.run_id).merge(
        held_out[["query_id", "doc_id"]], on=["query_id", "doc_id"])
    return {"kind": "suspicion", "method": "learned", "decisions": config.learn_decisions,
            "false_negatives": report.false_negatives, "hard_negatives": report.hard_negatives,
            "cv_roc_auc": report.cv_auc, "corrections": report.corrections,
            "roc_auc": suspicion_auc(held_out, relevant),
            "cold_roc_auc_same_candidates": suspicion_auc(cold_pool, relevant),
            "learned_weights": report.weights}


def _review_rows(config: BenchConfig, ws: _Workspaces, relevant: set) -> Iterator[dict]:
    """The review curve in the cold suspicion's queue order, then (``relearn_every``) as the
    Review page walks it, re-learning from the decisions every ``relearn_every``."""
    series = [("curated", 0)]
    if config.relearn_every:
        series.append((f"curated, re-learning /{config.relearn_every}", config.relearn_every))
    for method, every in series:
        store = ws.fresh()
        run = mine(store, config.request("curated"))
        n_queries, done = len(_queries(store)), 0
        for budget in sorted(config.budgets):
            done = _simulate_reviews(store, run.run_id, relevant, budget * n_queries, done, every)
            yield {"kind": "review", "method": method, "reviews_per_query": budget,
                   "decisions": done, **_export_score(store, run.run_id, relevant, config.k)}


def run_hidden_positive(config: BenchConfig, report: Report) -> list[dict]:
    """Run the benchmark, calling ``report`` with each result row as it is measured.

    Raises:
        WorkbenchError: the folder lacks qrels/<full_split>.tsv.
    """
    full = config.beir / "qrels" / f"{config.full_split}.tsv"
    if not full.is_file():
        raise WorkbenchError(f"{config.beir} has no qrels/{config.full_split}.tsv with the full "
                             "judgements the benchmark scores against")
    relevant = read_relevant(full)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ws = _Workspaces(config, Path(tmp))
        phases = [_strategy_rows(config, ws, relevant), [_learning_row(config, ws, relevant)]
                  if config.learn_decisions else [], _review_rows(config, ws, relevant)]
        for phase in phases:
            for row in phase:
                row = {"dataset": config.beir.name, "k": config.k, **row}
                rows.append(row)
                report(row)
        for store_path in Path(tmp).glob("phase-*.duckdb"):
            Store(store_path).close()
    return rows


def format_table(rows: list[dict]) -> str:
    """A readable table of the benchmark's rows."""
    lines = []
    strategies = [r for r in rows if r["kind"] in ("strategy", "review")]
    if strategies:
        lines.append(f"{'method':<28}{'R':>4}{'fn_rate':>9}{'fn_q':>7}{'hard':>7}{'filled':>8}")
        for r in strategies:
            budget = r.get("reviews_per_query", "")
            lines.append(f"{r['method']:<28}{budget!s:>4}{r['fn_rate']:>9.3f}"
                         f"{r['fn_queries']:>7.3f}{r['hardness']:>7.3f}{r['filled']:>8.2f}")
    for r in rows:
        if r["kind"] == "suspicion":
            extra = {k: v for k, v in r.items()
                     if k not in ("kind", "dataset", "k", "method", "learned_weights")}
            shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in extra.items())
            lines.append(f"suspicion ({r['method']}): {shown}")
            weights = {n: w for n, w in (r.get("learned_weights") or {}).items() if w >= 0.005}
            if weights:
                lines.append("  learned weights (log-odds per standard deviation): " + ", ".join(
                    f"{n} {w:.2f}" for n, w in weights.items()))
    return "\n".join(lines)


def dumps(row: dict) -> str:
    """One JSON line (NaN written as null)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    return json.dumps(clean, sort_keys=False)


__all__ = ["BenchConfig", "REFERENCE_SETTINGS", "dumps", "format_table", "run_hidden_positive"]
