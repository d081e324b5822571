"""Review: the queue of candidates to decide, the card for one, and recording decisions."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from core.errors import WorkbenchError
from core.export import planned_negatives
from core.store import Store


def decide(
    store: Store, run_id: int | None, query_id: str, doc_id: str, label: str, annotator: str,
    note: str | None = None,
) -> int:
    """Record a decision on (query, document) of a run's dataset and return its id.

    The decision is stored under both texts' content hashes, so it applies to every run and
    survives re-ingesting the dataset.

    Raises:
        WorkbenchError: unknown run, query or document, bad label, or no annotator.
    """
    run = store.get_run(run_id)
    name = store.dataset_name(run.dataset_id)  # not get_dataset: its row counts cost a scan
    hashes = store.pair_hashes(run.dataset_id, query_id, doc_id)
    if hashes is None:
        raise WorkbenchError(
            f"dataset {name!r} has no query {query_id!r} with document {doc_id!r}"
        )
    query_hash, doc_hash = hashes
    return store.record_decision(query_hash, doc_hash, label, annotator, query_id, doc_id,
                                 name, note)


@dataclass(frozen=True)
class QueueFilters:
    """Which candidates the review queue shows.

    Attributes:
        unreviewed_only: hide pairs that already have a decision.
        query_id: only this query's candidates.
        reason: only candidates whose suspicion reasons mention this text.
        decided_by: only pairs this annotator decided (implies showing reviewed pairs).
        query_ids: only these queries (e.g. a cluster's).
    """

    unreviewed_only: bool = True
    query_id: str | None = None
    reason: str | None = None
    decided_by: str | None = None
    query_ids: tuple[str, ...] | None = None


def review_queue(
    store: Store, run_id: int | None = None, filters: QueueFilters = QueueFilters(),
    limit: int | None = None,
) -> pd.DataFrame:
    """The candidates to review, most useful decision first.

    First come the candidates an export would take if suspicion did not hold them back: each
    query's k hardest candidates not marked false negative or unsure. Among them the most
    suspicious go first (the run's suspicion, or the score before it is scored): a decision there
    either removes a false negative or confirms a hard negative the export can then use, so
    reviewing walks the export towards top-k hardness without its false negatives. The rest of the
    pool follows in the same order. The benchmark's simulated annotator and the Review page both
    walk this order.

    Returns:
        The pool rows (see ``Store.run_candidates``) in queue order with ``margin`` (pos - score),
        ``would_export`` (in a default export now), ``hard_set`` and ``priority`` added.
    """
    run = store.get_run(run_id)
    # Each query's order depends on its own candidates only, so a query filter reads just those.
    queries = None if filters.query_ids is None else set(filters.query_ids)
    if filters.query_id:
        queries = {filters.query_id} & queries if queries is not None else {filters.query_id}
    if filters.decided_by:  # an annotator's pairs lie in the queries they decided
        decided = set(store.decided_query_ids(run.dataset_id, filters.decided_by))
        queries = decided if queries is None else queries & decided
    wanted = None if queries is None else sorted(queries)
    pool = store.run_candidates(run.run_id, wanted)
    planned = planned_negatives(store, run.run_id, query_ids=wanted)
    planned_pairs = pd.MultiIndex.from_frame(planned[["query_id", "doc_id"]])
    pool["would_export"] = pd.MultiIndex.from_frame(pool[["query_id", "doc_id"]]).isin(
        planned_pairs)
    usable = pool[~pool["decision"].isin(["false_negative", "unsure"])]
    hardest = usable.sort_values(["query_id", "score"], ascending=[True, False], kind="stable")
    pool["hard_set"] = pool.index.isin(
        hardest.groupby("query_id", sort=False).head(run.num_negatives).index)
    pool["margin"] = pool["pos_score"] - pool["score"]
    suspicion = pool["suspicion"].astype(float)
    pool["priority"] = suspicion.where(suspicion.notna(), pool["score"].astype(float))
    keep = pd.Series(True, index=pool.index)
    if filters.decided_by:
        keep &= pool["decided_by"].eq(filters.decided_by)
    elif filters.unreviewed_only:
        keep &= pool["decision"].isna()
    if filters.query_id:
        keep &= pool["query_id"].eq(filters.query_id)
    if filters.query_ids is not None:
        keep &= pool["query_id"].isin(list(filters.query_ids))
    if filters.reason:
        keep &= pool["reasons"].fillna("").str.contains(filters.reason, regex=False)
    queue = pool[keep].sort_values(
        ["hard_set", "priority", "score", "query_id", "doc_id"],
        ascending=[False, False, False, True, True], kind="stable",
    ).drop_duplicates(["query_id", "doc_id"])
    queue = queue.reset_index(drop=True)
    return queue if limit is None else queue.head(limit)


@dataclass(frozen=True)
class ReviewCard:
    """Everything the review card shows for one candidate."""

    run_id: int
    query_id: str
    query_text: str
    doc_id: str
    doc_text: str
    positives: list[tuple[str, str]]
    score: float
    pos_score: float
    margin: float
    rank: int | None
    suspicion: float | None
    reasons: list[str]
    decision: str | None
    would_export: bool
    # The suspicion before a model learned from decisions replaced it (None while it is cold).
    cold_suspicion: float | None = None


def review_card(store: Store, run_id: int, row: pd.Series) -> ReviewCard:
    """Build the card for one queue row (texts of the query, candidate and positives)."""
    run = store.get_run(run_id)
    pos_ids = store.query_positives(run.dataset_id, row["query_id"])
    docs = store.lookup_texts(run.dataset_id, "documents", [row["doc_id"], *pos_ids])
    query = store.lookup_texts(run.dataset_id, "queries", [row["query_id"]])
    reasons = json.loads(row["reasons"]) if isinstance(row.get("reasons"), str) else []
    rank = row.get("rank")
    suspicion = row.get("suspicion")
    return ReviewCard(
        cold_suspicion=_cold_suspicion(store, run_id, row["query_id"], row["doc_id"]),
        run_id=run_id, query_id=row["query_id"], query_text=query[row["query_id"]],
        doc_id=row["doc_id"], doc_text=docs[row["doc_id"]],
        positives=[(p, docs[p]) for p in pos_ids], score=float(row["score"]),
        pos_score=float(row["pos_score"]), margin=float(row["pos_score"] - row["score"]),
        rank=None if pd.isna(rank) else int(rank),
        suspicion=None if suspicion is None or pd.isna(suspicion) else float(suspicion),
        reasons=reasons, decision=None if pd.isna(row.get("decision")) else row["decision"],
        would_export=bool(row.get("would_export", False)),
    )


def _cold_suspicion(store: Store, run_id: int, query_id: str, doc_id: str) -> float | None:
    """A candidate's cold suspicion when a learned model's replaced it (kept in its signals)."""
    from core.false_negatives.learning import COLD_KEY

    explained = store.candidate_explanation(run_id, query_id, doc_id)
    if not explained or explained[3] != "learned":
        return None
    cold = json.loads(explained[2]).get(COLD_KEY)
    return None if cold is None else float(cold)


def next_review_item(store: Store, run_id: int | None = None,
                     query_id: str | None = None) -> pd.Series | None:
    """The first undecided row of ``review_queue`` (default filters), found in SQL.

    For runs too large to read whole (``review_queue`` reads every candidate): the row carries what
    ``review_card`` shows (reasons, would_export, margin). None when every candidate is decided.
    """
    from core.mining import get_strategy

    run = store.get_run(run_id)
    try:
        dense = get_strategy(run.strategy).pool_source == "dense"
    except WorkbenchError:
        dense = False
    rows = store.review_next(run.run_id, run.dataset_id, run.num_negatives, 1, query_id, dense)
    if rows.empty:
        return None
    row = rows.iloc[0].copy()
    explained = store.candidate_explanation(run.run_id, row["query_id"], row["doc_id"])
    row["reasons"] = explained[1] if explained else None
    planned = store.export_negatives(run.run_id, run.dataset_id, run.num_negatives,
                                     [row["query_id"]], run.short_queries)
    row["would_export"] = bool(planned["doc_id"].eq(row["doc_id"]).any())
    row["margin"] = row["pos_score"] - row["score"]
    row["decision"] = None
    return row


def would_export(store: Store, run_id: int, rows: pd.DataFrame) -> list[bool]:
    """Whether a default export of the run takes each (query_id, doc_id) row now (in SQL, for
    the rows' queries only)."""
    run = store.get_run(run_id)
    planned = store.export_negatives(run.run_id, run.dataset_id, run.num_negatives,
                                     sorted(set(rows["query_id"])), run.short_queries,
                                     with_text=False)
    taken = set(zip(planned["query_id"], planned["doc_id"]))
    return [k in taken for k in zip(rows["query_id"], rows["doc_id"])]


def review_head(store: Store, run_id: int | None = None, limit: int = 50,
                query_id: str | None = None, hard_only: bool = False,
                reason_kind: str | None = None) -> pd.DataFrame:
    """The first ``limit`` undecided rows of ``review_queue`` (default filters), found in SQL.

    What the Review page shows of a queue too large to read whole: the rows carry the columns
    ``review_card`` and ``core.review_filters.queue_table`` use (reasons, would_export, margin,
    decision and decided_by, None here since the rows are undecided). ``hard_only``: only rows
    of the hard set (see ``review_queue``); ``reason_kind``: only rows with a reason of that
    kind (``core.review_filters.reason_kind``).

    Returns:
        query_id, doc_id, rank, score, pos_score, suspicion, hard_set, reasons, would_export,
        margin, priority, decision, decided_by; empty when every candidate is decided.
    """
    rows = review_order(store, run_id, limit, query_id, hard_only, reason_kind)
    return with_details(store, store.get_run(run_id).run_id, rows)


def review_order(store: Store, run_id: int | None = None, limit: int = 50,
                 query_id: str | None = None, hard_only: bool = False,
                 reason_kind: str | None = None) -> pd.DataFrame:
    """``review_head`` without what costs a read per query: reasons and would_export are None
    (``with_details`` reads them)."""
    from core.mining import get_strategy

    run = store.get_run(run_id)
    try:
        dense = get_strategy(run.strategy).pool_source == "dense"
    except WorkbenchError:
        dense = False
    rows = store.review_next(run.run_id, run.dataset_id, run.num_negatives, limit, query_id, dense,
                             hard_only, reason_kind)
    return queue_columns(rows)


def query_hard_rows(store: Store, run_id: int, query_id: str,
                    reason_kind: str | None = None) -> pd.DataFrame:
    """One query's undecided hard-set rows in queue order, as ``review_order`` gives them
    (with a reason of ``reason_kind`` only, when given)."""
    run = store.get_run(run_id)
    return queue_columns(store.query_hard_rows(run.run_id, run.dataset_id, run.num_negatives,
                                                query_id, reason_kind))


def queue_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """``review_next``'s rows with the columns of ``review_order`` added (details None)."""
    rows["reasons"], rows["would_export"] = None, None
    rows["margin"] = rows["pos_score"] - rows["score"]
    suspicion = rows["suspicion"].astype(float)
    rows["priority"] = suspicion.where(suspicion.notna(), rows["score"].astype(float))
    rows["decision"], rows["decided_by"] = None, None
    return rows.reset_index(drop=True)


def with_details(store: Store, run_id: int, rows: pd.DataFrame) -> pd.DataFrame:
    """Queue rows with their suspicion reasons and would_export read now."""
    if rows.empty:
        return rows.assign(reasons=None, would_export=pd.Series(dtype=bool))
    reasons = store.pair_suspicion(run_id, rows).drop_duplicates(["query_id", "doc_id"])
    found = dict(zip(zip(reasons["query_id"], reasons["doc_id"]), reasons["reasons"]))
    keys = list(zip(rows["query_id"], rows["doc_id"]))
    return rows.assign(reasons=[found.get(k) for k in keys],
                       would_export=would_export(store, run_id, rows))
