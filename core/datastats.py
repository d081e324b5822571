"""Dataset statistics for the Data page: sizes, positives per query, text lengths, duplicates."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.store import Store


@dataclass(frozen=True)
class DatasetStats:
    """What one dataset holds.

    Attributes:
        counts: one row per measure (queries, documents, positives, given negatives, duplicate
            document texts, duplicate query texts, queries without a positive).
        positives_per_query: query_id, positives (one row per query).
        lengths: kind ("query" or "document"), words, characters (one row per text).
        duplicates: text_hash, kind, copies, ids (texts stored more than once under different ids).
    """

    counts: pd.DataFrame
    positives_per_query: pd.DataFrame
    lengths: pd.DataFrame
    duplicates: pd.DataFrame


def _duplicates(frame: pd.DataFrame, id_column: str, kind: str) -> pd.DataFrame:
    groups = frame.groupby("text_hash")[id_column].agg(list)
    repeated = groups[groups.map(len) > 1]
    return pd.DataFrame({
        "text_hash": repeated.index, "kind": kind, "copies": repeated.map(len).to_numpy(),
        "ids": repeated.map(lambda ids: ", ".join(sorted(ids)[:10])).to_numpy(),
    })


def _lengths(texts: pd.Series, kind: str) -> pd.DataFrame:
    return pd.DataFrame({
        "kind": kind,
        "words": texts.str.split().str.len().fillna(0).astype(int),
        "characters": texts.str.len().astype(int),
    })


def dataset_stats(store: Store, dataset_id: int) -> DatasetStats:
    """Compute the statistics of one stored dataset.

    Raises:
        WorkbenchError: no such dataset.
    """
    info = store.get_dataset(dataset_id=dataset_id)
    queries = store.dataset_frame(dataset_id, "queries")
    documents = store.dataset_frame(dataset_id, "documents")
    positives = store.dataset_frame(dataset_id, "positives")
    given = store.dataset_frame(dataset_id, "given_negatives")
    per_query = positives.groupby("query_id").size()
    per_query = per_query.reindex(queries["query_id"], fill_value=0)
    per_query_frame = per_query.rename("positives").rename_axis("query_id").reset_index()
    duplicates = pd.concat([_duplicates(documents, "doc_id", "document"),
                            _duplicates(queries, "query_id", "query")], ignore_index=True)
    counts = pd.DataFrame({
        "measure": ["queries", "documents", "positives", "given negatives",
                    "duplicate document texts", "duplicate query texts",
                    "queries without a positive"],
        "value": [info.n_queries, info.n_documents, info.n_positives, len(given),
                  int((duplicates["kind"] == "document").sum()),
                  int((duplicates["kind"] == "query").sum()), int((per_query == 0).sum())],
    })
    lengths = pd.concat([_lengths(queries["text"], "query"),
                         _lengths(documents["text"], "document")], ignore_index=True)
    return DatasetStats(counts, per_query_frame, lengths, duplicates)


def dataset_preview(store: Store, dataset_id: int, rows: int = 20) -> dict[str, pd.DataFrame]:
    """The first rows of a stored dataset's queries, documents and positives (for a quick look)."""
    return {table: store.dataset_frame(dataset_id, table).drop(columns="text_hash",
                                                                errors="ignore").head(rows)
            for table in ("queries", "documents", "positives")}
