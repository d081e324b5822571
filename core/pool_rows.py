"""A run's stored rows built in bulk: its candidate pool and the pool's suspicion.

Columns come from concatenated numpy arrays, and ids and texts travel as dictionary-encoded Arrow
strings (an index into the corpus's ids), so 10M candidate rows cost seconds instead of a
DataFrame and a Python string per row. ``Store.finish_run`` and ``Store.put_suspicion`` take the
tables as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from core.false_negatives.suspicion import PoolSuspicion, suspicion_rows
from core.mining import QueryPool, Selection


def strings(codes: np.ndarray, dictionary: Sequence[str] | pa.Array) -> pa.DictionaryArray:
    """A string column as indices into ``dictionary`` (no Python object per row)."""
    values = dictionary if isinstance(dictionary, pa.Array) else pa.array(
        list(dictionary), type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), values)


@dataclass(frozen=True)
class PoolLayout:
    """Where each query's stored rows lie: pool ``i`` holds rows offsets[i]:offsets[i + 1]."""

    keeps: np.ndarray
    offsets: np.ndarray

    @property
    def total(self) -> int:
        return int(self.offsets[-1])


def layout(pool_list: list[QueryPool], selections: list[Selection], store_depth: int,
           k: int) -> PoolLayout:
    """Store the top ``store_depth`` of each pool, deeper where its selection reaches (+ k)."""
    lengths = np.array([len(p) for p in pool_list], dtype=np.int64)
    deepest = np.array([int(s.selected.max()) + 1 if len(s.selected) else 0 for s in selections],
                       dtype=np.int64)
    keeps = np.minimum(lengths, np.maximum(store_depth, deepest + k))
    return PoolLayout(keeps, np.concatenate([[0], np.cumsum(keeps)]).astype(np.int64))


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def candidate_table(pool_list: list[QueryPool], selections: list[Selection], rows: PoolLayout,
                    doc_ids: pa.Array, suspicion: np.ndarray | None = None,
                    given_keys: np.ndarray | None = None) -> pa.Table:
    """The searched pool's candidate rows (columns of ``Store.finish_run``), queries in order.

    ``given_keys``: (query row x documents + doc index) of given negatives; pool rows among them
    get source "given".
    """
    keeps = rows.keeps
    doc_idx = _concat([p.doc_indices[:m] for p, m in zip(pool_list, keeps)], np.int64)
    source = np.repeat(np.array([p.lexical_scores is not None for p in pool_list], np.int32), keeps)
    if given_keys is not None and len(given_keys):
        keys = np.repeat(np.arange(len(pool_list), dtype=np.int64), keeps) * len(doc_ids) + doc_idx
        source[np.isin(keys, given_keys)] = 2
    selected = np.zeros(rows.total, dtype=bool)
    for start, m, sel in zip(rows.offsets[:-1], keeps, selections):
        chosen = sel.selected[sel.selected < m]
        selected[start + chosen] = True
    lexical_scores = _concat([
        p.lexical_scores[:m] if p.lexical_scores is not None else np.full(m, np.nan, np.float32)
        for p, m in zip(pool_list, keeps)], np.float32)
    columns = {
        "query_id": strings(np.repeat(np.arange(len(pool_list)), keeps),
                            [p.query_id for p in pool_list]),
        "doc_id": strings(doc_idx, doc_ids),
        "rank": (np.arange(rows.total) - np.repeat(rows.offsets[:-1], keeps) + 1).astype(np.int32),
        "score": _concat([p.scores[:m] for p, m in zip(pool_list, keeps)], np.float32),
        "pos_score": np.repeat(np.array([p.pos_score for p in pool_list], np.float32), keeps),
        "lexical_score": lexical_scores,
        "source": strings(source, ["search", "lexical", "given"]),
        "eligible": _concat([s.eligible[:m] for s, m in zip(selections, keeps)], bool),
        "selected": selected,
    }
    if suspicion is not None:
        columns["suspicion"] = suspicion.astype(np.float32)
    return pa.table(columns)


def suspicion_table(pool_list: list[QueryPool], results: list[PoolSuspicion], rows: PoolLayout,
                    doc_ids: pa.Array, explain_depth: int | None) -> pa.Table:
    """The pool's suspicion rows (columns of ``Store.put_suspicion``).

    Reasons and signals (JSON) are written for each pool's first ``explain_depth`` rows (all when
    None); deeper rows get "[]" and "{}": their suspicion is computed, their explanation is not.
    """
    keeps = rows.keeps
    head = keeps if explain_depth is None else np.minimum(keeps, explain_depth)
    reasons: list[str] = []
    signals: list[str] = []
    explained = np.zeros(rows.total, dtype=bool)
    for pool, result, start, m in zip(pool_list, results, rows.offsets[:-1], head):
        if m:
            part = suspicion_rows(pool.query_id, np.zeros(m, dtype=object), result, int(m))
            reasons += part["reasons"]
            signals += part["signals"]
            explained[start:start + m] = True
    columns = {
        "query_id": strings(np.repeat(np.arange(len(pool_list)), keeps),
                            [p.query_id for p in pool_list]),
        "doc_id": strings(_concat([p.doc_indices[:m] for p, m in zip(pool_list, keeps)],
                                  np.int64), doc_ids),
        "suspicion": _concat([r.suspicion[:m] for r, m in zip(results, keeps)], np.float32),
        "reasons": _explained_strings(reasons, explained, "[]"),
        "signals": _explained_strings(signals, explained, "{}"),
    }
    return pa.table(columns)


def _explained_strings(values: list[str], explained: np.ndarray, default: str) -> pa.Array:
    """Texts for the explained rows, ``default`` elsewhere, dictionary-encoded."""
    if explained.all():
        return pa.array(values, type=pa.string())
    codes, uniques = pd.factorize(np.array([default, *values], dtype=object))
    out = np.zeros(len(explained), dtype=np.int32)  # code 0 is the default
    out[explained] = codes[1:]
    return strings(out, list(uniques))


def append_rows(table: pa.Table, extra: pd.DataFrame) -> pa.Table:
    """``table`` followed by the few rows of ``extra`` (same columns), strings made plain."""
    if extra.empty:
        return table
    schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
                        for f in table.schema])
    more = pa.Table.from_pandas(extra[table.column_names], preserve_index=False)
    return pa.concat_tables([table.cast(schema), more.cast(schema)])
