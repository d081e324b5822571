"""One DuckDB connection per workspace file per process, and the process-wide caches over it."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import duckdb
import pandas as pd

from core.errors import WorkbenchError
from core.store.records import RunInfo

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
_done_runs: dict[tuple, RunInfo] = {}
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
# (workspace, run) -> ((suspicion rows, last scored), the kinds of its reasons): read again only
# when the run is scored again.
_reason_kinds_cache: dict[tuple, tuple[tuple, list[str]]] = {}
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
            if "WAL" in first and "does not match" in first:
                raise WorkbenchError(
                    f"workspace {path} could not be opened: its write-ahead log {path}.wal "
                    "belongs to another database file (was the workspace replaced without its "
                    f".wal?); move {path.name}.wal aside to open the workspace as last saved"
                ) from err
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
