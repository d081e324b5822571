"""Mining runs: their lifecycle (created, done, failed, interrupted), pools and suspicion.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from core.errors import WorkbenchError
from core.store.connection import _done_runs, _live_runs
from core.store.records import (
    _CANDIDATE_COLUMNS, INTERRUPTED, RunInfo, _column_names, _select, utc_now,
)


class RunsMixin:
    """The Store's mining runs (module docstring)."""

    def create_run(
        self,
        dataset_id: int,
        strategy: str,
        params: dict[str, Any],
        model: str,
        model_fp: str,
        query_prompt: str,
        doc_prompt: str,
        seed: int,
        num_negatives: int,
        pool_depth: int,
    ) -> int:
        """Record a run as 'running' and return its id."""
        with self._transaction() as cur:
            run_id = cur.execute("SELECT nextval('run_seq')").fetchone()[0]
            cur.execute(
                "INSERT INTO runs (run_id, dataset_id, strategy, params, model, model_fp, "
                "query_prompt, doc_prompt, seed, num_negatives, pool_depth, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                [run_id, dataset_id, strategy, json.dumps(params, sort_keys=True), model, model_fp,
                 query_prompt, doc_prompt, seed, num_negatives, pool_depth, utc_now()],
            )
            _live_runs.setdefault(self._key, set()).add(run_id)
        return run_id

    def finish_run(
        self,
        run_id: int,
        candidates: pd.DataFrame | pa.Table,
        timings: dict[str, float],
        filter_counts: dict[str, int],
        n_queries: int,
        short_queries: Sequence[str],
        search: dict[str, Any] | None = None,
        suspicion: tuple[pd.DataFrame | pa.Table, str] | None = None,
        suspicion_from: int | None = None,
    ) -> None:
        """Store a run's candidate pool and mark it done, atomically.

        ``candidates`` (a DataFrame or an Arrow table) may carry a ``suspicion`` column (else NULL
        until ``put_suspicion``); ``search`` says how the pool was searched (see
        ``core.search.SearchReport``). The run's explained suspicion goes in the same transaction,
        so a finished run always has it: ``suspicion`` = (rows as for ``put_suspicion``, scorer),
        or ``suspicion_from`` = a run with the same pool to copy it from.
        """
        names = _column_names(candidates)
        missing = [c for c in _CANDIDATE_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"candidate frame lacks columns {missing}")
        columns = list(_CANDIDATE_COLUMNS) + (["suspicion"] if "suspicion" in names else [])
        frame = _select(candidates, columns)
        with self._transaction() as cur:
            cur.register("new_candidates", frame)
            cur.execute(
                "INSERT INTO candidates (run_id, " + ", ".join(columns) + ", qh, dh) SELECT ?, "
                + ", ".join(columns) + ", hash(query_id), hash(doc_id) FROM new_candidates",
                [run_id],
            )
            cur.unregister("new_candidates")
            if suspicion is not None:
                self._write_suspicion(cur, run_id, suspicion[0], suspicion[1], False)
            if suspicion_from is not None:
                self._copy_suspicion(cur, suspicion_from, run_id)
            cur.execute(
                "UPDATE runs SET status = 'done', finished_at = ?, timings = ?, filter_counts = ?, "
                "n_queries = ?, short_queries = ?, search = ? WHERE run_id = ?",
                [utc_now(), json.dumps(timings), json.dumps(filter_counts), n_queries,
                 json.dumps(list(short_queries)), json.dumps(search or {}), run_id],
            )
        self._forget_runs()
        _live_runs.get(self._key, set()).discard(run_id)

    def set_run_timings(self, run_id: int, timings: dict[str, float]) -> None:
        """Replace a finished run's phase timings (seconds), e.g. to add the time storing took."""
        with self._transaction() as cur:
            cur.execute("UPDATE runs SET timings = ? WHERE run_id = ?",
                        [json.dumps(timings), run_id])
        self._forget_runs()

    def fail_run(self, run_id: int, error: str) -> None:
        """Mark a run failed with a one-sentence reason."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
                [utc_now(), error, run_id],
            )
        self._forget_runs()
        _live_runs.get(self._key, set()).discard(run_id)

    def _fail_interrupted_runs(self) -> list[int]:
        """Mark failed the runs left 'running' by a process that is gone; return their ids.

        Runs on the first open of the file in this process. DuckDB lets one process hold the file,
        so a run still 'running' then was started by a process that has stopped (killed, crashed)
        unless this process is mining it.
        """
        live = _live_runs.get(self._key, set())
        with self._transaction() as cur:
            rows = cur.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()
            stale = [run_id for (run_id,) in rows if run_id not in live]
            for run_id in stale:
                cur.execute(
                    "UPDATE runs SET status = 'failed', finished_at = ?, error = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    [utc_now(), INTERRUPTED, run_id],
                )
        self._forget_runs()
        return stale

    _RUN_COLUMNS = (
        "run_id, dataset_id, strategy, params, model, model_fp, query_prompt, doc_prompt, seed, "
        "num_negatives, pool_depth, status, created_at, finished_at, timings, filter_counts, "
        "n_queries, short_queries, error, search"
    )

    @staticmethod
    def _run_from_row(row: tuple) -> RunInfo:
        values = list(row)
        values[3] = json.loads(values[3])
        values[14] = json.loads(values[14]) if values[14] else {}
        values[15] = json.loads(values[15]) if values[15] else {}
        values[17] = json.loads(values[17]) if values[17] else []
        values[19] = json.loads(values[19]) if values[19] else {}
        return RunInfo(*values)

    def list_runs(self, dataset_id: int | None = None) -> list[RunInfo]:
        """Return runs, newest first (of one dataset when given)."""
        sql = f"SELECT {self._RUN_COLUMNS} FROM runs"
        params: list[Any] = []
        if dataset_id is not None:
            sql += " WHERE dataset_id = ?"
            params.append(dataset_id)
        rows = self._cursor().execute(sql + " ORDER BY run_id DESC", params).fetchall()
        return [self._run_from_row(r) for r in rows]

    def get_run(self, run_id: int | None = None) -> RunInfo:
        """Return a run by id, or the newest finished run when ``run_id`` is None.

        Raises:
            WorkbenchError: no such run, or no finished run yet.
        """
        if run_id is None:
            rows = self._cursor().execute(
                f"SELECT {self._RUN_COLUMNS} FROM runs WHERE status = 'done' "
                "ORDER BY run_id DESC LIMIT 1"
            ).fetchall()
            if not rows:
                raise WorkbenchError(
                    f"workspace {self.path} has no finished mining run yet; run "
                    "python -m core mine first"
                )
            return self._run_from_row(rows[0])
        cached = _done_runs.get((self._key, run_id))
        if cached is not None:
            return cached
        rows = self._cursor().execute(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]
        ).fetchall()
        if not rows:
            raise WorkbenchError(f"workspace {self.path} has no run {run_id}")
        run = self._run_from_row(rows[0])
        if run.status == "done":  # kept until a write to the runs table (_forget_runs)
            _done_runs[(self._key, run_id)] = run
        return run

    def _forget_runs(self) -> None:
        """Drop this workspace's remembered finished runs: every write to ``runs`` calls it."""
        for key in [k for k in _done_runs if k[0] == self._key]:
            _done_runs.pop(key, None)

    def run_candidates(self, run_id: int, query_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Return a run's candidate pool with hashes, each pair's latest decision and suspicion;
        only these queries' candidates when ``query_ids`` is given.

        ``reasons`` (JSON list) and ``signals`` (JSON object) are NULL until the run is scored.
        """
        cur = self._cursor()
        scope, params = self._query_scope(cur, query_ids, "c.")
        return cur.execute(
            """
            SELECT c.query_id, c.doc_id, c.rank, c.score, c.pos_score, c.lexical_score, c.source,
                   c.eligible, c.selected, q.text_hash AS query_hash, d.text_hash AS doc_hash,
                   l.label AS decision, l.annotator AS decided_by, s.suspicion,
                   s.reasons, s.signals, s.scorer
            FROM candidates c
            JOIN runs r ON r.run_id = c.run_id
            JOIN queries q ON q.dataset_id = r.dataset_id AND q.query_id = c.query_id
            JOIN documents d ON d.dataset_id = r.dataset_id AND d.doc_id = c.doc_id
            LEFT JOIN latest_decisions l ON l.query_hash = q.text_hash AND l.doc_hash = d.text_hash
            LEFT JOIN suspicion s ON s.run_id = c.run_id AND s.query_id = c.query_id
                AND s.doc_id = c.doc_id
            WHERE c.run_id = ?""" + scope + """
            ORDER BY c.query_id, c.rank NULLS LAST, c.score DESC
            """,
            [run_id, *params],
        ).df()

    def put_suspicion(self, run_id: int, frame: pd.DataFrame | pa.Table, scorer: str,
                      sync_candidates: bool = True) -> None:
        """Replace a run's suspicion scores (derived data) with ``frame``.

        ``frame`` columns: query_id, doc_id, suspicion, reasons (JSON text), signals (JSON text).
        ``sync_candidates``: also copy the values into the candidates' ``suspicion`` column (False
        when ``finish_run`` already stored them there).
        """
        with self._transaction() as cur:
            self._write_suspicion(cur, run_id, frame, scorer, sync_candidates)

    @staticmethod
    def _suspicion_version(cur: duckdb.DuckDBPyConnection, run_id: int) -> tuple:
        """(rows, when last scored) of the run's suspicion: changes with every scoring."""
        return tuple(cur.execute("SELECT count(*), max(scored_at)::VARCHAR FROM suspicion "
                                 "WHERE run_id = ?", [run_id]).fetchone())

    @staticmethod
    def _write_suspicion(cur: duckdb.DuckDBPyConnection, run_id: int,
                         frame: pd.DataFrame | pa.Table, scorer: str, sync_candidates: bool,
                         scored_at: datetime | None = None) -> None:
        """Replace the run's suspicion rows, dated ``scored_at`` (default: now)."""
        rows = _select(frame, ["query_id", "doc_id", "suspicion", "reasons", "signals"])
        cur.execute("DELETE FROM suspicion WHERE run_id = ?", [run_id])
        cur.register("new_suspicion", rows)
        cur.execute(
            "INSERT INTO suspicion SELECT ?, query_id, doc_id, suspicion, reasons, signals, "
            "?, ? FROM new_suspicion",
            [run_id, scorer, scored_at or utc_now()],
        )
        if sync_candidates:
            cur.execute(
                "UPDATE candidates c SET suspicion = n.suspicion FROM new_suspicion n "
                "WHERE c.run_id = ? AND c.query_id = n.query_id AND c.doc_id = n.doc_id",
                [run_id],
            )
        cur.unregister("new_suspicion")

    def run_pool(self, run_id: int) -> pa.Table:
        """A run's stored candidates without joins, as an Arrow table (no Python string per row).

        Columns: query_id, doc_id, rank, score, pos_score, lexical_score, suspicion. Given
        negatives outside the searched pool have rank NULL. Rows come in no particular order.
        """
        return self._cursor().sql(
            "SELECT query_id, doc_id, rank, score, pos_score, lexical_score, suspicion "
            "FROM candidates WHERE run_id = ?",
            params=[run_id],
        ).to_arrow_table()

    @staticmethod
    def _copy_suspicion(cur: duckdb.DuckDBPyConnection, source_run: int, target_run: int) -> int:
        """Give ``target_run`` the suspicion rows of ``source_run`` (same pool); return how many."""
        cur.execute("DELETE FROM suspicion WHERE run_id = ?", [target_run])
        return int(cur.execute(
            "INSERT INTO suspicion SELECT ?, query_id, doc_id, suspicion, reasons, signals, "
            "scorer, scored_at FROM suspicion WHERE run_id = ?",
            [target_run, source_run],
        ).fetchall()[0][0])

    def selected_doc_ids(self, run_id: int) -> list[str]:
        """The distinct documents a run selected as negatives (for any query)."""
        return [r[0] for r in self._cursor().execute(
            "SELECT DISTINCT doc_id FROM candidates WHERE run_id = ? AND selected", [run_id]
        ).fetchall()]

    def count_candidates(self, run_id: int) -> int:
        """How many candidate rows a run stored."""
        return int(self._cursor().execute(
            "SELECT count(*) FROM candidates WHERE run_id = ?", [run_id]).fetchone()[0])

    def run_query_ids(self, run_id: int) -> list[str]:
        """The distinct queries of a run's pool, sorted (the pages' query pickers)."""
        return [r[0] for r in self._cursor().execute(
            "SELECT DISTINCT query_id FROM candidates WHERE run_id = ? ORDER BY query_id",
            [run_id]).fetchall()]

