"""Judge the review queue outside the workbench: a file of the queue's next candidates, with
everything a judge needs, that comes back as decisions.

The judge can be a second annotation tool, a vendor or an LLM (RLHN's cascade of LLM judges,
arXiv 2505.16967, sees the query, the positive and the candidate). One JSON object a line::

    {"query_hash": "...", "doc_hash": "...", "query_id": "q1", "doc_id": "d7", "dataset": "fiqa",
     "query": "...", "positives": ["..."], "candidate": "...", "score": 0.71, "pos_score": 0.74,
     "suspicion": 0.93, "reasons": ["scores 0.96 x the positive"], "would_export": true,
     "label": null, "annotator": null, "note": null}

A blind judge should see only ``query``, ``positives`` and ``candidate`` (the scores and reasons
are the workbench's own evidence). The judge fills ``label`` (hard_negative, false_negative or
unsure; lines left null are not judged) and, if it likes, ``annotator`` and ``note``;
``core.decisions.import_decisions`` (the command line's ``decisions import``, the Review page)
merges the file, keyed by the hashes as every decision is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import WorkbenchError
from core.files import atomic_write
from core.review import review_head
from core.store import Store


@dataclass(frozen=True)
class QueueFile:
    """A written queue file: ``rows`` candidates of ``queries`` queries."""

    path: Path
    rows: int
    queries: int


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 6)


def queue_records(store: Store, run_id: int, rows: pd.DataFrame) -> list[dict]:
    """One judging record per queue row (``core.review.review_head``'s or
    ``core.review_filters.queue_head``'s columns), in the rows' order; texts and hashes are read
    for these rows' queries and documents only."""
    if rows.empty:
        return []
    run = store.get_run(run_id)
    dataset = store.dataset_name(run.dataset_id)
    query_ids = list(dict.fromkeys(rows["query_id"]))
    positives = store.positives_of(run.dataset_id, query_ids)
    doc_ids = [*rows["doc_id"], *(d for q in query_ids for d in positives.get(q, []))]
    queries = store.lookup_texts(run.dataset_id, "queries", query_ids)
    query_hashes = store.lookup_texts(run.dataset_id, "queries", query_ids, "text_hash")
    docs = store.lookup_texts(run.dataset_id, "documents", doc_ids)
    doc_hashes = store.lookup_texts(run.dataset_id, "documents", list(rows["doc_id"]),
                                    "text_hash")
    records = []
    for row in rows.itertuples(index=False):
        reasons = getattr(row, "reasons", None)
        would = getattr(row, "would_export", None)
        records.append({
            "query_hash": query_hashes[row.query_id], "doc_hash": doc_hashes[row.doc_id],
            "query_id": row.query_id, "doc_id": row.doc_id, "dataset": dataset,
            "query": queries[row.query_id],
            "positives": [docs[d] for d in positives.get(row.query_id, [])],
            "candidate": docs[row.doc_id],
            "score": _number(row.score), "pos_score": _number(row.pos_score),
            "suspicion": _number(getattr(row, "suspicion", None)),
            "reasons": json.loads(reasons) if isinstance(reasons, str) else [],
            "would_export": None if would is None or pd.isna(would) else bool(would),
            "label": None, "annotator": None, "note": None,
        })
    return records


def queue_jsonl(records: list[dict]) -> bytes:
    """The records as JSONL bytes (UTF-8, one object a line)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def write_queue(store: Store, run_id: int | None, out_path: str | Path, limit: int = 100,
                query_id: str | None = None) -> QueueFile:
    """Write the first ``limit`` undecided candidates of the run's review queue (the Review page's
    order; one query's with ``query_id``) to ``out_path`` (.jsonl), atomically.

    Raises:
        WorkbenchError: ``limit`` < 1, a name not ending in .jsonl, a missing folder, or an
            unknown run.
    """
    out = Path(out_path)
    if limit < 1:
        raise WorkbenchError(f"a queue file needs at least one candidate, got limit {limit}")
    if out.suffix.lower() != ".jsonl":
        raise WorkbenchError(f"cannot write the queue to {out}: the file name must end in .jsonl")
    if out.is_dir() or not out.parent.is_dir():
        raise WorkbenchError(f"cannot write the queue to {out}: give a file in an existing folder")
    run = store.get_run(run_id)
    rows = review_head(store, run.run_id, limit, query_id)
    records = queue_records(store, run.run_id, rows)
    text = queue_jsonl(records)
    atomic_write(out, lambda handle: handle.write(text))
    return QueueFile(out, len(records), len({r["query_id"] for r in records}))
