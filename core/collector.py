"""Collect the validated rows of one dataset, merge identical duplicates, build the store's frames.

Ids are either given by the input (BEIR, our own FlagEmbedding export) or made from the content:
``"q-" + text_hash(text)[:12]`` for queries and ``"d-" + text_hash(text)[:12]`` for documents, so
the same text always gets the same id and repeated texts merge into one row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from core.errors import InputError
from core.store import DatasetContent
from core.text import text_hash


@dataclass(frozen=True)
class IngestCounts:
    """What an ingest kept, and what each rule removed or merged.

    Attributes:
        queries, documents, positives, given_negatives: rows in the resulting dataset.
        duplicates_merged: repeated identical records merged into one (a query or document text or
            id seen again with the same content, a repeated query-document pair).
        queries_without_positive: queries dropped because the chosen split gives them no positive.
        qrels_below_grade_1: qrels lines ignored because their score is below 1.
        negatives_that_are_positives: given negatives dropped because the same document is a
            positive of the same query.
        empty_negative_cells: empty or null negative cells skipped (pairs files).
        empty_documents_dropped: BEIR corpus documents with an empty title and text, dropped.
        qrels_to_empty_documents: qrels lines ignored because they name such a document.
    """

    queries: int
    documents: int
    positives: int
    given_negatives: int
    duplicates_merged: int = 0
    queries_without_positive: int = 0
    qrels_below_grade_1: int = 0
    negatives_that_are_positives: int = 0
    empty_negative_cells: int = 0
    empty_documents_dropped: int = 0
    qrels_to_empty_documents: int = 0


def content_query_id(text: str) -> str:
    """Return the content-derived id of a query text."""
    return "q-" + text_hash(text)[:12]


def content_doc_id(text: str) -> str:
    """Return the content-derived id of a document text."""
    return "d-" + text_hash(text)[:12]


class DatasetCollector:
    """Accumulates queries, documents, positives and given negatives while a reader validates."""

    def __init__(self) -> None:
        self.queries: dict[str, str] = {}
        self.documents: dict[str, tuple[str | None, str]] = {}
        self.positives: dict[tuple[str, str], tuple[int, str]] = {}
        self.negatives: dict[tuple[str, str], str] = {}
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []
        self._seen_at: dict[tuple[str, str], str] = {}
        self._pair_at: dict[tuple[str, str], str] = {}

    def add_query(self, display: str, where: str, text: str, query_id: str | None = None) -> str:
        """Add a query (id from content when None) and return its id.

        Raises:
            InputError: the id was already used for a different text.
        """
        query_id = query_id or content_query_id(text)
        known = self.queries.get(query_id)
        if known is None:
            self.queries[query_id] = text
            self._seen_at["q", query_id] = where
        elif known == text:
            self.counts["duplicates_merged"] += 1
        else:
            raise InputError(
                display, where, f"query id {query_id!r} was already used on "
                f"{self._seen_at['q', query_id]} for a different text",
            )
        return query_id

    def add_document(self, display: str, where: str, title: str | None, text: str,
                     doc_id: str | None = None) -> str:
        """Add a document (``text`` already joined with its title) and return its id.

        Raises:
            InputError: the id was already used for a different title or text.
        """
        doc_id = doc_id or content_doc_id(text)
        known = self.documents.get(doc_id)
        if known is None:
            self.documents[doc_id] = (title, text)
            self._seen_at["d", doc_id] = where
        elif known == (title, text):
            self.counts["duplicates_merged"] += 1
        else:
            raise InputError(
                display, where, f"document id {doc_id!r} was already used on "
                f"{self._seen_at['d', doc_id]} for a different text",
            )
        return doc_id

    def add_positive(self, display: str, where: str, query_id: str, doc_id: str, grade: int,
                     source: str) -> None:
        """Record a positive pair; a repeat with the same grade is merged.

        Raises:
            InputError: the pair was already recorded with a different grade.
        """
        key = (query_id, doc_id)
        known = self.positives.get(key)
        if known is None:
            self.positives[key] = (grade, source)
            self._pair_at[key] = where
        elif known[0] == grade:
            self.counts["duplicates_merged"] += 1
        else:
            raise InputError(
                display, where, f"pair ({query_id!r}, {doc_id!r}) was already given grade "
                f"{known[0]} on {self._pair_at[key]}",
            )

    def add_negative(self, query_id: str, doc_id: str, source: str) -> None:
        """Record a given negative; a repeat is merged."""
        if (query_id, doc_id) in self.negatives:
            self.counts["duplicates_merged"] += 1
        else:
            self.negatives[query_id, doc_id] = source

    def finish(self, display: str, name: str, format: str, source: str,
               split: str | None) -> tuple[DatasetContent, IngestCounts]:
        """Build the frames, dropping queries without a positive and negatives that are positives.

        Raises:
            InputError: no positive pair at all.
        """
        if not self.positives:
            raise InputError(display, None, "gives no positive pair, so the dataset would be empty")
        with_positive = {query_id for query_id, _ in self.positives}
        kept_queries = [(q, t) for q, t in self.queries.items() if q in with_positive]
        negatives = [(q, d, s) for (q, d), s in self.negatives.items()
                     if (q, d) not in self.positives]
        content = DatasetContent(
            name=name, format=format, source=source, split=split,
            queries=_frame(
                query_id=[q for q, _ in kept_queries], text=[t for _, t in kept_queries],
                text_hash=[text_hash(t) for _, t in kept_queries],
            ),
            documents=_frame(
                doc_id=list(self.documents), title=[t for t, _ in self.documents.values()],
                text=[x for _, x in self.documents.values()],
                text_hash=[text_hash(x) for _, x in self.documents.values()],
            ),
            positives=_frame(
                query_id=[q for q, _ in self.positives], doc_id=[d for _, d in self.positives],
                grade=[g for g, _ in self.positives.values()],
                source=[s for _, s in self.positives.values()],
            ),
            given_negatives=_frame(
                query_id=[q for q, _, _ in negatives], doc_id=[d for _, d, _ in negatives],
                source=[s for _, _, s in negatives],
            ),
        )
        counts = IngestCounts(
            queries=len(kept_queries), documents=len(self.documents),
            positives=len(self.positives), given_negatives=len(negatives),
            duplicates_merged=self.counts["duplicates_merged"],
            queries_without_positive=len(self.queries) - len(kept_queries),
            qrels_below_grade_1=self.counts["qrels_below_grade_1"],
            negatives_that_are_positives=len(self.negatives) - len(negatives),
            empty_negative_cells=self.counts["empty_negative_cells"],
            empty_documents_dropped=self.counts["empty_documents_dropped"],
            qrels_to_empty_documents=self.counts["qrels_to_empty_documents"],
        )
        return content, counts


def _frame(**columns: list) -> pd.DataFrame:
    """A frame whose columns are pandas string dtype, except ``grade`` (int64), also when empty."""
    return pd.DataFrame({
        name: pd.Series(values, dtype="int64" if name == "grade" else "string")
        for name, values in columns.items()
    })
