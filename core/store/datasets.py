"""Datasets, their rows and texts, the embedding cache and cached 2-D projections.

A part of ``core.store.Store`` (a mixin): it runs on the Store's connection, cursors and
transactions, and calls its other parts through ``self``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import WorkbenchError
from core.store.connection import _dataset_facts, _remember
from core.store.records import DatasetContent, DatasetInfo, quote_identifier, utc_now


class DatasetsMixin:
    """The Store's datasets, embedding cache and projections (module docstring)."""

    def add_dataset(self, content: DatasetContent) -> DatasetInfo:
        """Write a whole dataset in one transaction; an active dataset of the same name is retired.

        Runs and decisions of the retired version stay; decisions are keyed by content hash and so
        apply to the new version's identical texts.
        """
        with self._transaction() as cur:
            cur.execute(
                "UPDATE datasets SET active = false WHERE name = ? AND active", [content.name]
            )
            dataset_id = cur.execute("SELECT nextval('dataset_seq')").fetchone()[0]
            cur.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, true, ?)",
                [dataset_id, content.name, content.format, content.source, content.split,
                 utc_now()],
            )
            tables = (
                ("queries", content.queries, "query_id, text, text_hash"),
                ("documents", content.documents, "doc_id, title, text, text_hash"),
                ("positives", content.positives, "query_id, doc_id, grade, source"),
                ("given_negatives", content.given_negatives, "query_id, doc_id, source"),
            )
            for table, frame, columns in tables:
                cur.register("incoming_rows", frame)
                cur.execute(
                    f"INSERT INTO {quote_identifier(table)} SELECT ?, {columns} FROM incoming_rows",
                    [dataset_id],
                )
                cur.unregister("incoming_rows")
        return self.get_dataset(dataset_id=dataset_id)

    _DATASET_SELECT = """
        SELECT d.dataset_id, d.name, d.format, d.source, d.split, d.active, d.created_at,
               (SELECT count(*) FROM queries q WHERE q.dataset_id = d.dataset_id),
               (SELECT count(*) FROM documents x WHERE x.dataset_id = d.dataset_id),
               (SELECT count(*) FROM positives p WHERE p.dataset_id = d.dataset_id)
        FROM datasets d
    """

    def list_datasets(self, include_inactive: bool = False) -> list[DatasetInfo]:
        """Return the datasets, newest first."""
        where = "" if include_inactive else " WHERE d.active"
        rows = self._cursor().execute(
            self._DATASET_SELECT + where + " ORDER BY d.dataset_id DESC"
        ).fetchall()
        return [DatasetInfo(*row) for row in rows]

    def get_dataset(self, name: str | None = None, dataset_id: int | None = None) -> DatasetInfo:
        """Return a dataset by id, by (active) name, or the newest active one when neither is given.

        Raises:
            WorkbenchError: no such dataset, or the workspace has none.
        """
        if dataset_id is not None:
            rows = self._cursor().execute(
                self._DATASET_SELECT + " WHERE d.dataset_id = ?", [dataset_id]
            ).fetchall()
            if not rows:
                raise WorkbenchError(f"workspace {self.path} has no dataset with id {dataset_id}")
            return DatasetInfo(*rows[0])
        active = self.list_datasets()
        if not active:
            raise WorkbenchError(
                f"workspace {self.path} has no dataset yet; ingest one first "
                "(python -m core ingest --workspace W --beir DIR)"
            )
        if name is None:
            return active[0]
        for info in active:
            if info.name == name:
                return info
        names = ", ".join(sorted(i.name for i in active))
        raise WorkbenchError(f"workspace {self.path} has no dataset named {name!r} (it has: {names})")

    def dataset_name(self, dataset_id: int) -> str:
        """Return a dataset's name (cheaper than ``get_dataset``, which counts its rows).

        Raises:
            WorkbenchError: no such dataset.
        """
        key = (self._key, "name", dataset_id)
        if key not in _dataset_facts:
            row = self._cursor().execute(
                "SELECT name FROM datasets WHERE dataset_id = ?", [dataset_id]).fetchone()
            if row is None:
                raise WorkbenchError(f"workspace {self.path} has no dataset with id {dataset_id}")
            _remember(key, row[0])
        return _dataset_facts[key]

    def dataset_frame(self, dataset_id: int, table: str) -> pd.DataFrame:
        """Return one table's rows of a dataset: queries, documents, positives or given_negatives."""
        orders = {
            "queries": "query_id",
            "documents": "doc_id",
            "positives": "query_id, doc_id",
            "given_negatives": "query_id, doc_id",
        }
        if table not in orders:
            raise ValueError(f"unknown dataset table {table!r}; expected one of {sorted(orders)}")
        return self._cursor().execute(
            f"SELECT * EXCLUDE (dataset_id) FROM {quote_identifier(table)} WHERE dataset_id = ? "
            f"ORDER BY {orders[table]}",
            [dataset_id],
        ).df()

    def query_positives(self, dataset_id: int, query_id: str) -> list[str]:
        """One query's labeled positive document ids, sorted (``dataset_frame``'s order)."""
        return [r[0] for r in self._cursor().execute(
            "SELECT doc_id FROM positives WHERE dataset_id = ? AND query_id = ? ORDER BY doc_id",
            [dataset_id, query_id]).fetchall()]

    def pair_hashes(self, dataset_id: int, query_id: str, doc_id: str) -> tuple[str, str] | None:
        """Return (query hash, document hash) of a dataset's query and document, None if unknown."""
        key = (self._key, "pair", dataset_id, query_id, doc_id)
        if key not in _dataset_facts:
            row = self._cursor().execute(
                "SELECT q.text_hash, d.text_hash FROM queries q, documents d "
                "WHERE q.dataset_id = ? AND d.dataset_id = ? AND q.query_id = ? AND d.doc_id = ?",
                [dataset_id, dataset_id, query_id, doc_id],
            ).fetchone()
            if row is None:
                return None
            _remember(key, (row[0], row[1]))
        return _dataset_facts[key]

    def lookup_texts(self, dataset_id: int, table: str, ids: Sequence[str],
                     column: str = "text") -> dict[str, str]:
        """Return {id: text} for the given query ids (table 'queries') or document ids;
        ``column="text_hash"``: {id: the text's content hash}, which keys decisions."""
        id_column = {"queries": "query_id", "documents": "doc_id"}.get(table)
        if id_column is None:
            raise ValueError(f"lookup_texts reads 'queries' or 'documents', not {table!r}")
        if column not in ("text", "text_hash"):
            raise ValueError(f"lookup_texts reads 'text' or 'text_hash', not {column!r}")
        wanted = [str(i) for i in dict.fromkeys(ids)]
        # A semi-join on a list: the texts of the matching rows only are read (a join with a
        # registered frame, or an IN list of values, reads every text of the table).
        rows = self._cursor().execute(
            f"SELECT {id_column}, {column} FROM {quote_identifier(table)} WHERE dataset_id = ? "
            f"AND {id_column} IN (SELECT unnest(?::VARCHAR[]))",
            [dataset_id, wanted],
        ).fetchall()
        return dict(rows)

    def positives_of(self, dataset_id: int, query_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each given query's labeled positive document ids, sorted (``query_positives`` for
        many queries in one read); queries without one are absent."""
        rows = self._cursor().execute(
            "SELECT query_id, list(doc_id ORDER BY doc_id) FROM positives WHERE dataset_id = ? "
            "AND query_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY query_id",
            [dataset_id, [str(q) for q in dict.fromkeys(query_ids)]],
        ).fetchall()
        return {q: list(docs) for q, docs in rows}

    def register_model(self, model_fp: str, name: str, dim: int) -> None:
        """Remember a model fingerprint's name and dimension (idempotent)."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [model_fp, name, dim, utc_now()],
            )

    def cached_vectors(
        self, model_fp: str, prompt: str, hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Return the cached vectors among ``hashes`` for (model, prompt), keyed by text hash."""
        if not len(hashes):
            return {}
        cur = self._cursor()
        wanted = pd.DataFrame({"text_hash": pd.unique(pd.Series(list(hashes), dtype=str))})
        cur.register("wanted_hashes", wanted)
        rows = cur.execute(
            "SELECT e.text_hash, e.vector FROM embeddings e JOIN wanted_hashes w USING (text_hash) "
            "WHERE e.model_fp = ? AND e.prompt = ?",
            [model_fp, prompt],
        ).fetchall()
        cur.unregister("wanted_hashes")
        return {key: np.frombuffer(blob, dtype=np.float32) for key, blob in rows}

    def put_vectors(
        self, model_fp: str, prompt: str, hashes: Sequence[str], vectors: np.ndarray
    ) -> None:
        """Add vectors to the cache (one committed transaction; existing keys are left alone)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        frame = pd.DataFrame(
            {"text_hash": list(hashes), "vector": [row.tobytes() for row in vectors]}
        )
        with self._transaction() as cur:
            cur.register("new_vectors", frame)
            cur.execute(
                "INSERT INTO embeddings SELECT ?, ?, n.text_hash, n.vector FROM new_vectors n "
                "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.model_fp = ? "
                "AND e.prompt = ? AND e.text_hash = n.text_hash)",
                [model_fp, prompt, model_fp, prompt],
            )
            cur.unregister("new_vectors")

    def cached_pair_scores(self, model_fp: str, pairs: pd.DataFrame) -> pd.DataFrame:
        """The cached scores of a pair-scoring model (a cross-encoder) among ``pairs``
        (query_hash, doc_hash). Columns: query_hash, doc_hash, score; uncached pairs are absent."""
        if pairs.empty:
            return pd.DataFrame(columns=["query_hash", "doc_hash", "score"])
        cur = self._cursor()
        cur.register("wanted_pairs", pairs[["query_hash", "doc_hash"]])
        try:
            return cur.execute(
                "SELECT s.query_hash, s.doc_hash, any_value(s.score) AS score FROM pair_scores s "
                "JOIN wanted_pairs w USING (query_hash, doc_hash) WHERE s.model_fp = ? "
                "GROUP BY ALL", [model_fp]).df()
        finally:
            cur.unregister("wanted_pairs")

    def put_pair_scores(self, model_fp: str, scores: pd.DataFrame) -> None:
        """Add (query_hash, doc_hash, score) rows to the pair-score cache (one committed
        transaction; pairs already cached are left alone)."""
        if scores.empty:
            return
        with self._transaction() as cur:
            cur.register("new_scores", scores[["query_hash", "doc_hash", "score"]])
            cur.execute(
                "INSERT INTO pair_scores SELECT DISTINCT ON (n.query_hash, n.doc_hash) ?, "
                "n.query_hash, n.doc_hash, n.score FROM new_scores n WHERE NOT EXISTS ("
                "SELECT 1 FROM pair_scores s WHERE s.model_fp = ? "
                "AND s.query_hash = n.query_hash AND s.doc_hash = n.doc_hash)",
                [model_fp, model_fp])
            cur.unregister("new_scores")

    def pair_scores_among(self, hashes: Sequence[str]) -> pd.DataFrame:
        """Every pair-scoring model's cached scores of pairs whose query and document texts are
        both among ``hashes`` (for copying a dataset's scores to another workspace).
        Columns: model_fp, query_hash, doc_hash, score."""
        cur = self._cursor()
        cur.register("wanted_hashes", pd.DataFrame({"text_hash": list(dict.fromkeys(hashes))}))
        try:
            return cur.execute(
                "SELECT s.model_fp, s.query_hash, s.doc_hash, s.score FROM pair_scores s "
                "SEMI JOIN wanted_hashes q ON q.text_hash = s.query_hash "
                "SEMI JOIN wanted_hashes d ON d.text_hash = s.doc_hash").df()
        finally:
            cur.unregister("wanted_hashes")

    def count_pair_scores(self) -> int:
        """How many pair scores the cache holds (every model's)."""
        return self._cursor().execute("SELECT count(*) FROM pair_scores").fetchone()[0]

    def count_vectors(self, model_fp: str | None = None) -> int:
        """Return how many vectors the cache holds (for one model, or all)."""
        if model_fp is None:
            return self._cursor().execute("SELECT count(*) FROM embeddings").fetchone()[0]
        return self._cursor().execute(
            "SELECT count(*) FROM embeddings WHERE model_fp = ?", [model_fp]
        ).fetchone()[0]

    def put_vector_matrix(self, model_fp: str, prompt: str, hashes: Sequence[str],
                          vectors: np.ndarray) -> int:
        """Add many vectors to the cache at once (Arrow buffers, no Python object per row).

        Existing keys are left alone, as in ``put_vectors``. Returns how many rows were added.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        width = int(vectors.shape[1]) * 4
        blobs = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(vectors), [None, pa.py_buffer(vectors)]).cast(pa.binary())
        table = pa.table({"text_hash": pa.array(list(hashes), type=pa.string()), "vector": blobs})
        with self._transaction() as cur:
            cur.register("new_vector_rows", table)
            added = cur.execute(
                "INSERT INTO embeddings SELECT ?, ?, n.text_hash, n.vector FROM new_vector_rows n "
                "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.model_fp = ? "
                "AND e.prompt = ? AND e.text_hash = n.text_hash)",
                [model_fp, prompt, model_fp, prompt],
            ).fetchone()[0]
            cur.unregister("new_vector_rows")
        return int(added)

    def vector_matrix(self, model_fp: str, prompt: str, hashes: Sequence[str],
                      chunk: int = 131_072) -> tuple[np.ndarray, np.ndarray]:
        """Return (vectors aligned with ``hashes``, found mask) from the cache, ``chunk`` at a time.

        Rows of hashes the cache lacks are zero and False in the mask. The matrix has 0 columns when
        nothing was found. Memory: the matrix plus one chunk of rows in flight.
        """
        n = len(hashes)
        found = np.zeros(n, dtype=bool)
        out: np.ndarray | None = None
        cur = self._cursor()
        for start in range(0, n, chunk):
            part = list(hashes[start:start + chunk])
            wanted = pa.table({"text_hash": pa.array(part, type=pa.string()),
                               "pos": pa.array(np.arange(start, start + len(part),
                                                         dtype=np.int64))})
            cur.register("wanted_vector_rows", wanted)
            table = cur.sql(
                "SELECT w.pos, e.vector FROM wanted_vector_rows w JOIN embeddings e "
                "ON e.text_hash = w.text_hash WHERE e.model_fp = ? AND e.prompt = ?",
                params=[model_fp, prompt],
            ).to_arrow_table()
            cur.unregister("wanted_vector_rows")
            for pos, blobs in zip(table.column("pos").chunks, table.column("vector").chunks):
                if pa.types.is_large_binary(blobs.type):
                    blobs = blobs.cast(pa.binary())
                offsets = np.frombuffer(blobs.buffers()[1], dtype=np.int32)[
                    blobs.offset:blobs.offset + len(blobs) + 1]
                if not len(blobs):
                    continue
                widths = np.diff(offsets)
                if (widths != widths[0]).any() or (out is not None and
                                                   widths[0] != out.shape[1] * 4):
                    raise WorkbenchError(
                        f"the cache holds vectors of different sizes for model {model_fp}")
                if out is None:
                    out = np.zeros((n, int(widths[0]) // 4), dtype=np.float32)
                data = np.frombuffer(blobs.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
                rows = pos.to_numpy()
                out[rows] = data.view(np.float32).reshape(len(blobs), out.shape[1])
                found[rows] = True
        if out is None:
            return np.zeros((n, 0), dtype=np.float32), found
        return out, found

    def list_models(self) -> list[tuple[str, str, int]]:
        """Return (model_fp, name, dim) of every model the cache has seen, oldest first."""
        return [tuple(r) for r in self._cursor().execute(
            "SELECT model_fp, name, dim FROM models ORDER BY created_at, model_fp").fetchall()]

    def find_projection(self, dataset_id: int, model_fp: str, query_prompt: str,
                        doc_prompt: str, settings: str) -> tuple[int, int, pd.DataFrame] | None:
        """(total points, n_neighbors, points: id, kind, x, y) of a cached projection, or None."""
        cur = self._cursor()
        row = cur.execute(
            "SELECT projection_id, total, n_neighbors FROM projections WHERE dataset_id = ? "
            "AND model_fp = ? AND query_prompt = ? AND doc_prompt = ? AND settings = ? "
            "ORDER BY projection_id DESC LIMIT 1",
            [dataset_id, model_fp, query_prompt, doc_prompt, settings],
        ).fetchall()
        if not row:
            return None
        row = row[0]
        points = cur.execute(
            "SELECT id, kind, x, y FROM projection_points WHERE projection_id = ?", [row[0]]
        ).df()
        return int(row[1]), int(row[2]), points

    def put_projection(self, dataset_id: int, model_fp: str, query_prompt: str, doc_prompt: str,
                       settings: str, total: int, n_neighbors: int, seconds: float,
                       points: pd.DataFrame) -> int:
        """Cache a projection's points (columns id, kind, x, y); return its id."""
        with self._transaction() as cur:
            projection_id = cur.execute("SELECT nextval('projection_seq')").fetchone()[0]
            cur.execute(
                "INSERT INTO projections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [projection_id, dataset_id, model_fp, query_prompt, doc_prompt, settings, total,
                 n_neighbors, seconds, utc_now()],
            )
            cur.register("new_points", points[["id", "kind", "x", "y"]])
            cur.execute("INSERT INTO projection_points SELECT ?, id, kind, x, y FROM new_points",
                        [projection_id])
            cur.unregister("new_points")
        return int(projection_id)
