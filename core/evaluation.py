"""The hidden-positive benchmark's metrics (see shared/BENCHMARK.md) and its labeled split."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InputError


@dataclass(frozen=True)
class ExportScore:
    """How clean and how hard an export is.

    fn_rate: exported negatives that are hidden positives (lower is better); fn_queries: share of
    queries with at least one (lower); hardness: mean query-negative cosine (higher = harder);
    filled: share of queries with k negatives (higher).
    """

    fn_rate: float
    fn_queries: float
    hardness: float
    filled: float
    negatives: int
    queries: int


def read_relevant(path: str | Path) -> set[tuple[str, str]]:
    """(query id, doc id) pairs with grade >= 1 from a qrels TSV (header optional).

    Raises:
        InputError: a line without three tab-separated fields or with a non-integer grade.
    """
    relevant: set[tuple[str, str]] = set()
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if len(parts) != 3:
                raise InputError(str(path), f"line {number}", "expected query-id, corpus-id, score")
            try:
                grade = int(parts[2])
            except ValueError as err:
                if number == 1:
                    continue  # header
                raise InputError(str(path), f"line {number}",
                                 f"field 'score' is not an integer: {parts[2]!r}") from err
            if grade >= 1:
                relevant.add((parts[0], parts[1]))
    return relevant


def derive_labeled_split(qrels: pd.DataFrame) -> pd.DataFrame:
    """BENCHMARK.md's split: per query with >= 2 relevant docs, one labeled positive.

    Queries are visited in sorted (string) order of id with ``random.Random(0)``; the positive is
    drawn uniformly among the query's highest-graded documents sorted by id.

    Args:
        qrels: columns query_id, doc_id, grade.
    """
    rng = random.Random(0)
    relevant = qrels[qrels["grade"] >= 1]
    by_query: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for q, d, g in zip(relevant["query_id"], relevant["doc_id"], relevant["grade"]):
        by_query[str(q)].append((str(d), int(g)))
    rows = []
    for q in sorted(by_query):
        docs = by_query[q]
        if len(docs) < 2:
            continue
        top = max(g for _, g in docs)
        best = sorted(d for d, g in docs if g == top)
        rows.append((q, rng.choice(best), top))
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "grade"])


def score_export(negatives: pd.DataFrame, relevant: set[tuple[str, str]], queries: list[str],
                 k: int) -> ExportScore:
    """Score exported negatives (columns query_id, doc_id, score) against the full judgements."""
    if negatives.empty:
        return ExportScore(0.0, 0.0, float("nan"), 0.0, 0, len(queries))
    hidden = np.array([(q, d) in relevant for q, d in zip(negatives["query_id"],
                                                            negatives["doc_id"])])
    per_query = negatives.assign(hidden=hidden).groupby("query_id")
    counts = per_query.size().reindex(queries, fill_value=0)
    return ExportScore(
        fn_rate=float(hidden.mean()),
        fn_queries=float(per_query["hidden"].any().reindex(queries, fill_value=False).mean()),
        hardness=float(negatives["score"].astype(float).mean()),
        filled=float((counts >= k).mean()),
        negatives=len(negatives),
        queries=len(queries),
    )


def suspicion_auc(pool: pd.DataFrame, relevant: set[tuple[str, str]], column: str = "suspicion",
                  depth: int = 50) -> float:
    """ROC-AUC of ``column`` for hidden positives vs the other candidates ranked <= depth."""
    from sklearn.metrics import roc_auc_score

    top = pool[pool["rank"].notna() & (pool["rank"] <= depth)]
    y = [(q, d) in relevant for q, d in zip(top["query_id"], top["doc_id"])]
    if len(set(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, top[column].astype(float)))


def oracle_hardness(pool: pd.DataFrame, relevant: set[tuple[str, str]], k: int) -> float:
    """Hardness of the k hardest true negatives in each query's pool: the best possible export
    with no false negative, an upper bound for any review policy on this pool."""
    clean = pool[[(q, d) not in relevant for q, d in zip(pool["query_id"], pool["doc_id"])]]
    best = clean.sort_values(["query_id", "score"], ascending=[True, False]).groupby(
        "query_id").head(k)
    return float(best["score"].astype(float).mean())
