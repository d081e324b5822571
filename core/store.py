"""The workspace: one DuckDB file, and the only module that holds SQL or connections.

Every value is a bound parameter; bulk rows travel as pandas frames registered under fixed names.
One connection per process and workspace, a cursor per operation (DuckDB's threading rules), so the
Streamlit sessions of one server process can share a Store.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd

from core.errors import WorkbenchError

LABELS = ("hard_negative", "false_negative", "unsure")

# Numbered migrations: entry i brings the schema from version i to i + 1. Never edit a shipped entry;
# append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE SEQUENCE dataset_seq START 1;
    CREATE TABLE datasets (
        dataset_id INTEGER PRIMARY KEY,
        name VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        split VARCHAR,
        active BOOLEAN NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE queries (
        dataset_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, text VARCHAR NOT NULL,
        text_hash VARCHAR NOT NULL
    );
    CREATE TABLE documents (
        dataset_id INTEGER NOT NULL, doc_id VARCHAR NOT NULL, title VARCHAR, text VARCHAR NOT NULL,
        text_hash VARCHAR NOT NULL
    );
    CREATE TABLE positives (
        dataset_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        grade INTEGER NOT NULL, source VARCHAR NOT NULL
    );
    CREATE TABLE given_negatives (
        dataset_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        source VARCHAR NOT NULL
    );
    CREATE TABLE models (
        model_fp VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, dim INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE embeddings (
        model_fp VARCHAR NOT NULL, prompt VARCHAR NOT NULL, text_hash VARCHAR NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE SEQUENCE run_seq START 1;
    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL,
        strategy VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        model_fp VARCHAR NOT NULL,
        query_prompt VARCHAR NOT NULL,
        doc_prompt VARCHAR NOT NULL,
        seed INTEGER NOT NULL,
        num_negatives INTEGER NOT NULL,
        pool_depth INTEGER NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        timings VARCHAR,
        filter_counts VARCHAR,
        n_queries INTEGER,
        short_queries VARCHAR,
        error VARCHAR
    );
    CREATE TABLE candidates (
        run_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        rank INTEGER, score FLOAT NOT NULL, pos_score FLOAT NOT NULL, lexical_score FLOAT,
        source VARCHAR NOT NULL, eligible BOOLEAN NOT NULL, selected BOOLEAN NOT NULL
    );
    CREATE SEQUENCE decision_seq START 1;
    CREATE TABLE decisions (
        decision_id BIGINT PRIMARY KEY,
        query_hash VARCHAR NOT NULL, doc_hash VARCHAR NOT NULL,
        query_id VARCHAR, doc_id VARCHAR, dataset VARCHAR,
        label VARCHAR NOT NULL CHECK (label IN ('hard_negative', 'false_negative', 'unsure')),
        annotator VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, note VARCHAR
    );
    CREATE TABLE retractions (
        decision_id BIGINT NOT NULL, annotator VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
    );
    CREATE VIEW latest_decisions AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT d.*, row_number() OVER (
                PARTITION BY d.query_hash, d.doc_hash ORDER BY d.decision_id DESC) AS rn
            FROM decisions d
            WHERE d.decision_id NOT IN (SELECT decision_id FROM retractions)
        ) WHERE rn = 1;
    """,
    """
    CREATE TABLE suspicion (
        run_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        suspicion FLOAT NOT NULL, reasons VARCHAR NOT NULL, signals VARCHAR NOT NULL,
        scorer VARCHAR NOT NULL, scored_at TIMESTAMP NOT NULL
    );
    """,
    # The latest decision is the newest by time (ties: by id), so workspaces that import each
    # other's decisions agree on it whichever way they merged.
    """
    CREATE OR REPLACE VIEW latest_decisions AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT d.*, row_number() OVER (
                PARTITION BY d.query_hash, d.doc_hash
                ORDER BY d.created_at DESC, d.decision_id DESC) AS rn
            FROM decisions d
            WHERE d.decision_id NOT IN (SELECT decision_id FROM retractions)
        ) WHERE rn = 1;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier (the one way identifiers built at run time reach SQL)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class DatasetInfo:
    """One ingested dataset version; ``active`` is False once a re-ingest replaced it."""

    dataset_id: int
    name: str
    format: str
    source: str
    split: str | None
    active: bool
    created_at: datetime
    n_queries: int
    n_documents: int
    n_positives: int


@dataclass(frozen=True)
class RunInfo:
    """A mining run: what was asked for, and (once done) timings and per-filter counts."""

    run_id: int
    dataset_id: int
    strategy: str
    params: dict[str, Any]
    model: str
    model_fp: str
    query_prompt: str
    doc_prompt: str
    seed: int
    num_negatives: int
    pool_depth: int
    status: str
    created_at: datetime
    finished_at: datetime | None
    timings: dict[str, float]
    filter_counts: dict[str, int]
    n_queries: int | None
    short_queries: list[str]
    error: str | None


@dataclass(frozen=True)
class Decision:
    """One annotator's label for a (query, document) pair, keyed by the texts' content hashes."""

    decision_id: int
    query_hash: str
    doc_hash: str
    query_id: str | None
    doc_id: str | None
    dataset: str | None
    label: str
    annotator: str
    created_at: datetime
    note: str | None


@dataclass(frozen=True)
class DatasetContent:
    """Validated rows of one dataset, ready to be written in a single transaction.

    Frames: queries (query_id, text, text_hash), documents (doc_id, title, text, text_hash),
    positives (query_id, doc_id, grade, source), given_negatives (query_id, doc_id, source).
    """

    name: str
    format: str
    source: str
    split: str | None
    queries: pd.DataFrame
    documents: pd.DataFrame
    positives: pd.DataFrame
    given_negatives: pd.DataFrame


_CANDIDATE_COLUMNS = (
    "query_id", "doc_id", "rank", "score", "pos_score", "lexical_score", "source", "eligible",
    "selected",
)

LOCK_WAIT_S = float(os.environ.get("WORKBENCH_LOCK_WAIT_S", "5"))
"""Seconds opening a workspace waits for another process to release it before refusing
(``$WORKBENCH_LOCK_WAIT_S``, default 5)."""
INTERRUPTED = "interrupted: the process running it stopped before the run finished"


@dataclass
class _Shared:
    """What every Store of one workspace file shares in a process: the connection and the lock
    that serialises its write transactions (reads run concurrently on their own cursors)."""

    con: duckdb.DuckDBPyConnection
    write_lock: threading.RLock


_connections: dict[str, _Shared] = {}
_connections_lock = threading.Lock()
# Runs this process is mining, per workspace: never mistaken for interrupted ones. Kept across
# close() so a reopened workspace does not fail a run that is still going.
_live_runs: dict[str, set[int]] = {}


def _open(path: Path, key: str, lock_wait: float) -> duckdb.DuckDBPyConnection:
    """Connect, waiting up to ``lock_wait`` seconds while another process holds the file."""
    deadline = time.monotonic() + lock_wait
    pause = 0.02
    while True:
        try:
            return duckdb.connect(key)
        except duckdb.IOException as err:
            first = str(err).splitlines()[0]
            if "Could not set lock" not in first:
                raise WorkbenchError(
                    f"workspace {path} could not be opened: it is not a DuckDB workspace ({first})"
                ) from err
            if time.monotonic() >= deadline:
                holder = re.search(r"PID (\d+)", first)
                who = f" (PID {holder.group(1)})" if holder else ""
                raise WorkbenchError(
                    f"workspace {path} is open in another process{who}, and a workspace can be "
                    "written by one process at a time: close the other app or command, or use "
                    "another workspace file"
                ) from err
            # Back off (with jitter, so waiting processes do not retry in step) up to 0.2 s.
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())) * (0.5 + random.random()))
            pause = min(0.2, pause * 2)


def _connect(path: Path, lock_wait: float, prepare: Callable[[_Shared], None]) -> _Shared:
    """One connection per workspace file per process (DuckDB allows one writer process).

    A new connection is ``prepare``d (migrated, interrupted runs marked) before any other thread
    of the process can use it.
    """
    key = str(path.resolve())
    with _connections_lock:
        shared = _connections.get(key)
        if shared is None:
            shared = _Shared(_open(path, key, lock_wait), threading.RLock())
            try:
                prepare(shared)
            except BaseException:
                shared.con.close()
                raise
            _connections[key] = shared
        return shared


class Store:
    """A workspace on disk. Cheap to create: instances of one file share the process's connection."""

    def __init__(self, path: str | Path, lock_wait: float | None = None) -> None:
        """Open (creating when missing) a workspace file.

        Args:
            lock_wait: seconds to wait while another process holds the file (default
                ``LOCK_WAIT_S``).

        Raises:
            WorkbenchError: a folder, not a DuckDB file, newer schema, or held by another process
                for longer than ``lock_wait``.
        """
        self.path = Path(path)
        if self.path.is_dir():
            raise WorkbenchError(f"workspace {self.path} is a directory; give a .duckdb file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = str(self.path.resolve())
        wait = LOCK_WAIT_S if lock_wait is None else lock_wait
        self._shared = _connect(self.path, wait, self._prepare)
        self._con = self._shared.con

    def _prepare(self, shared: _Shared) -> None:
        """First open in this process: migrate, then fail the runs a dead process left running."""
        self._shared, self._con = shared, shared.con
        self._migrate()
        self._fail_interrupted_runs()

    def close(self) -> None:
        """Close the process's connection to this workspace (every Store of the file)."""
        with _connections_lock:
            shared = _connections.pop(self._key, None)
        if shared is not None:
            with shared.write_lock:
                shared.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction on its own cursor; the process's writers to this file take turns,
        so read-then-write steps (undo, run recovery) cannot interleave and never conflict."""
        with self._shared.write_lock:
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                cur.close()
                raise
            cur.execute("COMMIT")
            cur.close()

    def _migrate(self) -> None:
        with self._transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise WorkbenchError(
                    f"workspace {self.path} has schema version {current}, newer than this "
                    f"program's {SCHEMA_VERSION}; upgrade the workbench"
                )
            for version in range(current, SCHEMA_VERSION):
                cur.execute(MIGRATIONS[version])
                cur.execute("INSERT INTO schema_version VALUES (?)", [version + 1])

    def schema_version(self) -> int:
        """Return the workspace's schema version."""
        return self._cursor().execute("SELECT max(version) FROM schema_version").fetchone()[0]

    # -- datasets -------------------------------------------------------------------------------
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
                [dataset_id, content.name, content.format, content.source, content.split, _now()],
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
        row = self._cursor().execute(
            "SELECT name FROM datasets WHERE dataset_id = ?", [dataset_id]).fetchone()
        if row is None:
            raise WorkbenchError(f"workspace {self.path} has no dataset with id {dataset_id}")
        return row[0]

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

    def pair_hashes(self, dataset_id: int, query_id: str, doc_id: str) -> tuple[str, str] | None:
        """Return (query hash, document hash) of a dataset's query and document, None if unknown."""
        row = self._cursor().execute(
            "SELECT q.text_hash, d.text_hash FROM queries q, documents d WHERE q.dataset_id = ? "
            "AND d.dataset_id = ? AND q.query_id = ? AND d.doc_id = ?",
            [dataset_id, dataset_id, query_id, doc_id],
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def lookup_texts(self, dataset_id: int, table: str, ids: Sequence[str]) -> dict[str, str]:
        """Return {id: text} for the given query ids (table 'queries') or document ids."""
        id_column = {"queries": "query_id", "documents": "doc_id"}.get(table)
        if id_column is None:
            raise ValueError(f"lookup_texts reads 'queries' or 'documents', not {table!r}")
        wanted = pd.DataFrame({"id": pd.unique(pd.Series(list(ids), dtype=str))})
        cur = self._cursor()
        cur.register("wanted_ids", wanted)
        rows = cur.execute(
            f"SELECT t.{id_column}, t.text FROM {quote_identifier(table)} t "
            f"JOIN wanted_ids w ON w.id = t.{id_column} WHERE t.dataset_id = ?",
            [dataset_id],
        ).fetchall()
        cur.unregister("wanted_ids")
        return dict(rows)

    # -- embedding cache ------------------------------------------------------------------------
    def register_model(self, model_fp: str, name: str, dim: int) -> None:
        """Remember a model fingerprint's name and dimension (idempotent)."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [model_fp, name, dim, _now()],
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

    def count_vectors(self, model_fp: str | None = None) -> int:
        """Return how many vectors the cache holds (for one model, or all)."""
        if model_fp is None:
            return self._cursor().execute("SELECT count(*) FROM embeddings").fetchone()[0]
        return self._cursor().execute(
            "SELECT count(*) FROM embeddings WHERE model_fp = ?", [model_fp]
        ).fetchone()[0]

    # -- runs -----------------------------------------------------------------------------------
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
        candidates: pd.DataFrame,
        timings: dict[str, float],
        filter_counts: dict[str, int],
        n_queries: int,
        short_queries: Sequence[str],
    ) -> None:
        """Store a run's candidate pool and mark it done, atomically."""
        missing = [c for c in _CANDIDATE_COLUMNS if c not in candidates.columns]
        if missing:
            raise ValueError(f"candidate frame lacks columns {missing}")
        frame = candidates[list(_CANDIDATE_COLUMNS)]
        with self._transaction() as cur:
            cur.register("new_candidates", frame)
            cur.execute(
                "INSERT INTO candidates SELECT ?, " + ", ".join(_CANDIDATE_COLUMNS)
                + " FROM new_candidates",
                [run_id],
            )
            cur.unregister("new_candidates")
            cur.execute(
                "UPDATE runs SET status = 'done', finished_at = ?, timings = ?, filter_counts = ?, "
                "n_queries = ?, short_queries = ? WHERE run_id = ?",
                [_now(), json.dumps(timings), json.dumps(filter_counts), n_queries,
                 json.dumps(list(short_queries)), run_id],
            )
        _live_runs.get(self._key, set()).discard(run_id)

    def fail_run(self, run_id: int, error: str) -> None:
        """Mark a run failed with a one-sentence reason."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
                [_now(), error, run_id],
            )
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
        return stale

    _RUN_COLUMNS = (
        "run_id, dataset_id, strategy, params, model, model_fp, query_prompt, doc_prompt, seed, "
        "num_negatives, pool_depth, status, created_at, finished_at, timings, filter_counts, "
        "n_queries, short_queries, error"
    )

    @staticmethod
    def _run_from_row(row: tuple) -> RunInfo:
        values = list(row)
        values[3] = json.loads(values[3])
        values[14] = json.loads(values[14]) if values[14] else {}
        values[15] = json.loads(values[15]) if values[15] else {}
        values[17] = json.loads(values[17]) if values[17] else []
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
        rows = self._cursor().execute(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]
        ).fetchall()
        if not rows:
            raise WorkbenchError(f"workspace {self.path} has no run {run_id}")
        return self._run_from_row(rows[0])

    def run_candidates(self, run_id: int) -> pd.DataFrame:
        """Return a run's candidate pool with hashes, each pair's latest decision and suspicion.

        ``reasons`` (JSON list) and ``signals`` (JSON object) are NULL until the run is scored.
        """
        return self._cursor().execute(
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
            WHERE c.run_id = ?
            ORDER BY c.query_id, c.rank NULLS LAST, c.score DESC
            """,
            [run_id],
        ).df()

    def put_suspicion(self, run_id: int, frame: pd.DataFrame, scorer: str) -> None:
        """Replace a run's suspicion scores (derived data) with ``frame``.

        ``frame`` columns: query_id, doc_id, suspicion, reasons (JSON text), signals (JSON text).
        """
        rows = frame[["query_id", "doc_id", "suspicion", "reasons", "signals"]]
        with self._transaction() as cur:
            cur.execute("DELETE FROM suspicion WHERE run_id = ?", [run_id])
            cur.register("new_suspicion", rows)
            cur.execute(
                "INSERT INTO suspicion SELECT ?, query_id, doc_id, suspicion, reasons, signals, "
                "?, ? FROM new_suspicion",
                [run_id, scorer, _now()],
            )
            cur.unregister("new_suspicion")

    # -- decisions ------------------------------------------------------------------------------
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
                 annotator.strip(), _now(), note],
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
                "INSERT INTO retractions VALUES (?, ?, ?)", [row[0], annotator.strip(), _now()]
            )
        return Decision(*row)

    def latest_decisions(self) -> list[Decision]:
        """Return each pair's latest live decision."""
        rows = self._cursor().execute(
            "SELECT * FROM latest_decisions ORDER BY decision_id"
        ).fetchall()
        return [Decision(*r) for r in rows]

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

    def annotation_version(self, run_id: int) -> str:
        """Return a token that changes whenever decisions or the run's suspicion scores change.

        Pages key their cached frames on it (with the run id), so a decision invalidates them.
        """
        row = self._cursor().execute(
            "SELECT (SELECT coalesce(max(decision_id), 0) FROM decisions), "
            "(SELECT count(*) FROM retractions), "
            "(SELECT count(*) FROM suspicion WHERE run_id = ?), "
            "(SELECT max(scored_at) FROM suspicion WHERE run_id = ?)",
            [run_id, run_id],
        ).fetchone()
        return "/".join(str(v) for v in row)
