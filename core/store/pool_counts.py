"""Counting a run's pool pairs and what a decision touches in it, by the texts' content hashes
(decisions are keyed by them): the review progress, the queue's length and the page's cache of
the queue follow a decision with these.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self`` (``_decided_pairs``, ``_DECIDED`` and
``_KINDED``, ``_id_hash``).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from core.store.connection import _pool_counts_cache, _twin_documents_cache
from core.store.records import PairPoolFacts


class PoolCountsMixin:
    """The Store's counts of pool pairs and decisions (module docstring)."""

    def pair_pool_facts(self, run_id: int, dataset_id: int, query_id: str,
                        doc_id: str) -> PairPoolFacts:
        """What a decision on (query_id, doc_id) touches in a run's pool.

        Decisions are keyed by the texts' content hashes, so one applies to every id pair of the
        dataset with the same two texts: those pairs' queries, how many distinct id pairs of the
        pool they are, and whether the run selected any of them. Read by the queries' ids, which
        lets the scan skip other queries' row groups.
        """
        cur = self._cursor()
        hashes = self.pair_hashes(dataset_id, query_id, doc_id)
        if hashes is None:
            return PairPoolFacts((), (), False)
        query_ids, doc_ids = self._text_ids(cur, dataset_id, hashes[0], hashes[1], doc_id)
        rows = cur.execute(  # the id range lets the scan skip row groups
            "SELECT query_id, count(DISTINCT (qh, dh)), bool_or(selected) FROM candidates "
            "WHERE run_id = ? AND query_id BETWEEN ? AND ? "
            "AND list_contains(?::VARCHAR[], query_id) AND list_contains(?::VARCHAR[], doc_id) "
            "GROUP BY query_id ORDER BY query_id",
            [run_id, min(query_ids), max(query_ids), query_ids, doc_ids]).fetchall()
        return PairPoolFacts(tuple(r[0] for r in rows), tuple(int(r[1]) for r in rows),
                             any(bool(r[2]) for r in rows))

    def _text_ids(self, cur: duckdb.DuckDBPyConnection, dataset_id: int, query_hash: str,
                  doc_hash: str, doc_id: str | None = None) -> tuple[list[str], list[str]]:
        """The dataset's query ids with text ``query_hash`` and document ids with ``doc_hash``.

        ``doc_id``: a document likely to have ``doc_hash``; when it has and no other document
        shares its text, the documents' hashes are not scanned (a tenth of the time at 100k).
        """
        query_ids = [r[0] for r in cur.execute(
            "SELECT query_id FROM queries WHERE dataset_id = ? AND text_hash = ?",
            [dataset_id, query_hash]).fetchall()]
        if doc_id is not None and doc_hash not in self._twin_documents(cur, dataset_id):
            found = cur.execute(
                "SELECT doc_id FROM documents WHERE dataset_id = ? AND doc_id = ? "
                "AND text_hash = ?", [dataset_id, doc_id, doc_hash]).fetchall()
            if found:
                return query_ids, [found[0][0]]
        return query_ids, [r[0] for r in cur.execute(
            "SELECT doc_id FROM documents WHERE dataset_id = ? AND text_hash = ?",
            [dataset_id, doc_hash]).fetchall()]

    def _twin_documents(self, cur: duckdb.DuckDBPyConnection, dataset_id: int) -> frozenset[str]:
        """Text hashes that more than one of the dataset's documents share (usually none).

        Read once per dataset and process: a dataset's documents are written once
        (``add_dataset``); a new version is a new dataset.
        """
        key = (self._key, dataset_id)
        if key not in _twin_documents_cache:
            _twin_documents_cache[key] = frozenset(r[0] for r in cur.execute(
                "SELECT text_hash FROM documents WHERE dataset_id = ? GROUP BY text_hash "
                "HAVING count(*) > 1", [dataset_id]).fetchall())
        return _twin_documents_cache[key]

    def count_undecided(self, run_id: int, dataset_id: int, query_id: str | None = None,
                        reason_kind: str | None = None) -> int:
        """How many of a run's pool pairs (of ``query_id`` when given; with a reason of
        ``reason_kind`` when given) have no live decision.

        The pool's distinct pairs are counted once per finished run; the decided ones (few) are
        then found from the decisions side, so a decision costs no scan of the pool's pairs.
        """
        cur = self._cursor()
        params: dict[str, Any] = {"run": run_id}
        if reason_kind is not None:
            params["kind"] = reason_kind
            scope = ""
            if query_id is not None:
                scope, params["query_id"] = " AND s.query_id = $query_id", query_id
            with self._decided_pairs(cur, dataset_id):
                return int(cur.execute(
                    "WITH " + self._DECIDED + ", kinded AS (" + self._KINDED + scope + """)
                    SELECT count(*) FROM kinded k WHERE NOT EXISTS (
                        SELECT 1 FROM decided x WHERE x.qh = k.qh AND x.dh = k.dh)""",
                    params).fetchall()[0][0])
        if query_id is None:
            key = (self._key, run_id, "distinct pairs")
            if key not in _pool_counts_cache:
                total = int(cur.execute(
                    "SELECT count(DISTINCT (qh, dh)) FROM candidates WHERE run_id = ?",
                    [run_id]).fetchall()[0][0])
                if self.get_run(run_id).status != "done":
                    return total - self._decided_in_pool(cur, run_id, dataset_id)
                _pool_counts_cache[key] = (total, 0)
            return _pool_counts_cache[key][0] - self._decided_in_pool(cur, run_id, dataset_id)
        params["query"], params["query_id"] = self._id_hash(cur, query_id), query_id
        with self._decided_pairs(cur, dataset_id):  # the id skips other queries' row groups
            return int(cur.execute(
                "WITH " + self._DECIDED + """
                SELECT count(DISTINCT (c.qh, c.dh)) FROM candidates c
                WHERE c.run_id = $run AND c.qh = $query AND c.query_id = $query_id
                  AND NOT EXISTS (
                    SELECT 1 FROM decided x WHERE x.qh = c.qh AND x.dh = c.dh)""",
                params).fetchall()[0][0])

    def _decided_in_pool(self, cur: duckdb.DuckDBPyConnection, run_id: int,
                         dataset_id: int) -> int:
        """How many distinct (query, document) id pairs of the run's pool have a live decision."""
        with self._decided_pairs(cur, dataset_id):
            return int(cur.execute(
                "WITH " + self._DECIDED + """
                SELECT count(DISTINCT (x.qh, x.dh)) FROM decided x WHERE EXISTS (
                    SELECT 1 FROM candidates c WHERE c.run_id = ? AND c.qh = x.qh
                    AND c.dh = x.dh)""", [run_id]).fetchall()[0][0])

    def pool_pair_counts(self, run_id: int, dataset_id: int) -> tuple[int, int]:
        """(pairs, selected pairs) of a run's pool, counted by the texts' content hashes (as
        decisions are keyed). A finished run's pool does not change: counted once per process."""
        key = (self._key, run_id, dataset_id)
        if key not in _pool_counts_cache:
            row = self._cursor().execute(
                """
                SELECT count(*), count(*) FILTER (WHERE selected) FROM (
                    SELECT bool_or(c.selected) AS selected FROM candidates c
                    JOIN queries q ON q.dataset_id = $dataset AND q.query_id = c.query_id
                    JOIN documents d ON d.dataset_id = $dataset AND d.doc_id = c.doc_id
                    WHERE c.run_id = $run GROUP BY q.text_hash, d.text_hash)
                """, {"run": run_id, "dataset": dataset_id}).fetchone()
            if self.get_run(run_id).status != "done":
                return int(row[0]), int(row[1])
            _pool_counts_cache[key] = (int(row[0]), int(row[1]))
        return _pool_counts_cache[key]

    def pool_pairs_of(self, run_id: int, dataset_id: int, pairs: pd.DataFrame) -> pd.DataFrame:
        """Which of the given content-hash pairs (query_hash, doc_hash; e.g. decisions) are in a
        run's pool, and whether the run selected them.

        Columns: query_hash, doc_hash, selected; pairs outside the pool are absent.
        """
        cur = self._cursor()
        cur.register("wanted_hashes", pairs[["query_hash", "doc_hash"]].drop_duplicates())
        try:
            return cur.execute(
                """
                SELECT w.query_hash, w.doc_hash, bool_or(c.selected) AS selected
                FROM wanted_hashes w
                JOIN queries q ON q.dataset_id = $dataset AND q.text_hash = w.query_hash
                JOIN documents d ON d.dataset_id = $dataset AND d.text_hash = w.doc_hash
                JOIN candidates c ON c.run_id = $run AND c.qh = hash(q.query_id)
                    AND c.dh = hash(d.doc_id) AND c.query_id = q.query_id
                    AND c.doc_id = d.doc_id
                GROUP BY w.query_hash, w.doc_hash
                """, {"run": run_id, "dataset": dataset_id}).df()
        finally:
            cur.unregister("wanted_hashes")
