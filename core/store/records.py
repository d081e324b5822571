"""What the store hands out and takes in: dataset, run and decision records, bulk row frames,
and the small helpers every part of the store uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa

LABELS = ("hard_negative", "false_negative", "unsure")
INTERRUPTED = "interrupted: the process running it stopped before the run finished"


def _column_names(frame: pd.DataFrame | pa.Table) -> list[str]:
    return list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)


def _select(frame: pd.DataFrame | pa.Table, columns: list[str]) -> pd.DataFrame | pa.Table:
    """Columns of a DataFrame or an Arrow table (bulk rows are registered with DuckDB as is)."""
    return frame.select(columns) if isinstance(frame, pa.Table) else frame[columns]


def utc_now() -> datetime:
    """Now in UTC, naive (how the workspace stores every timestamp)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier (the one way identifiers built at run time reach SQL)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class DatasetInfo:
    """One ingested dataset version; ``active`` is False once a re-ingest replaced it."""

    dataset_id: int
    name: str
    format: str
    source: str
    split: str | None
    active: bool
    created_at: datetime
    n_queries: int
    n_documents: int
    n_positives: int


@dataclass(frozen=True)
class RunInfo:
    """A mining run: what was asked for, and (once done) timings and per-filter counts."""

    run_id: int
    dataset_id: int
    strategy: str
    params: dict[str, Any]
    model: str
    model_fp: str
    query_prompt: str
    doc_prompt: str
    seed: int
    num_negatives: int
    pool_depth: int
    status: str
    created_at: datetime
    finished_at: datetime | None
    timings: dict[str, float]
    filter_counts: dict[str, int]
    n_queries: int | None
    short_queries: list[str]
    error: str | None
    search: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """One annotator's label for a (query, document) pair, keyed by the texts' content hashes."""

    decision_id: int
    query_hash: str
    doc_hash: str
    query_id: str | None
    doc_id: str | None
    dataset: str | None
    label: str
    annotator: str
    created_at: datetime
    note: str | None


@dataclass(frozen=True)
class PairPoolFacts:
    """What one (query, document) pair's content hashes cover in a run's pool.

    Attributes:
        query_ids: the pool's queries with an id pair of these two texts (sorted).
        pairs_per_query: distinct id pairs of the pool with these two texts, per query.
        selected: whether the run selected any of them.
    """

    query_ids: tuple[str, ...]
    pairs_per_query: tuple[int, ...]
    selected: bool

    @property
    def pool_pairs(self) -> int:
        """Distinct id pairs of the pool with these two texts."""
        return sum(self.pairs_per_query)


@dataclass(frozen=True)
class DatasetContent:
    """Validated rows of one dataset, ready to be written in a single transaction.

    Frames: queries (query_id, text, text_hash), documents (doc_id, title, text, text_hash),
    positives (query_id, doc_id, grade, source), given_negatives (query_id, doc_id, source).
    """

    name: str
    format: str
    source: str
    split: str | None
    queries: pd.DataFrame
    documents: pd.DataFrame
    positives: pd.DataFrame
    given_negatives: pd.DataFrame


_CANDIDATE_COLUMNS = (
    "query_id", "doc_id", "rank", "score", "pos_score", "lexical_score", "source", "eligible",
    "selected",
)


@dataclass(frozen=True)
class AuditInfo:
    """A seeded sample of a run's exported negatives (``core.audit``): ``size`` pairs drawn from
    the ``exported`` negatives of ``exported_queries`` queries an export of ``num_negatives`` per
    query took when it was drawn (leaving out queries with more than ``max_false_negatives``
    pairs marked false negative, when set)."""

    audit_id: int
    run_id: int
    num_negatives: int
    seed: int
    size: int
    exported: int
    exported_queries: int
    created_by: str | None
    created_at: datetime
    max_false_negatives: int | None = None
