"""The review queue and the review card's facts, over runs of up to 10M candidates (the counts
a decision changes are ``pool_counts``).

Decisions are few: each query maps them onto the dataset's ids once per call (a join of the
small decision view with the queries and documents), registers that small table on the
cursor, and joins it to the run's candidates on the id hashes.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

from typing import Any, Sequence

import duckdb
import numpy as np
import pandas as pd

from core.store.connection import _reason_kinds_cache


class ReviewMixin:
    """The Store's review queue and card facts (module docstring)."""

    def _id_hash(self, cur: duckdb.DuckDBPyConnection, value: str) -> int:
        """DuckDB's hash of an id (what candidates.qh and .dh hold)."""
        return int(cur.execute("SELECT hash(?::VARCHAR)", [value]).fetchall()[0][0])

    def _query_scope(self, cur: duckdb.DuckDBPyConnection, query_ids: Sequence[str] | None,
                     table: str = "") -> tuple[str, list]:
        """An ``AND ...`` clause (positional parameters) keeping candidates of these queries only:
        empty for None, false for none. ``table``: the candidates' alias with its dot ("c.").

        The id range is redundant but lets DuckDB skip row groups: pools are stored query by
        query, so a few queries' rows lie together (a preview reads them, not 10M rows); one
        query is a point filter the scan can push down.
        """
        if query_ids is None:
            return "", []
        wanted = sorted(set(query_ids))
        if not wanted:
            return " AND false", []
        between = f" AND {table}query_id BETWEEN ? AND ?"
        if len(wanted) == 1:
            return f" AND {table}qh = ?" + between, [self._id_hash(cur, wanted[0]), wanted[0],
                                                     wanted[0]]
        return (f" AND {table}qh IN (SELECT hash(unnest(?::VARCHAR[])))" + between,
                [wanted, wanted[0], wanted[-1]])

    def review_next(self, run_id: int, dataset_id: int, k: int, limit: int = 1,
                    query_id: str | None = None, ranked_by_score: bool = True,
                    hard_only: bool = False, reason_kind: str | None = None) -> pd.DataFrame:
        """The first undecided candidates of ``core.review.review_queue``'s order, computed in SQL.

        The hard set (each query's k highest-scoring candidates not marked false negative or
        unsure) comes first, most suspicious first (the score where unscored), then the rest of
        the pool in the same order. When ranks follow scores (dense pools), a query without such
        a decision and without given negatives outside the pool has ranks 1..k as its hard set;
        only the others are windowed, over the ranks their hard set can reach. The order is found
        on the id hashes (no string is decoded for millions of rows), then the few winners' ids
        are read (ties on priority and score are broken by the ids among the first limit + 64).
        ``hard_only``: only hard-set rows, even when fewer than ``limit``. With ``query_id``, the
        id itself is filtered too: pools are stored query by query, so the scan skips the other
        queries' row groups. ``reason_kind``: only the rows with a reason of that kind (the order
        is the whole queue's, narrowed; see ``reason_kinds``).

        Columns: query_id, doc_id, rank, score, pos_score, suspicion, hard_set.
        """
        cur = self._cursor()
        params: dict[str, Any] = {"run": run_id, "k": k, "limit": limit + 64}
        scope = ""
        if query_id is not None:
            scope = " AND c.qh = $query AND c.query_id = $query_id"
            params["query"], params["query_id"] = self._id_hash(cur, query_id), query_id
        if ranked_by_score:
            special = """
                SELECT qh FROM rejected UNION
                SELECT DISTINCT qh FROM candidates c WHERE run_id = $run AND rank IS NULL""" \
                + scope
            reach = (" AND (c.rank IS NULL OR c.rank <= $k + "
                     "(SELECT coalesce(max(n), 0) FROM rejected))")
            plain = """
                SELECT c.qh, c.dh, c.rank, c.score, c.suspicion FROM candidates c
                WHERE c.run_id = $run AND c.rank <= $k""" + scope + """
                  AND c.qh NOT IN (SELECT qh FROM special)"""
        else:  # lexical pools: ranks do not follow scores, every query is windowed
            special = "SELECT DISTINCT qh FROM candidates c WHERE run_id = $run" + scope
            reach, plain = "", "SELECT qh, dh, rank, score, suspicion FROM candidates WHERE false"
        common = "WITH " + self._DECIDED + """,
            rejected AS (
                SELECT qh, count(*) AS n FROM decided
                WHERE label IN ('false_negative', 'unsure') GROUP BY qh),
            special AS (""" + special + """),
            plain AS (""" + plain + """),
            windowed AS (
                SELECT qh, dh, rank, score, suspicion FROM (
                    SELECT c.qh, c.dh, c.rank, c.score, c.suspicion, row_number() OVER (
                        PARTITION BY c.qh ORDER BY c.score DESC, c.rank NULLS LAST) AS place
                    FROM candidates c LEFT JOIN decided x ON x.qh = c.qh AND x.dh = c.dh
                    WHERE c.run_id = $run""" + scope + reach + """
                      AND c.qh IN (SELECT qh FROM special)
                      AND (x.label IS NULL OR x.label = 'hard_negative'))
                WHERE place <= $k),
            hard AS (SELECT * FROM plain UNION ALL SELECT * FROM windowed)"""
        order = " ORDER BY coalesce(suspicion, score) DESC, score DESC LIMIT $limit"
        undecided = (" NOT EXISTS (SELECT 1 FROM decided x WHERE x.qh = {t}.qh"
                     " AND x.dh = {t}.dh)")
        if reason_kind is not None:
            common += ", kinded AS (" + self._KINDED + (
                " AND s.query_id = $query_id" if query_id is not None else "") + ")"
            params["kind"] = reason_kind
            undecided += " AND EXISTS (SELECT 1 FROM kinded k WHERE k.qh = {t}.qh AND k.dh = {t}.dh)"
        with self._decided_pairs(cur, dataset_id):
            first = cur.execute(
                common + " SELECT qh, dh, rank, score, suspicion, true AS hard_set FROM hard h"
                " WHERE" + undecided.format(t="h") + order, params).df()
            if len(first) < limit and not hard_only:
                rest = cur.execute(
                    common + """ SELECT c.qh, c.dh, c.rank, c.score, c.suspicion,
                           false AS hard_set
                    FROM candidates c WHERE c.run_id = $run""" + scope + """
                      AND""" + undecided.format(t="c") + """
                      AND NOT EXISTS (SELECT 1 FROM hard h WHERE h.qh = c.qh AND h.dh = c.dh)"""
                    + order.replace("suspicion", "c.suspicion"), params).df()
                first = pd.concat([first, rest], ignore_index=True)
        return self._with_ids(run_id, first, limit, query_id)

    @classmethod
    def _hard_places(cls, partition: str, where: str) -> str:
        """``WITH decided, rows``: the run's candidates matching ``where`` (constant SQL over
        $run and the caller's parameters) that are not marked false negative or unsure, each
        with its decision and its place by score (then rank) within ``partition``."""
        return "WITH " + cls._DECIDED + f""",
                rows AS (
                    SELECT c.query_id, c.doc_id, c.rank, c.score, c.pos_score, c.suspicion,
                           x.label, row_number() OVER (
                               {partition} ORDER BY c.score DESC, c.rank NULLS LAST) AS place
                    FROM candidates c LEFT JOIN decided x ON x.qh = c.qh AND x.dh = c.dh
                    WHERE c.run_id = $run AND {where}
                      AND (x.label IS NULL OR x.label = 'hard_negative'))"""

    def query_hard_rows(self, run_id: int, dataset_id: int, k: int, query_id: str,
                        reason_kind: str | None = None) -> pd.DataFrame:
        """One query's undecided rows of the hard set (``review_next``'s first part, for one
        query): its k highest-scoring candidates not marked false negative or unsure, in queue
        order. One statement over the query's rows (its id skips other queries' row groups).
        ``reason_kind``: only those with a reason of that kind (as ``review_next``).

        Columns: query_id, doc_id, rank, score, pos_score, suspicion, hard_set.
        """
        cur = self._cursor()
        params: dict[str, Any] = {"run": run_id, "k": k, "query_id": query_id}
        kinded, only_kind = "", ""
        if reason_kind is not None:
            params["kind"] = reason_kind
            kinded = ", kinded AS (" + self._KINDED + " AND s.query_id = $query_id)"
            only_kind = (" AND EXISTS (SELECT 1 FROM kinded x WHERE x.qh = hash(rows.query_id)"
                         " AND x.dh = hash(rows.doc_id))")
        with self._decided_pairs(cur, dataset_id):
            return cur.execute(
                self._hard_places("", "c.qh = hash($query_id::VARCHAR) "
                                  "AND c.query_id = $query_id") + kinded + """
                SELECT query_id, doc_id, rank, score, pos_score, suspicion, true AS hard_set
                FROM rows WHERE place <= $k AND label IS NULL""" + only_kind + """
                ORDER BY coalesce(suspicion, score) DESC, score DESC, query_id, doc_id""",
                params).df()

    def hard_set_reach(self, run_id: int, dataset_id: int, k: int, extra: int,
                       query_ids: Sequence[str]) -> pd.DataFrame:
        """The next ``extra`` candidates after each query's hard set: those that join it, in
        order, as the query's hard candidates are marked false negative or unsure.

        Per query, its candidates not marked false negative or unsure, by score (then rank):
        places k + 1 .. k + extra, with their decision (None or hard_negative).

        Columns: query_id, doc_id, rank, score, pos_score, suspicion, label, place.
        """
        cur = self._cursor()
        ids = sorted(set(query_ids))
        with self._decided_pairs(cur, dataset_id):
            return cur.execute(
                self._hard_places("PARTITION BY c.qh",
                                  "c.qh IN (SELECT hash(unnest($ids::VARCHAR[]))) "
                                  "AND list_contains($ids::VARCHAR[], c.query_id)") + """
                SELECT query_id, doc_id, rank, score, pos_score, suspicion, label, place
                FROM rows WHERE place > $k AND place <= $k + $extra ORDER BY query_id, place""",
                {"run": run_id, "k": k, "extra": extra, "ids": ids}).df()

    def _with_ids(self, run_id: int, rows: pd.DataFrame, limit: int,
                  query_id: str | None = None) -> pd.DataFrame:
        """Read the ids (and pos_score) of the winners found by their hashes, in queue order.

        Only the first ``limit`` rows and those tied with the last of them on priority and score
        are looked up, one point query each (an IN list over 10M rows is not pushed down); all of
        one query's at once when the rows are that query's.
        """
        columns = ["query_id", "doc_id", "rank", "score", "pos_score", "suspicion", "hard_set"]
        if rows.empty:
            return pd.DataFrame(columns=columns)
        rows = rows.assign(priority=rows["suspicion"].astype(float).fillna(
            rows["score"].astype(float)))
        rows = rows.sort_values(["hard_set", "priority", "score"], ascending=False, kind="stable")
        last = rows.iloc[min(limit, len(rows)) - 1]
        tied = (rows["hard_set"] == last["hard_set"]) & (rows["priority"] == last["priority"]) \
            & (rows["score"] == last["score"])
        rows = rows[(np.arange(len(rows)) < limit) | tied.to_numpy()]
        cur = self._cursor()
        if query_id is not None:
            found = {(int(r[0]), int(r[1])): r[2:] for r in cur.execute(
                "SELECT qh, dh, query_id, doc_id, pos_score FROM candidates WHERE run_id = ? "
                "AND query_id = ?", [run_id, query_id]).fetchall()}
            ids = [found[(int(qh), int(dh))] for qh, dh in zip(rows["qh"], rows["dh"])]
        else:
            ids = [cur.execute(
                "SELECT query_id, doc_id, pos_score FROM candidates WHERE run_id = ? AND qh = ? "
                "AND dh = ?", [run_id, int(qh), int(dh)]).fetchall()[0]
                for qh, dh in zip(rows["qh"], rows["dh"])]
        rows = rows.assign(query_id=[i[0] for i in ids], doc_id=[i[1] for i in ids],
                           pos_score=[i[2] for i in ids])
        rows = rows.sort_values(["hard_set", "priority", "score", "query_id", "doc_id"],
                                ascending=[False, False, False, True, True], kind="stable")
        return rows[columns].head(limit).reset_index(drop=True)

    def candidate_explanation(self, run_id: int, query_id: str, doc_id: str) -> tuple | None:
        """(suspicion, reasons JSON, signals JSON, scorer) of one candidate; None if unscored."""
        return self._cursor().execute(
            "SELECT suspicion, reasons, signals, scorer FROM suspicion "
            "WHERE run_id = ? AND query_id = ? AND doc_id = ?", [run_id, query_id, doc_id],
        ).fetchone()

    def pair_suspicion(self, run_id: int, pairs: pd.DataFrame) -> pd.DataFrame:
        """The suspicion and its reasons (JSON text) of (query_id, doc_id) pairs of a run.

        Columns: query_id, doc_id, suspicion, reasons; unscored pairs are absent.
        """
        if pairs.empty:
            return pd.DataFrame(columns=["query_id", "doc_id", "suspicion", "reasons"])
        cur = self._cursor()
        cur.register("wanted_pairs", pairs[["query_id", "doc_id"]])
        try:  # the id range lets the scan skip row groups (scores are stored query by query)
            return cur.execute(
                "SELECT s.query_id, s.doc_id, s.suspicion, s.reasons FROM suspicion s "
                "JOIN wanted_pairs w "
                "ON s.query_id = w.query_id AND s.doc_id = w.doc_id WHERE s.run_id = ? "
                "AND s.query_id BETWEEN ? AND ?",
                [run_id, pairs["query_id"].min(), pairs["query_id"].max()]).df()
        finally:
            cur.unregister("wanted_pairs")

    # A reason's kind: its words before any quote, number or parenthesis (as
    # ``core.review_filters.reason_kind``).
    _REASON_KIND = r"""trim(regexp_split_to_array({}, '\s[''"]|[(0-9]')[1])"""
    # The (qh, dh) id hashes of the run's ($run) scored pairs with a reason of kind $kind.
    _KINDED = """
        SELECT DISTINCT hash(s.query_id) AS qh, hash(s.doc_id) AS dh FROM suspicion s
        WHERE s.run_id = $run AND len(list_filter(from_json(s.reasons, '["VARCHAR"]'),
            lambda r: """ + _REASON_KIND.format("r") + """ = $kind)) > 0"""

    def reason_kinds(self, run_id: int) -> list[str]:
        """The distinct kinds of a run's suspicion reasons: each reason's words before any quote,
        number or parenthesis (``core.review_filters.reason_kind``, here in SQL), sorted.

        Read once per scoring of the run in this process (the Review page asks on every render;
        reading a million candidates' reasons takes about 0.5 s)."""
        cur = self._cursor()
        version = self._suspicion_version(cur, run_id)
        cached = _reason_kinds_cache.get((self._key, run_id))
        if cached is not None and cached[0] == version:
            return list(cached[1])
        kinds = [r[0] for r in cur.execute(
            "SELECT DISTINCT " + self._REASON_KIND.format("reason") + """ AS kind
            FROM (SELECT unnest(from_json(reasons, '["VARCHAR"]')) AS reason FROM suspicion
                  WHERE run_id = ? AND reasons IS NOT NULL AND reasons <> '[]')
            WHERE kind <> '' ORDER BY kind""", [run_id]).fetchall()]
        _reason_kinds_cache[(self._key, run_id)] = (version, kinds)
        return list(kinds)
