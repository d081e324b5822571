"""Audits: seeded samples of a run's exported negatives and the decisions on them.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

import pandas as pd

from core.errors import WorkbenchError
from core.store.records import AuditInfo, utc_now


class AuditsMixin:
    """The Store's audits (module docstring)."""

    def create_audit(self, run_id: int, num_negatives: int, pairs: pd.DataFrame, seed: int,
                     exported: int, exported_queries: int, created_by: str | None = None,
                     max_false_negatives: int | None = None) -> int:
        """Store a sample of the run's exported negatives, in review order, and return its id.

        ``pairs``: query_id, doc_id in the order they are to be reviewed.

        Raises:
            WorkbenchError: a pair that is not a query and document of the run's dataset.
        """
        run = self.get_run(run_id)
        frame = pd.DataFrame({"position": range(len(pairs)),
                              "query_id": pairs["query_id"].astype(str).to_numpy(),
                              "doc_id": pairs["doc_id"].astype(str).to_numpy()})
        with self._transaction() as cur:
            cur.register("audit_frame", frame)
            try:
                audit_id = cur.execute("SELECT nextval('audit_seq')").fetchall()[0][0]
                cur.execute(
                    "INSERT INTO audits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [audit_id, run.run_id, num_negatives, seed, len(frame), exported,
                     exported_queries, created_by, utc_now(), max_false_negatives])
                inserted = cur.execute(
                    """
                    INSERT INTO audit_pairs
                    SELECT $audit, f.position, f.query_id, f.doc_id, q.text_hash, d.text_hash
                    FROM audit_frame f
                    JOIN queries q ON q.dataset_id = $dataset AND q.query_id = f.query_id
                    JOIN documents d ON d.dataset_id = $dataset AND d.doc_id = f.doc_id
                    """, {"audit": audit_id, "dataset": run.dataset_id}).fetchall()[0][0]
            finally:
                cur.unregister("audit_frame")
            if inserted != len(frame):
                raise WorkbenchError(
                    f"run {run.run_id}: {len(frame) - inserted} of the audit's pairs are not "
                    "queries and documents of its dataset")
        return int(audit_id)

    @staticmethod
    def _audit_from_row(row: tuple) -> AuditInfo:
        return AuditInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]),
                         int(row[5]), int(row[6]), row[7], row[8],
                         None if row[9] is None else int(row[9]))

    def list_audits(self, run_id: int | None = None) -> list[AuditInfo]:
        """Audits, newest first; of one run when ``run_id`` is given."""
        sql = "SELECT * FROM audits"
        args: list[int] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args.append(run_id)
        rows = self._cursor().execute(sql + " ORDER BY audit_id DESC", args).fetchall()
        return [self._audit_from_row(r) for r in rows]

    def get_audit(self, audit_id: int | None = None, run_id: int | None = None) -> AuditInfo:
        """An audit by id, or the newest (of ``run_id`` when given).

        Raises:
            WorkbenchError: no such audit.
        """
        if audit_id is None:
            found = self.list_audits(run_id)
            if not found:
                where = f" of run {run_id}" if run_id is not None else ""
                raise WorkbenchError(f"there is no audit{where} yet; draw one with "
                                     "`python -m core audit draw`")
            return found[0]
        row = self._cursor().execute("SELECT * FROM audits WHERE audit_id = ?",
                                     [audit_id]).fetchone()
        if row is None:
            raise WorkbenchError(f"there is no audit {audit_id}")
        return self._audit_from_row(row)

    def audit_outcomes(self, audit_id: int) -> pd.DataFrame:
        """The audit's pairs in review order with each pair's latest decision.

        Columns: position, query_id, doc_id, decision (None while undecided), decided_by.
        """
        return self._cursor().execute(
            """
            SELECT p.position, p.query_id, p.doc_id, l.label AS decision,
                   l.annotator AS decided_by
            FROM audit_pairs p
            LEFT JOIN latest_decisions l ON l.query_hash = p.query_hash
                AND l.doc_hash = p.doc_hash
            WHERE p.audit_id = ?
            ORDER BY p.position
            """, [audit_id]).df()
