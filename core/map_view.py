"""What the Map page draws: projected points with roles, clusters, suspicion and decisions.

Roles relate the points to one run: a document is a ``positive`` (labeled for some query), a
``selected negative`` (the run chose it), a ``candidate`` (in the run's stored pool) or ``other``;
queries have the role ``query``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from core.clusters import Clusters
from core.projection import Projection
from core.review import decide
from core.store import Store

ROLES = ("query", "positive", "selected negative", "candidate", "other")


def map_points(
    store: Store, run_id: int, projection: Projection, clusters: Clusters,
) -> pd.DataFrame:
    """The projection's points joined with the run: role, cluster, suspicion, decision.

    Per document the pool is summed up in SQL (``Store.document_stats``), so a pool of millions
    of pairs is never read whole.

    Returns:
        id, kind, x, y, role, cluster, cluster_name, suspicion (max over the document's pairs,
        NaN when unscored), decision (the most cautious over its pairs, false negative first;
        "undecided" when none).
    """
    run = store.get_run(run_id)
    stats = store.document_stats(run.run_id, run.dataset_id)
    positives = pd.Index(sorted(set(store.dataset_frame(run.dataset_id, "positives")["doc_id"])))
    frame = projection.points.merge(clusters.assignments[["id", "kind", "cluster", "cluster_name"]],
                                    on=["id", "kind"], how="left")
    # Positions instead of isin/map over string Series: 100,000 ids cost a second each there.
    docs = frame["kind"].eq("document").to_numpy()
    at = pd.Index(stats["doc_id"]).get_indexer(frame["id"])
    in_pool = docs & (at >= 0)
    row = np.where(at >= 0, at, 0)
    selected = in_pool & stats["selected"].to_numpy(dtype=bool)[row] if len(stats) else in_pool
    positive = docs & (positives.get_indexer(frame["id"]) >= 0)
    frame["role"] = np.select([~docs, positive, selected, in_pool],
                              ["query", "positive", "selected negative", "candidate"], "other")
    if len(stats):
        suspicion = stats["suspicion"].to_numpy(dtype=float)[row]
        decision = stats["decision"].to_numpy(dtype=object)[row]
    else:
        suspicion, decision = np.full(len(frame), np.nan), np.full(len(frame), None)
    frame["suspicion"] = np.where(in_pool, suspicion, np.nan)
    frame["decision"] = pd.Series(np.where(in_pool, decision, None), index=frame.index).fillna(
        "undecided")
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
    labeled = positives.loc[positives["query_id"].eq(query_id), "doc_id"].tolist()
    return QueryFocus(query_id, labeled, store.query_selected(run.run_id, query_id))


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
    run = store.get_run(run_id)
    return store.selection_pairs(run.run_id, run.dataset_id,
                                 [i for k, i in picked if k == "document"],
                                 [i for k, i in picked if k == "query"], query_id)


def label_pairs(store: Store, run_id: int, pairs: pd.DataFrame, label: str, annotator: str,
                note: str | None = None) -> int:
    """Record ``label`` for every (query_id, doc_id) in ``pairs``; return how many were recorded.

    Raises:
        WorkbenchError: no annotator, unknown label, a pair not in the run's dataset.
    """
    for query_id, doc_id in zip(pairs["query_id"], pairs["doc_id"]):
        decide(store, run_id, query_id, doc_id, label, annotator, note)
    return len(pairs)
