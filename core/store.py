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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

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
    # Scale (issue 5): how a run searched (index, nprobe, measured recall, a reused pool) as JSON;
    # each candidate's current suspicion beside it, so the review order at 10M candidates needs no
    # join of two 10M-row tables (the suspicion table stays the record, with reasons); and 2-D
    # projections cached per embedding version and settings.
    """
    ALTER TABLE runs ADD COLUMN search VARCHAR;
    ALTER TABLE candidates ADD COLUMN suspicion FLOAT;
    CREATE SEQUENCE projection_seq START 1;
    CREATE TABLE projections (
        projection_id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, model_fp VARCHAR NOT NULL,
        query_prompt VARCHAR NOT NULL, doc_prompt VARCHAR NOT NULL, settings VARCHAR NOT NULL,
        total INTEGER NOT NULL, n_neighbors INTEGER NOT NULL, seconds FLOAT NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE projection_points (
        projection_id INTEGER NOT NULL, id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        x FLOAT NOT NULL, y FLOAT NOT NULL
    );
    """,
    # Scale (issue 5): hashes of each candidate's query and document ids, so the app's queries over
    # millions of candidates join and group integers instead of decoding strings.
    """
    ALTER TABLE candidates ADD COLUMN qh UBIGINT;
    ALTER TABLE candidates ADD COLUMN dh UBIGINT;
    UPDATE candidates SET qh = hash(query_id), dh = hash(doc_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _column_names(frame: pd.DataFrame | pa.Table) -> list[str]:
    return list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)


def _select(frame: pd.DataFrame | pa.Table, columns: list[str]) -> pd.DataFrame | pa.Table:
    """Columns of a DataFrame or an Arrow table (bulk rows are registered with DuckDB as is)."""
    return frame.select(columns) if isinstance(frame, pa.Table) else frame[columns]


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
    search: dict[str, Any] = field(default_factory=dict)


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
class PairPoolFacts:
    """What one (query, document) pair's content hashes cover in a run's pool.

    Attributes:
        query_ids: the pool's queries with an id pair of these two texts (sorted).
        pairs_per_query: distinct id pairs of the pool with these two texts, per query.
        selected: whether the run selected any of them.
    """

    query_ids: tuple[str, ...]
    pairs_per_query: tuple[int, ...]
    selected: bool

    @property
    def pool_pairs(self) -> int:
        """Distinct id pairs of the pool with these two texts."""
        return sum(self.pairs_per_query)


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
ENGINE_MEMORY = os.environ.get("WORKBENCH_DUCKDB_MEMORY", "1GB")
"""DuckDB's memory limit (``$WORKBENCH_DUCKDB_MEMORY``, default 1GB; it spills to disk beyond).
Bulk data (vectors, pools) lives in numpy; DuckDB's own default of 80 % of RAM would let its
cache of a 1M-document workspace add gigabytes to a mining process."""


@dataclass
class _Shared:
    """What every Store of one workspace file shares in a process: the connection and the lock
    that serialises its write transactions (reads run concurrently on their own cursors)."""

    con: duckdb.DuckDBPyConnection
    write_lock: threading.RLock


_connections: dict[str, _Shared] = {}
_connections_lock = threading.Lock()
# (workspace, dataset id, decisions version) -> the dataset's decided pairs (see _decided_pairs).
_decided_cache: dict[tuple, pd.DataFrame] = {}
# (workspace, run id) -> RunInfo of finished runs (get_run is called several times per review
# decision); dropped on every write to the runs table.
_done_runs: dict[tuple, "RunInfo"] = {}
# (workspace, what, dataset id, ...) -> a dataset's name, a pair's text hashes: a dataset's rows
# are written once (add_dataset; a new version is a new dataset), so these never change.
_dataset_facts: dict[tuple, Any] = {}


def _remember(key: tuple, value: Any) -> None:
    if len(_dataset_facts) > 4096:
        _dataset_facts.clear()
    _dataset_facts[key] = value


# (workspace, dataset id) -> text hashes several of the dataset's documents share.
_twin_documents_cache: dict[tuple, frozenset[str]] = {}
# (workspace, run, dataset) -> (pool pairs, selected pairs) of finished runs, whose pools are fixed.
_pool_counts_cache: dict[tuple, tuple[int, int]] = {}
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
        self._con.execute("SET memory_limit = ?", [ENGINE_MEMORY])
        self._migrate()
        self._fail_interrupted_runs()

    def close(self) -> None:
        """Close the process's connection to this workspace (every Store of the file)."""
        with _connections_lock:
            shared = _connections.pop(self._key, None)
        self._forget_runs()  # a file made anew at this path starts its ids over
        for cache in (_dataset_facts, _twin_documents_cache):
            for key in [k for k in cache if k[0] == self._key]:
                cache.pop(key, None)
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

    def lookup_texts(self, dataset_id: int, table: str, ids: Sequence[str]) -> dict[str, str]:
        """Return {id: text} for the given query ids (table 'queries') or document ids."""
        id_column = {"queries": "query_id", "documents": "doc_id"}.get(table)
        if id_column is None:
            raise ValueError(f"lookup_texts reads 'queries' or 'documents', not {table!r}")
        wanted = [str(i) for i in dict.fromkeys(ids)]
        # A semi-join on a list: the texts of the matching rows only are read (a join with a
        # registered frame, or an IN list of values, reads every text of the table).
        rows = self._cursor().execute(
            f"SELECT {id_column}, text FROM {quote_identifier(table)} WHERE dataset_id = ? "
            f"AND {id_column} IN (SELECT unnest(?::VARCHAR[]))",
            [dataset_id, wanted],
        ).fetchall()
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

    # -- vectors in bulk (precomputed embeddings, large corpora) -----------------------------------
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

    # -- a run's pool, for re-mining without searching ---------------------------------------------
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

    # -- the app's queries at scale (10M candidate rows): aggregate in SQL, return little ---------
    # Decisions are few: map them onto the dataset's ids once per call (a join of the small
    # decision view with the queries and documents), register that small table on the cursor,
    # and join it to the run's candidates on the id hashes.
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
        kept = before[[k not in ids for k in zip(before["query_id"], before["doc_id"])]]
        return pd.concat([kept, now], ignore_index=True) if len(now) else kept

    def _id_hash(self, cur: duckdb.DuckDBPyConnection, value: str) -> int:
        """DuckDB's hash of an id (what candidates.qh and .dh hold)."""
        return int(cur.execute("SELECT hash(?::VARCHAR)", [value]).fetchall()[0][0])

    def review_next(self, run_id: int, dataset_id: int, k: int, limit: int = 1,
                    query_id: str | None = None, ranked_by_score: bool = True,
                    hard_only: bool = False) -> pd.DataFrame:
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
        queries' row groups.

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

    def query_hard_rows(self, run_id: int, dataset_id: int, k: int,
                        query_id: str) -> pd.DataFrame:
        """One query's undecided rows of the hard set (``review_next``'s first part, for one
        query): its k highest-scoring candidates not marked false negative or unsure, in queue
        order. One statement over the query's rows (its id skips other queries' row groups).

        Columns: query_id, doc_id, rank, score, pos_score, suspicion, hard_set.
        """
        cur = self._cursor()
        params = {"run": run_id, "k": k, "query_id": query_id}
        with self._decided_pairs(cur, dataset_id):
            return cur.execute(
                self._hard_places("", "c.qh = hash($query_id::VARCHAR) "
                                  "AND c.query_id = $query_id") + """
                SELECT query_id, doc_id, rank, score, pos_score, suspicion, true AS hard_set
                FROM rows WHERE place <= $k AND label IS NULL
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
        wanted = None if query_ids is None else sorted(set(query_ids))
        scope, scope_params = "", []
        if wanted is not None and not wanted:
            scope = " AND false"
        elif wanted is not None and len(wanted) == 1:  # a point filter the scan can push down
            scope = " AND qh = ? AND query_id BETWEEN ? AND ?"  # the id skips row groups
            scope_params = [self._id_hash(cur, wanted[0]), wanted[0], wanted[0]]
        elif wanted is not None:
            # The id range is redundant but lets DuckDB skip row groups: pools are stored query
            # by query, so a few queries' rows lie together (a preview reads them, not 10M rows).
            scope = " AND qh IN (SELECT hash(unnest(?::VARCHAR[]))) AND query_id BETWEEN ? AND ?"
            scope_params = [wanted, wanted[0], wanted[-1]]
        if mode != "decisions":
            short_queries = None  # the fast path is the default rule's
        one = scope_params[0] if wanted is not None and len(wanted) == 1 else None
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

    # -- projections (2-D maps), cached per embedding version and settings -------------------------
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
                 n_neighbors, seconds, _now()],
            )
            cur.register("new_points", points[["id", "kind", "x", "y"]])
            cur.execute("INSERT INTO projection_points SELECT ?, id, kind, x, y FROM new_points",
                        [projection_id])
            cur.unregister("new_points")
        return int(projection_id)

    def selected_doc_ids(self, run_id: int) -> list[str]:
        """The distinct documents a run selected as negatives (for any query)."""
        return [r[0] for r in self._cursor().execute(
            "SELECT DISTINCT doc_id FROM candidates WHERE run_id = ? AND selected", [run_id]
        ).fetchall()]

    def count_candidates(self, run_id: int) -> int:
        """How many candidate rows a run stored."""
        return int(self._cursor().execute(
            "SELECT count(*) FROM candidates WHERE run_id = ?", [run_id]).fetchone()[0])

    # -- the Map and Review pages at size: answers from the id hashes, never the whole pool --------
    def run_query_ids(self, run_id: int) -> list[str]:
        """The distinct queries of a run's pool, sorted (the pages' query pickers)."""
        return [r[0] for r in self._cursor().execute(
            "SELECT DISTINCT query_id FROM candidates WHERE run_id = ? ORDER BY query_id",
            [run_id]).fetchall()]

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

    def count_undecided(self, run_id: int, dataset_id: int, query_id: str | None = None) -> int:
        """How many of a run's pool pairs (of ``query_id`` when given) have no live decision.

        The pool's distinct pairs are counted once per finished run; the decided ones (few) are
        then found from the decisions side, so a decision costs no scan of the pool's pairs.
        """
        cur = self._cursor()
        params: dict[str, Any] = {"run": run_id}
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

    def candidate_reasons(self, run_id: int, pairs: pd.DataFrame) -> pd.DataFrame:
        """The suspicion reasons (JSON text) of a few (query_id, doc_id) pairs of a run.

        Columns: query_id, doc_id, reasons; unscored pairs are absent.
        """
        if pairs.empty:
            return pd.DataFrame(columns=["query_id", "doc_id", "reasons"])
        cur = self._cursor()
        cur.register("wanted_pairs", pairs[["query_id", "doc_id"]])
        try:  # the id range lets the scan skip row groups (scores are stored query by query)
            return cur.execute(
                "SELECT s.query_id, s.doc_id, s.reasons FROM suspicion s JOIN wanted_pairs w "
                "ON s.query_id = w.query_id AND s.doc_id = w.doc_id WHERE s.run_id = ? "
                "AND s.query_id BETWEEN ? AND ?",
                [run_id, pairs["query_id"].min(), pairs["query_id"].max()]).df()
        finally:
            cur.unregister("wanted_pairs")

    def reason_kinds(self, run_id: int) -> list[str]:
        """The distinct kinds of a run's suspicion reasons: each reason's words before any quote,
        number or parenthesis (``core.review_filters.reason_kind``, here in SQL), sorted."""
        return [r[0] for r in self._cursor().execute(
            r"""
            SELECT DISTINCT trim(regexp_split_to_array(reason, '\s[''"]|[(0-9]')[1]) AS kind
            FROM (SELECT unnest(from_json(reasons, '["VARCHAR"]')) AS reason FROM suspicion
                  WHERE run_id = ? AND reasons IS NOT NULL AND reasons <> '[]')
            WHERE kind <> '' ORDER BY kind""", [run_id]).fetchall()]

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

    def engine_memory_bytes(self) -> int:
        """Bytes DuckDB's buffer manager holds for this process (for memory reports)."""
        return int(self._cursor().execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone()[0])
