"""Annotators' decisions: recorded, undone, merged between workspaces, mapped onto a dataset's ids.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import duckdb
import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.store.connection import _decided_cache
from core.store.records import LABELS, Decision, utc_now


class DecisionsMixin:
    """The Store's annotator decisions (module docstring)."""

    def record_decision(
        self,
        query_hash: str,
        doc_hash: str,
        label: str,
        annotator: str,
        query_id: str | None = None,
        doc_id: str | None = None,
        dataset: str | None = None,
        note: str | None = None,
    ) -> int:
        """Append a decision to the log and return its id.

        Raises:
            WorkbenchError: unknown label or empty annotator name.
        """
        if label not in LABELS:
            raise WorkbenchError(f"label {label!r} is not one of {', '.join(LABELS)}")
        if not annotator or not annotator.strip():
            raise WorkbenchError("an annotator name is required to record a decision")
        with self._transaction() as cur:
            decision_id = cur.execute("SELECT nextval('decision_seq')").fetchone()[0]
            cur.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [decision_id, query_hash, doc_hash, query_id, doc_id, dataset, label,
                 annotator.strip(), utc_now(), note],
            )
        return decision_id

    def retract_last_decision(self, annotator: str) -> Decision | None:
        """Undo the annotator's newest live decision (appends a retraction); None if nothing to undo."""
        with self._transaction() as cur:
            row = cur.execute(
                "SELECT * FROM decisions WHERE annotator = ? AND decision_id NOT IN "
                "(SELECT decision_id FROM retractions) "
                "ORDER BY created_at DESC, decision_id DESC LIMIT 1",
                [annotator.strip()],
            ).fetchone()
            if row is None:
                return None
            cur.execute(
                "INSERT INTO retractions VALUES (?, ?, ?)", [row[0], annotator.strip(), utc_now()]
            )
        return Decision(*row)

    def latest_decisions(self) -> list[Decision]:
        """Return each pair's latest live decision."""
        rows = self._cursor().execute(
            "SELECT * FROM latest_decisions ORDER BY decision_id"
        ).fetchall()
        return [Decision(*r) for r in rows]

    def decided_query_ids(self, dataset_id: int, annotator: str | None = None) -> list[str]:
        """The dataset's queries (ids, sorted) with a pair whose latest decision is
        ``annotator``'s (anyone's when None): where the Review page's "Decided by" filter, or
        its reviewed pairs, can find rows."""
        return [r[0] for r in self._cursor().execute(
            "SELECT DISTINCT q.query_id FROM latest_decisions l JOIN queries q "
            "ON q.dataset_id = ? AND q.text_hash = l.query_hash "
            "WHERE ? IS NULL OR l.annotator = ? ORDER BY q.query_id",
            [dataset_id, annotator, annotator]).fetchall()]

    def decision_log(self) -> list[Decision]:
        """Return every decision ever recorded (retracted ones included), oldest first."""
        rows = self._cursor().execute("SELECT * FROM decisions ORDER BY decision_id").fetchall()
        return [Decision(*r) for r in rows]

    def annotator_decisions(self) -> pd.DataFrame:
        """Return each annotator's latest live decision per pair (for progress and agreement).

        Columns: query_hash, doc_hash, query_id, doc_id, annotator, label, decision_id.
        """
        return self._cursor().execute(
            """
            SELECT query_hash, doc_hash, query_id, doc_id, annotator, label, decision_id
            FROM (
                SELECT d.*, row_number() OVER (PARTITION BY d.query_hash, d.doc_hash, d.annotator
                                               ORDER BY d.created_at DESC, d.decision_id DESC) AS rn
                FROM decisions d
                WHERE d.decision_id NOT IN (SELECT decision_id FROM retractions)
            ) WHERE rn = 1
            ORDER BY decision_id
            """
        ).df()

    _DECISION_KEY = (
        "d.query_hash = i.query_hash AND d.doc_hash = i.doc_hash AND d.annotator = i.annotator "
        "AND d.label = i.label AND d.created_at = i.created_at"
    )

    def decision_records(self) -> pd.DataFrame:
        """Every decision with the time it was retracted (NaT while live), oldest first.

        Columns: query_hash, doc_hash, query_id, doc_id, dataset, label, annotator, created_at,
        note, retracted_at. A decision is identified across workspaces by (query_hash, doc_hash,
        annotator, label, created_at): ids are local to a workspace.
        """
        return self._cursor().execute(
            "SELECT d.query_hash, d.doc_hash, d.query_id, d.doc_id, d.dataset, d.label, "
            "d.annotator, d.created_at, d.note, r.retracted_at FROM decisions d "
            "LEFT JOIN (SELECT decision_id, min(created_at) AS retracted_at FROM retractions "
            "GROUP BY decision_id) r USING (decision_id) ORDER BY d.created_at, d.decision_id"
        ).df()

    def merge_decisions(self, frame: pd.DataFrame) -> tuple[int, int, int]:
        """Add decisions (``decision_records`` columns) that this workspace lacks, in one transaction.

        A decision already present (same query_hash, doc_hash, annotator, label, created_at) is
        not added again; one retracted in ``frame`` is retracted here too. Importing the same
        records twice changes nothing.

        Returns:
            (decisions added, decisions already present, retractions added).
        """
        columns = ("query_hash", "doc_hash", "query_id", "doc_id", "dataset", "label",
                   "annotator", "created_at", "note", "retracted_at")
        with self._transaction() as cur:
            cur.register("incoming_decisions", frame[list(columns)])
            distinct = cur.execute(
                "SELECT count(*) FROM (SELECT DISTINCT query_hash, doc_hash, annotator, label, "
                "created_at FROM incoming_decisions)"
            ).fetchone()[0]
            added = cur.execute(
                "INSERT INTO decisions SELECT nextval('decision_seq'), i.query_hash, i.doc_hash, "
                "i.query_id, i.doc_id, i.dataset, i.label, i.annotator, i.created_at, i.note "
                "FROM (SELECT * FROM incoming_decisions QUALIFY row_number() OVER (PARTITION BY "
                "query_hash, doc_hash, annotator, label, created_at ORDER BY note NULLS LAST) = 1"
                ") i WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE "
                + self._DECISION_KEY + ") ORDER BY i.created_at"
            ).fetchone()[0]
            retracted = cur.execute(
                "INSERT INTO retractions SELECT d.decision_id, d.annotator, min(i.retracted_at) "
                "FROM incoming_decisions i JOIN decisions d ON " + self._DECISION_KEY
                + " WHERE i.retracted_at IS NOT NULL AND d.decision_id NOT IN "
                "(SELECT decision_id FROM retractions) GROUP BY d.decision_id, d.annotator"
            ).fetchone()[0]
            cur.unregister("incoming_decisions")
        return int(added), int(distinct - added), int(retracted)

    def unheld_pairs(self, pairs: pd.DataFrame) -> int:
        """How many of ``pairs`` (query_hash, doc_hash) no dataset of this workspace holds as a
        query and a document: decisions on them apply only once such texts are ingested."""
        if pairs.empty:
            return 0
        cur = self._cursor()
        cur.register("incoming_pairs", pairs[["query_hash", "doc_hash"]].drop_duplicates())
        try:
            return int(cur.execute(
                "SELECT count(*) FROM incoming_pairs i WHERE NOT EXISTS (SELECT 1 FROM queries q "
                "WHERE q.text_hash = i.query_hash) OR NOT EXISTS (SELECT 1 FROM documents d "
                "WHERE d.text_hash = i.doc_hash)").fetchall()[0][0])
        finally:
            cur.unregister("incoming_pairs")

    def decisions_since_scored(self, run_id: int, dataset_id: int) -> int:
        """Decisions recorded on the dataset's queries since the run's suspicion was last scored
        (by mining or by learning); every decision when it has not been scored."""
        return int(self._cursor().execute(
            "SELECT count(*) FROM decisions d WHERE d.created_at > coalesce((SELECT "
            "max(scored_at) FROM suspicion WHERE run_id = ?), TIMESTAMP '1970-01-01') AND "
            "d.query_hash IN (SELECT text_hash FROM queries WHERE dataset_id = ?)",
            [run_id, dataset_id]).fetchall()[0][0])

    def annotation_version(self, run_id: int) -> str:
        """Return a token that changes whenever decisions or the run's suspicion scores change.

        Pages key their cached frames on it (with the run id), so a decision invalidates them.
        """
        return "/".join(str(v) for v in self.review_version(run_id))

    def review_version(self, run_id: int) -> tuple[int, int, int, str]:
        """(newest decision id, retractions, the run's suspicion rows, when last scored): what
        ``annotation_version`` joins; its first two are ``decisions_version``."""
        row = self._cursor().execute(
            "SELECT (SELECT coalesce(max(decision_id), 0) FROM decisions), "
            "(SELECT count(*) FROM retractions), "
            "(SELECT count(*) FROM suspicion WHERE run_id = ?), "
            "(SELECT max(scored_at) FROM suspicion WHERE run_id = ?)",
            [run_id, run_id],
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), str(row[3])

    _DECIDED = "decided AS (SELECT query_id, doc_id, qh, dh, label FROM decided_pairs)"

    def decisions_version(self) -> tuple[int, int]:
        """(newest decision id, retractions): changes with every decision and every undo.

        Decision ids come from one sequence under the write lock, so a decision recorded right
        after version (n, r) with nothing else in between has id n + 1 and leaves (n + 1, r).
        """
        return self._decisions_version(self._cursor())

    @staticmethod
    def _decisions_version(cur: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        row = cur.execute(
            "SELECT (SELECT coalesce(max(decision_id), 0) FROM decisions), "
            "(SELECT count(*) FROM retractions)").fetchall()[0]
        return int(row[0]), int(row[1])

    @contextmanager
    def _decided_pairs(self, cur: duckdb.DuckDBPyConnection, dataset_id: int) -> Iterator[None]:
        version = self._decisions_version(cur)
        key = (self._key, dataset_id, version)
        frame = _decided_cache.get(key)
        if frame is None:  # the join scans the dataset's documents: once per decision change
            before = _decided_cache.get((self._key, dataset_id, (version[0] - 1, version[1])))
            frame = self._decided_frame(cur, dataset_id) if before is None else \
                self._decided_frame_after(cur, dataset_id, before, version[0])
            if len(_decided_cache) > 16:
                _decided_cache.clear()
            _decided_cache[key] = frame
        cur.register("decided_pairs", frame)
        try:
            yield
        finally:
            cur.unregister("decided_pairs")

    _DECIDED_FRAME = (
        "SELECT q.query_id, d.doc_id, hash(q.query_id) AS qh, hash(d.doc_id) AS dh, "
        "l.label FROM latest_decisions l "
        "JOIN queries q ON q.dataset_id = $dataset AND q.text_hash = l.query_hash "
        "JOIN documents d ON d.dataset_id = $dataset AND d.text_hash = l.doc_hash")

    def _decided_frame(self, cur: duckdb.DuckDBPyConnection, dataset_id: int) -> pd.DataFrame:
        """The dataset's id pairs with a live decision: (query_id, doc_id, qh, dh, label)."""
        return cur.execute(self._DECIDED_FRAME, {"dataset": dataset_id}).df()

    def _decided_frame_after(self, cur: duckdb.DuckDBPyConnection, dataset_id: int,
                             before: pd.DataFrame, decision_id: int) -> pd.DataFrame:
        """``_decided_frame`` from the one before decision ``decision_id`` (the only change since):
        that decision's pair of texts read again, the other rows kept."""
        pair = cur.execute(
            "SELECT query_hash, doc_hash, doc_id FROM decisions WHERE decision_id = ?",
            [decision_id]).fetchall()
        if not pair:  # the sequence skipped an id: nothing to go on
            return self._decided_frame(cur, dataset_id)
        query_hash, doc_hash, doc_id = pair[0]
        query_ids, doc_ids = self._text_ids(cur, dataset_id, query_hash, doc_hash, doc_id)
        now = cur.execute(
            "SELECT q.query_id, d.doc_id, hash(q.query_id) AS qh, hash(d.doc_id) AS dh, l.label "
            "FROM latest_decisions l, (SELECT unnest(?::VARCHAR[]) AS query_id) q, "
            "(SELECT unnest(?::VARCHAR[]) AS doc_id) d "
            "WHERE l.query_hash = ? AND l.doc_hash = ?",
            [query_ids, doc_ids, query_hash, doc_hash]).df()
        ids = set(zip(now["query_id"], now["doc_id"]))
        kept = before[np.array([k not in ids for k in zip(before["query_id"], before["doc_id"])],
                               dtype=bool)]  # (a list, [] when nothing was decided, = no column)
        return pd.concat([kept, now], ignore_index=True) if len(now) else kept
