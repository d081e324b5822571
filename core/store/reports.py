"""What the app's pages and the export read from a run: margins, overlaps, negatives, statistics.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

from typing import Any, Sequence

import duckdb
import pandas as pd


class ReportsMixin:
    """The Store's reads for pages and export (module docstring)."""

    def margin_histogram(self, run_id: int, dataset_id: int, bins: int,
                         selected_only: bool = True) -> pd.DataFrame:
        """Counts of margins (pos_score - score) in ``bins`` equal bins, per decision.

        Columns: bin (0-based), lo, hi (the bin's edges), decision ("undecided" when none), count.
        """
        cur = self._cursor()
        lo, hi = cur.execute(
            "SELECT min(pos_score - score), max(pos_score - score) FROM candidates "
            "WHERE run_id = ? AND (selected OR NOT ?)", [run_id, selected_only]).fetchall()[0]
        if lo is None:
            return pd.DataFrame(columns=["bin", "lo", "hi", "decision", "count"])
        span = max(float(hi) - float(lo), 1e-9) / bins
        with self._decided_pairs(cur, dataset_id):
            frame = cur.execute(
                "WITH " + self._DECIDED + """
                SELECT least(CAST(floor((c.pos_score - c.score - $lo) / $span) AS INTEGER),
                             $bins - 1) AS bin,
                       coalesce(x.label, 'undecided') AS decision, count(*) AS count
                FROM candidates c LEFT JOIN decided x ON x.qh = c.qh AND x.dh = c.dh
                WHERE c.run_id = $run AND (c.selected OR NOT $selected)
                GROUP BY ALL ORDER BY bin, decision
                """,
                {"run": run_id, "bins": bins, "selected": selected_only, "lo": float(lo),
                 "span": span},
            ).df()
        frame.insert(1, "lo", float(lo) + frame["bin"] * span)
        frame.insert(2, "hi", float(lo) + (frame["bin"] + 1) * span)
        return frame

    def selected_overlap(self, run_a: int, run_b: int, dataset_id: int) -> pd.DataFrame:
        """Per query, the negatives two runs of one dataset selected: in a, in b, in both.

        Pairs are matched on the id hashes (integers), then named from the dataset's queries.
        Columns: query_id, in_a, in_b, in_both.
        """
        return self._cursor().execute(
            """
            WITH a AS (SELECT qh, dh FROM candidates WHERE run_id = $a AND selected),
                 b AS (SELECT qh, dh FROM candidates WHERE run_id = $b AND selected),
                 na AS (SELECT qh, count(*) AS n FROM a GROUP BY qh),
                 nb AS (SELECT qh, count(*) AS n FROM b GROUP BY qh),
                 nab AS (SELECT qh, count(*) AS n FROM a JOIN b USING (qh, dh) GROUP BY qh),
                 names AS (SELECT query_id, hash(query_id) AS qh FROM queries
                           WHERE dataset_id = $dataset),
                 counts AS (
                     SELECT coalesce(na.qh, nb.qh) AS qh, coalesce(na.n, 0) AS in_a,
                            coalesce(nb.n, 0) AS in_b
                     FROM na FULL OUTER JOIN nb ON na.qh = nb.qh)
            SELECT names.query_id, counts.in_a, counts.in_b, coalesce(nab.n, 0) AS in_both
            FROM counts JOIN names USING (qh) LEFT JOIN nab USING (qh)
            ORDER BY names.query_id
            """,
            {"a": run_a, "b": run_b, "dataset": dataset_id},
        ).df()

    EXPORT_MODES = ("decisions", "only_reviewed", "selection")

    def export_negatives(self, run_id: int, dataset_id: int, k: int,
                         query_ids: Sequence[str] | None = None,
                         short_queries: Sequence[str] | None = None,
                         with_text: bool = True, mode: str = "decisions") -> pd.DataFrame:
        """The negatives an export takes, chosen in SQL (see ``core.export``).

        ``mode`` "decisions" (the default export): per query, reviewed hard negatives (by score),
        then the run's selection, then eligible candidates (rank order), never a pair marked false
        negative or unsure nor a positive; the first k. Given ``short_queries`` (the run's, when k
        is at most the run's k), a query without decisions and not short keeps its selection in
        rank order (mining never puts a positive in a pool); only the others, found by their id
        hashes, go through the rule. "only_reviewed": reviewed hard negatives only. "selection":
        the run's selection in rank order, decisions ignored (positives still never).

        Columns: query_id, doc_id, score, tier (0 reviewed, 1 selected, 2 refill), idx (1-based),
        and text unless ``with_text`` is False; a query's rows are together, in idx order.
        """
        if mode not in self.EXPORT_MODES:
            raise ValueError(f"unknown export mode {mode!r}; expected one of {self.EXPORT_MODES}")
        cur = self._cursor()
        scope, scope_params = self._query_scope(cur, query_ids)
        if mode != "decisions":
            short_queries = None  # the fast path is the default rule's
        one = scope_params[0] if query_ids is not None and len(set(query_ids)) == 1 else None
        with self._decided_pairs(cur, dataset_id):
            return self._export_negatives(cur, run_id, dataset_id, k, scope, scope_params,
                                          short_queries, with_text, mode, one)

    def _export_negatives(self, cur: duckdb.DuckDBPyConnection, run_id: int, dataset_id: int,
                          k: int, scope: str, scope_params: list, short_queries: Sequence[str] |
                          None, with_text: bool, mode: str,
                          one_query: int | None = None) -> pd.DataFrame:
        affected = [r[0] for r in cur.execute(
            "WITH " + self._DECIDED + " SELECT DISTINCT qh FROM decided "
            "UNION SELECT hash(unnest(?::VARCHAR[]))",
            [list(short_queries or [])]).fetchall() if r[0] is not None]
        if one_query is not None:  # one query's hash: the others' change nothing
            affected = [h for h in affected if h == one_query]
        parts = []
        if short_queries is not None:
            parts.append(cur.execute(
                "SELECT query_id, doc_id, score, 1 AS tier, idx FROM ("
                " SELECT query_id, doc_id, score, qh, row_number() OVER ("
                "  PARTITION BY qh ORDER BY rank) AS idx FROM candidates"
                " WHERE run_id = ? AND selected" + scope
                + " AND NOT list_contains(?::UBIGINT[], qh)) WHERE idx <= ? ORDER BY qh, idx",
                [run_id, *scope_params, affected, k]).df())
        rule_scope, rule_params = "", []
        if short_queries is not None:
            rule_scope = f" AND c.qh IN ({', '.join('?' * len(affected))})" if affected \
                else " AND false"
            rule_params = affected
        # Literals from ``mode`` (never user text): whether decisions apply, and the tiers kept.
        decisions = "false" if mode == "selection" else "true"
        tiers = {"decisions": "3", "only_reviewed": "1", "selection": "2"}[mode]
        parts.append(cur.execute(
            "WITH " + self._DECIDED + """,
            usable AS (
                SELECT c.query_id, c.doc_id, c.score,
                       CASE WHEN """ + decisions + """ AND x.label = 'hard_negative' THEN 0
                            WHEN c.selected THEN 1 WHEN """ + decisions + """ AND c.eligible THEN 2
                            ELSE 3 END AS tier,
                       CASE WHEN """ + decisions + """ AND x.label = 'hard_negative' THEN 0
                            ELSE c.rank END AS rank
                FROM candidates c LEFT JOIN decided x ON x.qh = c.qh AND x.dh = c.dh
                WHERE c.run_id = ?""" + scope.replace("qh", "c.qh", 1).replace(
                    "query_id BETWEEN", "c.query_id BETWEEN") + rule_scope + """
                  AND (NOT """ + decisions + """ OR x.label IS NULL
                       OR x.label NOT IN ('false_negative', 'unsure')))
            SELECT * FROM (
                SELECT query_id, doc_id, score, tier, row_number() OVER (
                    PARTITION BY query_id ORDER BY tier, rank NULLS LAST, score DESC, doc_id
                ) AS idx
                FROM usable u
                WHERE tier < """ + tiers + """ AND NOT EXISTS (
                    SELECT 1 FROM positives p WHERE p.dataset_id = ? AND p.query_id = u.query_id
                    AND p.doc_id = u.doc_id)
                QUALIFY row_number() OVER (  -- a document in the pool twice counts once
                    PARTITION BY query_id, doc_id ORDER BY tier, rank NULLS LAST, score DESC) = 1)
            WHERE idx <= ? ORDER BY query_id, idx
            """, [run_id, *scope_params, *rule_params, dataset_id, k]).df())
        frame = pd.concat([p for p in parts if not p.empty] or parts[-1:], ignore_index=True)
        if with_text and not frame.empty:
            cur.register("chosen_docs", pd.DataFrame({"doc_id": frame["doc_id"].unique()}))
            texts = cur.execute(
                "SELECT d.doc_id, d.text FROM documents d JOIN chosen_docs c USING (doc_id) "
                "WHERE d.dataset_id = ?", [dataset_id]).df()
            cur.unregister("chosen_docs")
            frame["text"] = frame["doc_id"].map(texts.set_index("doc_id")["text"])
        elif with_text:
            frame["text"] = pd.Series(dtype=object)
        return frame

    def export_queries(self, run_id: int, dataset_id: int,
                       limit: int | None = None) -> pd.DataFrame:
        """The dataset's queries that have a positive, with their text and the run's pos_score.

        Columns: query_id, text, pos_score (NULL for a query without candidates), by query_id;
        the first ``limit`` of them when given.
        """
        cur = self._cursor()
        queries = cur.execute(
            """SELECT q.query_id, q.text FROM queries q WHERE q.dataset_id = ? AND EXISTS (
                   SELECT 1 FROM positives p WHERE p.dataset_id = ? AND p.query_id = q.query_id)
               ORDER BY q.query_id LIMIT ?""", [dataset_id, dataset_id, limit]).df()
        range_ = ""  # as in export_negatives: lets a few queries' scores skip most row groups
        params = [run_id]
        if limit is not None and len(queries):
            range_ = " AND query_id BETWEEN ? AND ?"
            params += [queries["query_id"].iloc[0], queries["query_id"].iloc[-1]]
        scores = cur.execute(
            "SELECT qh, max(pos_score) AS pos_score FROM candidates WHERE run_id = ?" + range_
            + " GROUP BY qh", params).df()
        cur.register("export_query_ids", queries[["query_id"]])
        hashes = cur.execute("SELECT hash(query_id) AS qh FROM export_query_ids").df()
        cur.unregister("export_query_ids")
        return queries.assign(pos_score=hashes["qh"].map(
            scores.set_index("qh")["pos_score"]).astype(float).to_numpy())

    def export_pool_facts(self, run_id: int, dataset_id: int,
                          query_ids: Sequence[str] | None = None) -> tuple[int, pd.DataFrame]:
        """What an export counts about a run's pool: (pairs that are dataset positives, the
        decided pairs of the pool that are not positives: query_id, doc_id, score, label).

        Decided pairs are few (people make them), so they are found from the decisions side on
        the id hashes; ``query_ids`` limits both answers to those queries.
        """
        cur = self._cursor()
        scope, named = "", {"run": run_id, "dataset": dataset_id}
        if query_ids is not None and len(query_ids):
            wanted = sorted(set(query_ids))
            scope = (" AND c.qh IN (SELECT hash(unnest($wanted::VARCHAR[])))"
                     " AND c.query_id BETWEEN $first AND $last")  # see export_negatives
            named.update(wanted=wanted, first=wanted[0], last=wanted[-1])
        elif query_ids is not None:
            scope = " AND false"
        positive = """EXISTS (SELECT 1 FROM positives p WHERE p.dataset_id = $dataset
                       AND p.query_id = c.query_id AND p.doc_id = c.doc_id)"""
        n_positive = cur.execute(
            """SELECT count(*) FROM candidates c
               JOIN (SELECT DISTINCT hash(query_id) AS qh, hash(doc_id) AS dh FROM positives
                     WHERE dataset_id = $dataset) p ON p.qh = c.qh AND p.dh = c.dh
               WHERE c.run_id = $run AND """ + positive + scope, named).fetchall()[0][0]
        with self._decided_pairs(cur, dataset_id):
            decided = cur.execute(
                "WITH " + self._DECIDED + """
                SELECT c.query_id, c.doc_id, max(c.score) AS score, any_value(x.label) AS label
                FROM decided x JOIN candidates c ON c.qh = x.qh AND c.dh = x.dh
                WHERE c.run_id = $run AND c.query_id = x.query_id AND c.doc_id = x.doc_id
                  AND NOT """ + positive + scope + """
                GROUP BY c.query_id, c.doc_id ORDER BY c.query_id, c.doc_id""", named).df()
        return int(n_positive), decided

    def pool_hardest(self, run_id: int, dataset_id: int, k: int,
                     query_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Per query of the run (of ``query_ids`` only, when given): the mean score of its k
        highest-scoring pool candidates that are not dataset positives, each document once: what
        plain top-k takes from this pool, whatever is suspected or decided.

        Columns: query_id, hardest, n (candidates averaged, k unless the pool is smaller).
        """
        cur = self._cursor()
        scope, params = self._query_scope(cur, query_ids, "c.")
        return cur.execute(
            """
            SELECT query_id, avg(score) AS hardest, count(*) AS n FROM (
                SELECT c.query_id, max(c.score) AS score,
                       row_number() OVER (PARTITION BY c.query_id ORDER BY max(c.score) DESC,
                                          c.doc_id) AS place
                FROM candidates c
                WHERE c.run_id = ?""" + scope + """ AND NOT EXISTS (
                    SELECT 1 FROM positives p WHERE p.dataset_id = ?
                    AND p.query_id = c.query_id AND p.doc_id = c.doc_id)
                GROUP BY c.query_id, c.doc_id)
            WHERE place <= ? GROUP BY query_id ORDER BY query_id
            """, [run_id, *params, dataset_id, k]).df()

    def document_stats(self, run_id: int, dataset_id: int) -> pd.DataFrame:
        """Per document of a run's pool: selected for any query, its highest suspicion, and the
        most cautious latest decision on any of its pairs (false negative, unsure, hard negative).

        Columns: doc_id, selected, suspicion (NaN when unscored), decision (None: undecided).
        """
        cur = self._cursor()
        with self._decided_pairs(cur, dataset_id):
            return cur.execute(
                "WITH " + self._DECIDED + """
                SELECT any_value(c.doc_id) AS doc_id, bool_or(c.selected) AS selected,
                       max(c.suspicion) AS suspicion,
                       CASE min(CASE x.label WHEN 'false_negative' THEN 0 WHEN 'unsure' THEN 1
                                             WHEN 'hard_negative' THEN 2 END)
                           WHEN 0 THEN 'false_negative' WHEN 1 THEN 'unsure'
                           WHEN 2 THEN 'hard_negative' END AS decision
                FROM candidates c LEFT JOIN decided x ON x.qh = c.qh AND x.dh = c.dh
                WHERE c.run_id = ? GROUP BY c.dh""", [run_id]).df()

    def query_selected(self, run_id: int, query_id: str) -> pd.DataFrame:
        """One query's selected negatives in a run: doc_id, rank, score, selected (rank order)."""
        cur = self._cursor()
        return cur.execute(
            "SELECT doc_id, rank, score, selected FROM candidates WHERE run_id = ? AND qh = ? "
            "AND query_id = ? AND selected ORDER BY rank NULLS LAST, score DESC",
            [run_id, self._id_hash(cur, query_id), query_id]).df()

    def selection_pairs(self, run_id: int, dataset_id: int, doc_ids: Sequence[str],
                        query_ids: Sequence[str], query_id: str | None) -> pd.DataFrame:
        """The pool pairs of ``doc_ids`` (with ``query_id``, else where selected) and the selected
        pairs of ``query_ids`` (see ``core.map_view.selection_pairs``).

        Columns: query_id, doc_id, score, selected, decision; pool order, each pair once.
        """
        cur = self._cursor()
        params: dict[str, Any] = {"run": run_id, "docs": sorted(set(doc_ids)),
                                  "queries": sorted(set(query_ids))}
        doc_scope = "c.selected"
        if query_id is not None:
            doc_scope, params["query"] = "c.qh = $query", self._id_hash(cur, query_id)
        with self._decided_pairs(cur, dataset_id):
            frame = cur.execute(
                "WITH " + self._DECIDED + """,
                d AS (SELECT DISTINCT hash(unnest($docs::VARCHAR[])) AS h),
                q AS (SELECT DISTINCT hash(unnest($queries::VARCHAR[])) AS h)
                SELECT c.query_id, c.doc_id, c.score, c.selected, x.label AS decision
                FROM candidates c LEFT JOIN decided x ON x.qh = c.qh AND x.dh = c.dh
                WHERE c.run_id = $run AND ((c.dh IN (SELECT h FROM d) AND """ + doc_scope + """)
                      OR (c.qh IN (SELECT h FROM q) AND c.selected))
                ORDER BY c.query_id, c.rank NULLS LAST, c.score DESC""", params).df()
        wanted = set(doc_ids)
        keep = frame["doc_id"].isin(wanted) & (frame["query_id"].eq(query_id) if query_id
                                               is not None else frame["selected"])
        keep |= frame["query_id"].isin(set(query_ids)) & frame["selected"]  # hash collisions
        return frame[keep].drop_duplicates(["query_id", "doc_id"]).reset_index(drop=True)

    def engine_memory_bytes(self) -> int:
        """Bytes DuckDB's buffer manager holds for this process (for memory reports)."""
        return int(self._cursor().execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone()[0])
