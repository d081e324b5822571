"""A run's learned suspicion: the pool as learning reads it, the model's scores and reasons
written over the cold ones, and the cold ones put back.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self`` (``_write_suspicion``, ``get_run``).
The stored JSON texts (signals, reasons) are read and rewritten by DuckDB: at a million
candidates, decoding and encoding them in Python took most of learning's time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from core.errors import WorkbenchError
from core.store.records import quote_identifier


class LearningMixin:
    """The Store's learned suspicion (module docstring)."""

    # A candidate's stored reasons (JSON text, the column named in the slot) without those a
    # model wrote: the ones starting with one of $prefixes.
    _COLD_REASONS = """list_filter(from_json({}, '["VARCHAR"]'), lambda t: NOT list_bool_or(
        list_transform($prefixes, lambda p: starts_with(t, p))))"""

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
                   coalesce(TRY_CAST(json_extract(s.signals, $cold) AS FLOAT), s.suspicion)::DOUBLE
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
                              model: dict[str, Any] | None = None,
                              as_of: datetime | None = None) -> None:
        """Replace a run's suspicion with a learned model's, rewriting the stored texts in DuckDB.

        ``scores``: query_id, doc_id, suspicion and cold (doubles), and the ``reason_columns``
        (text, null where there is nothing to say). Each candidate's reasons become ``note: p =
        <suspicion>``, its reason columns' texts, then its stored reasons that do not start with
        one of ``learned_prefixes`` (a previous model's), ``max_reasons`` in all; its signals gain
        ``cold_key`` (the cold suspicion as the float stored, in its shortest text) unless they
        hold it already. Candidates absent from ``scores`` lose their suspicion, as with
        ``put_suspicion``. ``model``: what the run keeps of the model, as
        ``RunInfo.search["learned_model"]`` (same transaction). ``as_of``: when the decisions
        learned from were read (the rows' scoring time, so that decisions recorded while the
        model was fit count as new ones; default: now).

        The new texts are built before the write transaction (half the time at a million
        candidates), so the workspace's writers (a decision, while the Review page re-learns in
        the background) wait only for the write itself.

        Raises:
            WorkbenchError: pairs of ``scores`` without suspicion, or the run scored again while
                the texts were built (nothing is written).
        """
        version = self._suspicion_version(self._cursor(), run_id)
        rows = self._learned_rows(run_id, scores, note, learned_prefixes, reason_columns,
                                  cold_key, max_reasons)
        if rows.num_rows != scores.num_rows:
            raise WorkbenchError(f"run {run_id} has no suspicion for "
                                 f"{scores.num_rows - rows.num_rows} of the learned pairs")
        with self._transaction() as cur:
            if self._suspicion_version(cur, run_id) != version:
                raise WorkbenchError(f"run {run_id} was scored again while its learned "
                                     "suspicion was prepared; learn again")
            self._write_suspicion(cur, run_id, rows, "learned", True, as_of)
            if model is not None:
                self._set_learned_model(cur, run_id, model)
        self._forget_runs()

    def _learned_rows(self, run_id: int, scores: pa.Table, note: str,
                      learned_prefixes: Sequence[str], reason_columns: Sequence[str],
                      cold_key: str, max_reasons: int) -> pa.Table:
        """The suspicion rows ``put_learned_suspicion`` writes (its docstring), built in DuckDB
        from ``scores`` and the stored texts."""
        extra = ", ".join(f"n.{quote_identifier(c)}" for c in reason_columns)
        kept = self._COLD_REASONS.format("s.reasons")
        cur = self._cursor()
        cur.register("learned_scores", scores)
        try:
            return cur.sql(
                f"""
                SELECT n.query_id, n.doc_id, n.suspicion::FLOAT AS suspicion,
                       to_json(list_slice(list_concat(
                           [$note || ': p = ' || printf('%.2f', n.suspicion)],
                           list_filter([{extra}]::VARCHAR[], lambda v: v IS NOT NULL),
                           {kept}),
                           1, $keep))::VARCHAR AS reasons,
                       CASE WHEN json_exists(s.signals, $cold_path) THEN s.signals
                            ELSE json_merge_patch(s.signals, json_object(
                                $cold_key, json(n.cold::FLOAT::VARCHAR)))::VARCHAR
                       END AS signals
                FROM learned_scores n
                JOIN suspicion s ON s.run_id = $run AND s.query_id = n.query_id
                    AND s.doc_id = n.doc_id
                """,
                params={"note": note, "prefixes": list(learned_prefixes), "keep": max_reasons,
                        "cold_path": _json_path(cold_key), "cold_key": cold_key, "run": run_id},
            ).to_arrow_table()
        finally:
            cur.unregister("learned_scores")

    def restore_cold_suspicion(self, run_id: int, learned_prefixes: Sequence[str],
                               cold_key: str) -> int:
        """Put back the suspicion a learned model replaced: each candidate's ``cold_key`` signal
        becomes its suspicion again (the very float it was), its reasons lose those starting with
        one of ``learned_prefixes``, its scorer is 'cold' again and the run forgets its model
        (``search["learned_model"]``). Returns how many candidates were restored (0: the run's
        suspicion is not a learned one)."""
        with self._transaction() as cur:
            rows = cur.sql(
                """
                SELECT query_id, doc_id,
                       TRY_CAST(json_extract(signals, $cold_path) AS FLOAT) AS suspicion,
                       to_json(""" + self._COLD_REASONS.format("reasons") + """)::VARCHAR
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
            self._set_learned_model(cur, run_id, None)
        self._forget_runs()
        return rows.num_rows

    def _set_learned_model(self, cur: duckdb.DuckDBPyConnection, run_id: int,
                           model: dict[str, Any] | None) -> None:
        """Keep ``model`` as the run's ``search["learned_model"]`` (None: forget it), inside the
        caller's transaction (the caller forgets the remembered runs afterwards)."""
        search = {k: v for k, v in self.get_run(run_id).search.items() if k != "learned_model"}
        if model is not None:
            search["learned_model"] = model
        cur.execute("UPDATE runs SET search = ? WHERE run_id = ?", [json.dumps(search), run_id])


def _json_path(key: str) -> str:
    """The JSONPath of an object's member ``key`` (quoted: keys may hold dots or quotes)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
