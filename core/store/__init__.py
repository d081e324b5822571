"""The workspace: one DuckDB file, and the only module that holds SQL or connections.

Every value is a bound parameter; bulk rows travel as pandas frames registered under fixed names.
One connection per process and workspace, a cursor per operation (DuckDB's threading rules), so the
Streamlit sessions of one server process can share a Store.

The ``Store`` class is assembled from one part per concern (``datasets``, ``runs``, ``learning``,
``decisions``, ``review``, ``pool_counts``, ``reports``, ``audits``); this module opens the
workspace and runs its transactions.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from core.errors import WorkbenchError
from core.store.connection import (
    ENGINE_MEMORY, _connect, _connections, _connections_lock, _dataset_facts, _Shared,
    _twin_documents_cache,
)
from core.store.records import (
    INTERRUPTED, LABELS, AuditInfo, DatasetContent, DatasetInfo, Decision, PairPoolFacts, RunInfo,
    quote_identifier,
)
from core.store.schema import MIGRATIONS, SCHEMA_VERSION
from core.store.audits import AuditsMixin
from core.store.datasets import DatasetsMixin
from core.store.decisions import DecisionsMixin
from core.store.learning import LearningMixin
from core.store.pool_counts import PoolCountsMixin
from core.store.reports import ReportsMixin
from core.store.review import ReviewMixin
from core.store.runs import RunsMixin

LOCK_WAIT_S = float(os.environ.get("WORKBENCH_LOCK_WAIT_S", "5"))
"""Seconds opening a workspace waits for another process to release it before refusing
(``$WORKBENCH_LOCK_WAIT_S``, default 5)."""


class Store(DatasetsMixin, RunsMixin, LearningMixin, DecisionsMixin, ReviewMixin, PoolCountsMixin,
            ReportsMixin, AuditsMixin):
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


__all__ = ["AuditInfo", "DatasetContent", "DatasetInfo", "Decision", "INTERRUPTED", "LABELS",
           "LOCK_WAIT_S", "PairPoolFacts", "RunInfo", "SCHEMA_VERSION", "Store", "quote_identifier"]
