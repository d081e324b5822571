"""The dataset as a mining run sees it: queries with a positive, documents, what each query
excludes (its positives and exact duplicates of them), and the annotators' latest decisions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.store import Store


@dataclass(frozen=True)
class MiningCorpus:
    """A dataset as mining sees it: queries with at least one positive (rows in order), all
    documents, and per query the document indices to exclude."""

    query_ids: list[str]
    query_texts: list[str]
    doc_ids: list[str]
    doc_texts: list[str]
    excluded: list[np.ndarray]      # per query: positives and exact duplicates of a positive
    positives: list[np.ndarray]     # per query: labeled positives
    duplicate_count: int
    given: pd.DataFrame
    query_hashes: list[str]
    doc_hashes: list[str]


def load_corpus(store: Store, dataset_id: int) -> MiningCorpus:
    """The dataset's queries that have a positive, its documents, positives and given negatives.

    Raises:
        WorkbenchError: the dataset has no documents, or no query with a positive.
    """
    queries = store.dataset_frame(dataset_id, "queries")
    documents = store.dataset_frame(dataset_id, "documents")
    positives = store.dataset_frame(dataset_id, "positives")
    if documents.empty:
        raise WorkbenchError("the dataset has no documents to mine from")
    queries = queries[queries["query_id"].isin(positives["query_id"])].reset_index(drop=True)
    if queries.empty:
        raise WorkbenchError("the dataset has no query with a positive; nothing to mine")
    pos_lists, excluded, duplicates = _positive_sets(queries, documents, positives)
    return MiningCorpus(
        queries["query_id"].tolist(), queries["text"].tolist(), documents["doc_id"].tolist(),
        documents["text"].tolist(), excluded, pos_lists, duplicates,
        store.dataset_frame(dataset_id, "given_negatives"), queries["text_hash"].tolist(),
        documents["text_hash"].tolist(),
    )


def _positive_sets(queries: pd.DataFrame, documents: pd.DataFrame,
                   positives: pd.DataFrame) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Per query row: its positives' doc indices, those plus exact duplicates of a positive
    (same text hash), and how many duplicates that adds over all queries (vectorised)."""
    q_row = pd.Index(queries["query_id"]).get_indexer(positives["query_id"])
    d_idx = pd.Index(documents["doc_id"]).get_indexer(positives["doc_id"])
    pairs = pd.DataFrame({"q": q_row, "d": d_idx})
    pairs = pairs[pairs["q"] >= 0]
    hashes = documents["text_hash"].to_numpy()
    repeated = documents["text_hash"].duplicated(keep=False).to_numpy()
    dup = pd.DataFrame({"h": hashes[repeated], "d2": np.flatnonzero(repeated)})
    same = pairs.assign(h=hashes[pairs["d"].to_numpy()]).merge(dup, on="h")
    wide = pd.concat([pairs, same[["q", "d2"]].rename(columns={"d2": "d"})])
    wide = wide.drop_duplicates().sort_values(["q", "d"], kind="stable")
    pairs = pairs.sort_values("q", kind="stable")
    n = len(queries)
    split = np.searchsorted(pairs["q"].to_numpy(), np.arange(1, n))
    pos_lists = np.split(pairs["d"].to_numpy(np.int64), split)
    split = np.searchsorted(wide["q"].to_numpy(), np.arange(1, n))
    excluded = np.split(wide["d"].to_numpy(np.int64), split)
    duplicates = len(wide) - len(pairs.drop_duplicates())
    return pos_lists, excluded, int(duplicates)


def decided_pairs(store: Store, corpus: MiningCorpus) -> dict[tuple[int, int], str]:
    """Latest decisions on this corpus's pairs, keyed by (query row, doc index)."""
    latest = store.latest_decisions()
    if not latest:
        return {}
    q_rows: dict[str, list[int]] = {}
    for i, h in enumerate(corpus.query_hashes):
        q_rows.setdefault(h, []).append(i)
    d_rows: dict[str, list[int]] = {}
    for i, h in enumerate(corpus.doc_hashes):
        d_rows.setdefault(h, []).append(i)
    out: dict[tuple[int, int], str] = {}
    for d in latest:
        for q in q_rows.get(d.query_hash, ()):
            for doc in d_rows.get(d.doc_hash, ()):
                out[(q, doc)] = d.label
    return out
