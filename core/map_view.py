"""What the Map page draws: projected points with roles, clusters, suspicion and decisions.

Roles relate the points to one run: a document is a ``positive`` (labeled for some query), a
``selected negative`` (the run chose it), a ``candidate`` (in the run's stored pool) or ``other``;
queries have the role ``query``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from core.clusters import Clusters
from core.projection import Projection
from core.review import decide
from core.store import Store

ROLES = ("query", "positive", "selected negative", "candidate", "other")
_LABEL_ORDER = {"false_negative": 0, "unsure": 1, "hard_negative": 2}


def _document_decisions(pool: pd.DataFrame) -> pd.Series:
    """Per document, the most cautious latest decision on any of its pairs (false negative wins)."""
    decided = pool.dropna(subset=["decision"])
    if decided.empty:
        return pd.Series(dtype=object)
    ranked = decided.assign(order=decided["decision"].map(_LABEL_ORDER)).sort_values("order")
    return ranked.groupby("doc_id")["decision"].first()


def map_points(
    store: Store, run_id: int, projection: Projection, clusters: Clusters,
) -> pd.DataFrame:
    """The projection's points joined with the run: role, cluster, suspicion, decision.

    Returns:
        id, kind, x, y, role, cluster, cluster_name, suspicion (max over the document's pairs,
        NaN when unscored), decision ("undecided" when none).
    """
    run = store.get_run(run_id)
    pool = store.run_candidates(run.run_id)
    positives = set(store.dataset_frame(run.dataset_id, "positives")["doc_id"])
    selected = set(pool.loc[pool["selected"], "doc_id"])
    in_pool = set(pool["doc_id"])
    frame = projection.points.merge(clusters.assignments[["id", "kind", "cluster", "cluster_name"]],
                                    on=["id", "kind"], how="left")
    docs = frame["kind"].eq("document")
    role = pd.Series("other", index=frame.index)
    role[docs & frame["id"].isin(in_pool)] = "candidate"
    role[docs & frame["id"].isin(selected)] = "selected negative"
    role[docs & frame["id"].isin(positives)] = "positive"
    role[~docs] = "query"
    frame["role"] = role
    suspicion = pool.assign(suspicion=pool["suspicion"].astype(float)).groupby("doc_id")[
        "suspicion"].max()
    frame["suspicion"] = frame["id"].map(suspicion).where(docs).astype(float)
    frame["decision"] = frame["id"].map(_document_decisions(pool)).where(docs).fillna("undecided")
    return frame


@dataclass(frozen=True)
class QueryFocus:
    """One query's neighbourhood on the map.

    Attributes:
        query_id: the query.
        positives: its labeled positive document ids.
        negatives: doc_id, rank, score, selected: the run's selected negatives for it.
    """

    query_id: str
    positives: list[str]
    negatives: pd.DataFrame


def query_focus(store: Store, run_id: int, query_id: str) -> QueryFocus:
    """The positives and selected negatives of one query in a run."""
    run = store.get_run(run_id)
    positives = store.dataset_frame(run.dataset_id, "positives")
    pool = store.run_candidates(run.run_id)
    mine = pool[pool["query_id"].eq(query_id) & pool["selected"]]
    labeled = positives.loc[positives["query_id"].eq(query_id), "doc_id"].tolist()
    return QueryFocus(query_id, labeled,
                      mine[["doc_id", "rank", "score", "selected"]].reset_index(drop=True))


def selection_table(store: Store, run_id: int, points: pd.DataFrame,
                    picked: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """The selected points with their texts, for the table under the map.

    Args:
        points: the frame from ``map_points``.
        picked: (kind, id) of the selected points.
    """
    run = store.get_run(run_id)
    wanted = pd.DataFrame(list(dict.fromkeys(picked)), columns=["kind", "id"])
    table = wanted.merge(points[["id", "kind", "role", "cluster_name", "decision"]],
                         on=["id", "kind"], how="left")
    docs = store.lookup_texts(run.dataset_id, "documents", table.loc[table["kind"].eq("document"),
                                                                     "id"].tolist())
    queries = store.lookup_texts(run.dataset_id, "queries", table.loc[table["kind"].eq("query"),
                                                                      "id"].tolist())
    table["text"] = [docs.get(i) if k == "document" else queries.get(i)
                     for k, i in zip(table["kind"], table["id"])]
    return table


def selection_pairs(store: Store, run_id: int, picked: Iterable[tuple[str, str]],
                    query_id: str | None = None) -> pd.DataFrame:
    """The run's candidate pairs a map selection stands for.

    A selected document stands for its pool pair with ``query_id`` when a query is highlighted,
    else for the pairs where the run selected it as a negative (what an export would use); a
    selected query stands for its selected negatives.

    Returns:
        query_id, doc_id, score, selected, decision.
    """
    picked = list(picked)
    docs = {i for k, i in picked if k == "document"}
    queries = {i for k, i in picked if k == "query"}
    pool = store.run_candidates(store.get_run(run_id).run_id)
    doc_rows = pool["doc_id"].isin(docs)
    doc_rows &= pool["query_id"].eq(query_id) if query_id is not None else pool["selected"]
    rows = doc_rows | (pool["query_id"].isin(queries) & pool["selected"])
    return pool.loc[rows, ["query_id", "doc_id", "score", "selected", "decision"]].drop_duplicates(
        ["query_id", "doc_id"]).reset_index(drop=True)


def label_pairs(store: Store, run_id: int, pairs: pd.DataFrame, label: str, annotator: str,
                note: str | None = None) -> int:
    """Record ``label`` for every (query_id, doc_id) in ``pairs``; return how many were recorded.

    Raises:
        WorkbenchError: no annotator, unknown label, a pair not in the run's dataset.
    """
    for query_id, doc_id in zip(pairs["query_id"], pairs["doc_id"]):
        decide(store, run_id, query_id, doc_id, label, annotator, note)
    return len(pairs)
