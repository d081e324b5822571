"""Mining runs: their lifecycle (created, done, failed, interrupted), pools and suspicion.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from core.errors import WorkbenchError
from core.store.connection import _done_runs, _live_runs
from core.store.records import (
    _CANDIDATE_COLUMNS, INTERRUPTED, RunInfo, _column_names, _now, _select, quote_identifier,
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
                 query_prompt, doc_prompt, seed, num_negatives, pool_depth, _now()],
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
                [_now(), json.dumps(timings), json.dumps(filter_counts), n_queries,
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
                [_now(), error, run_id],
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
                    [_now(), INTERRUPTED, run_id],
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
    def _write_suspicion(cur: duckdb.DuckDBPyConnection, run_id: int,
                         frame: pd.DataFrame | pa.Table, scorer: str, sync_candidates: bool) -> None:
        rows = _select(frame, ["query_id", "doc_id", "suspicion", "reasons", "signals"])
        cur.execute("DELETE FROM suspicion WHERE run_id = ?", [run_id])
        cur.register("new_suspicion", rows)
        cur.execute(
            "INSERT INTO suspicion SELECT ?, query_id, doc_id, suspicion, reasons, signals, "
            "?, ? FROM new_suspicion",
            [run_id, scorer, _now()],
        )
        if sync_candidates:
            cur.execute(
                "UPDATE candidates c SET suspicion = n.suspicion FROM new_suspicion n "
                "WHERE c.run_id = ? AND c.query_id = n.query_id AND c.doc_id = n.doc_id",
                [run_id],
            )
        cur.unregister("new_suspicion")

    def signal_keys(self, run_id: int) -> list[str]:
        """The keys of a run's stored signals (every candidate's, sorted)."""
        return sorted(r[0] for r in self._cursor().execute(
            "SELECT DISTINCT unnest(json_keys(signals)) FROM suspicion WHERE run_id = ?",
            [run_id]).fetchall())

    def scored_pool(self, run_id: int, features: Sequence[str], cold_key: str) -> pa.Table:
        """A run's scored candidates for learning, with their signals read by DuckDB (decoding a
        million JSON texts in Python took 10 s of learning's 44).

        One row per (query_id, doc_id), in ``run_candidates``' order, keeping its first row.
        Columns: query_id, doc_id, decision (the pair's latest label or NULL), suspicion;
        cold: the signals' ``cold_key`` where present, else the suspicion; x: the ``features``
        signals as a list of doubles (0.0 where a candidate has none).
        """
        paths = [_json_path(f) for f in features]
        return self._cursor().sql(
            """
            SELECT c.query_id, c.doc_id, l.label AS decision, s.suspicion,
                   coalesce(TRY_CAST(json_extract(s.signals, $cold) AS DOUBLE), s.suspicion)
                       AS cold,
                   list_transform(json_extract(s.signals, $paths)::VARCHAR[],
                                  lambda v: coalesce(TRY_CAST(v AS DOUBLE), 0.0)) AS x
            FROM candidates c
            JOIN runs r ON r.run_id = c.run_id
            JOIN queries q ON q.dataset_id = r.dataset_id AND q.query_id = c.query_id
            JOIN documents d ON d.dataset_id = r.dataset_id AND d.doc_id = c.doc_id
            JOIN suspicion s ON s.run_id = c.run_id AND s.query_id = c.query_id
                AND s.doc_id = c.doc_id
            LEFT JOIN latest_decisions l ON l.query_hash = q.text_hash AND l.doc_hash = d.text_hash
            WHERE c.run_id = $run
            QUALIFY row_number() OVER (PARTITION BY c.query_id, c.doc_id
                                       ORDER BY c.rank NULLS LAST, c.score DESC) = 1
            ORDER BY c.query_id, c.rank NULLS LAST, c.score DESC
            """,
            params={"run": run_id, "cold": _json_path(cold_key), "paths": paths},
        ).to_arrow_table()

    def put_learned_suspicion(self, run_id: int, scores: pa.Table, note: str,
                              learned_prefixes: Sequence[str], reason_columns: Sequence[str],
                              cold_key: str, max_reasons: int,
                              model: dict[str, Any] | None = None) -> None:
        """Replace a run's suspicion with a learned model's, rewriting the stored texts in DuckDB.

        ``scores``: query_id, doc_id, suspicion and cold (doubles), and the ``reason_columns``
        (text, null where there is nothing to say). Each candidate's reasons become ``note: p =
        <suspicion>``, its reason columns' texts, then its stored reasons that do not start with
        one of ``learned_prefixes`` (a previous model's), ``max_reasons`` in all; its signals gain
        ``cold_key`` (the cold suspicion, to 5 decimals) unless they hold it already. Candidates
        absent from ``scores`` lose their suspicion, as with ``put_suspicion``. ``model``: what
        the run keeps of the model, as ``RunInfo.search["learned_model"]`` (same transaction).
        """
        extra = ", ".join(f"n.{quote_identifier(c)}" for c in reason_columns)
        with self._transaction() as cur:
            cur.register("learned_scores", scores)
            rows = cur.sql(
                f"""
                SELECT n.query_id, n.doc_id, n.suspicion::FLOAT AS suspicion,
                       to_json(list_slice(list_concat(
                           [$note || ': p = ' || printf('%.2f', n.suspicion)],
                           list_filter([{extra}]::VARCHAR[], lambda v: v IS NOT NULL),
                           list_filter(from_json(s.reasons, '["VARCHAR"]'),
                                       lambda t: NOT list_bool_or(list_transform(
                                           $prefixes, lambda p: starts_with(t, p))))),
                           1, $keep))::VARCHAR AS reasons,
                       CASE WHEN json_exists(s.signals, $cold_path) THEN s.signals
                            ELSE json_merge_patch(s.signals,
                                                  json_object($cold_key, round(n.cold, 5)))::VARCHAR
                       END AS signals
                FROM learned_scores n
                JOIN suspicion s ON s.run_id = $run AND s.query_id = n.query_id
                    AND s.doc_id = n.doc_id
                """,
                params={"note": note, "prefixes": list(learned_prefixes), "keep": max_reasons,
                        "cold_path": _json_path(cold_key), "cold_key": cold_key, "run": run_id},
            ).to_arrow_table()
            cur.unregister("learned_scores")
            if rows.num_rows != scores.num_rows:
                raise WorkbenchError(f"run {run_id} has no suspicion for "
                                     f"{scores.num_rows - rows.num_rows} of the learned pairs")
            self._write_suspicion(cur, run_id, rows, "learned", True)
            if model is not None:
                search = {**self.get_run(run_id).search, "learned_model": model}
                cur.execute("UPDATE runs SET search = ? WHERE run_id = ?",
                            [json.dumps(search), run_id])
        self._forget_runs()

    def restore_cold_suspicion(self, run_id: int, learned_prefixes: Sequence[str],
                               cold_key: str) -> int:
        """Put back the suspicion a learned model replaced: each candidate's ``cold_key`` signal
        becomes its suspicion again (to 5 decimals), its reasons lose those starting with one of
        ``learned_prefixes``, its scorer is 'cold' again and the run forgets its model
        (``search["learned_model"]``). Returns how many candidates were restored (0: the run's
        suspicion is not a learned one)."""
        with self._transaction() as cur:
            rows = cur.sql(
                """
                SELECT query_id, doc_id,
                       TRY_CAST(json_extract(signals, $cold_path) AS FLOAT) AS suspicion,
                       to_json(list_filter(from_json(reasons, '["VARCHAR"]'),
                                           lambda t: NOT list_bool_or(list_transform(
                                               $prefixes, lambda p: starts_with(t, p)))))::VARCHAR
                           AS reasons,
                       signals
                FROM suspicion WHERE run_id = $run AND scorer = 'learned'
                """,
                params={"cold_path": _json_path(cold_key), "prefixes": list(learned_prefixes),
                        "run": run_id},
            ).to_arrow_table()
            if rows.num_rows == 0:
                return 0
            if rows.column("suspicion").null_count:
                raise WorkbenchError(f"run {run_id}'s learned suspicion does not keep the cold "
                                     "one for every candidate; mine the run again")
            total = int(cur.execute("SELECT count(*) FROM suspicion WHERE run_id = ?",
                                    [run_id]).fetchall()[0][0])
            if total != rows.num_rows:  # put_suspicion replaces every row: none may be left out
                raise WorkbenchError(f"run {run_id} mixes learned and cold suspicion rows; "
                                     "learn again or mine the run again")
            self._write_suspicion(cur, run_id, rows, "cold", True)
            search = {k: v for k, v in self.get_run(run_id).search.items()
                      if k != "learned_model"}
            cur.execute("UPDATE runs SET search = ? WHERE run_id = ?", [json.dumps(search), run_id])
        self._forget_runs()
        return rows.num_rows

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


def _json_path(key: str) -> str:
    """The JSONPath of an object's member ``key`` (quoted: keys may hold dots or quotes)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
