"""Re-mining from a stored pool: another strategy or parameters without encoding or searching.

Every finished run stores each query's candidate pool (top ``pool_depth``, deeper where it
widened) with scores and suspicion. A new request reuses the newest such run (the *base*) when
its dataset version, vectors (model fingerprint and prompts) and teacher are the same, its pool
is of the kind the strategy draws from (dense or lexical) and at least as deep as the request
needs. Selection then runs on the stored pools; a query whose selection would widen its pool
past what is stored makes the pool "too shallow", and ``mine`` searches again instead.

The new run records ``search["reused_pool_of"]`` and inherits the base's suspicion rows (the
suspicion of a candidate depends on the candidate and the base's pools, not on the strategy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core import pool_rows
from core.false_negatives.suspicion import PoolSuspicion
from core.mine import (
    MineRequest, PhaseProgress, VectorSource, _Corpus, _decisions, _given_outside, _load_corpus,
    _rng, embed_corpus, run_counts,
)
from core.mining import (
    MiningContext, QueryPool, Selection, Strategy, get_strategy, params_dict,
)
from core.store import RunInfo, Store


def find_reusable_run(store: Store, dataset_id: int, model_fp: str, request: MineRequest,
                      strategy: Strategy, depth: int) -> RunInfo | None:
    """The newest finished run whose stored pool can serve ``request`` (None if there is none).

    Runs from before pools recorded how they were searched (no ``search`` info) never qualify.
    """
    for run in store.list_runs(dataset_id):
        if run.status != "done" or not run.search or run.pool_depth < depth:
            continue
        try:
            source = get_strategy(run.strategy).pool_source
        except ValueError:
            continue
        if (run.model_fp == model_fp and run.query_prompt == request.query_prompt
                and run.doc_prompt == request.doc_prompt and source == strategy.pool_source
                and run.search.get("teacher") == request.teacher):
            return run
    return None


@dataclass(frozen=True)
class _StoredPools:
    """Each query's stored pool (rank order): doc indices, scores, lexical scores, suspicion."""

    docs: list[np.ndarray]
    scores: list[np.ndarray]
    lexical: list[np.ndarray | None]
    suspicion: list[np.ndarray]
    complete: np.ndarray  # the stored pool holds every non-excluded document
    given_suspicion: dict[tuple[str, str], float]


def _positions(column: pa.ChunkedArray, ids: list[str]) -> np.ndarray:
    """Each row's position in ``ids``, through the column's distinct values (-1 if absent)."""
    encoded = column.combine_chunks().dictionary_encode()
    where = pd.Index(ids).get_indexer(encoded.dictionary.to_pandas())
    return where[encoded.indices.to_numpy(zero_copy_only=False)]


def _stored_pools(store: Store, base: RunInfo, corpus: _Corpus, lexical: bool) -> _StoredPools:
    table = store.run_pool(base.run_id)
    q_row = _positions(table.column("query_id"), corpus.query_ids)
    d_idx = _positions(table.column("doc_id"), corpus.doc_ids).astype(np.int64)
    rank = table.column("rank").to_numpy(zero_copy_only=False)
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float32)
    lex = table.column("lexical_score").to_numpy(zero_copy_only=False).astype(np.float32)
    susp = table.column("suspicion").to_numpy(zero_copy_only=False).astype(np.float32)
    given = np.flatnonzero(np.isnan(rank.astype(np.float64)))  # outside the searched pool
    given_suspicion = {(corpus.query_ids[q_row[i]], corpus.doc_ids[d_idx[i]]): float(susp[i])
                       for i in given}
    order = np.lexsort((np.nan_to_num(rank.astype(np.float64), nan=np.inf), q_row))
    order = order[~np.isnan(rank.astype(np.float64))[order]]
    q_row, d_idx, scores, lex, susp = (a[order] for a in (q_row, d_idx, scores, lex, susp))
    n = len(corpus.query_ids)
    bounds = np.searchsorted(q_row, np.arange(n + 1))
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(n)]
    n_docs = len(corpus.doc_ids)
    complete = np.array([s.stop - s.start >= n_docs - len(e)
                         for s, e in zip(slices, corpus.excluded)], dtype=bool)
    return _StoredPools([d_idx[s] for s in slices], [scores[s] for s in slices],
                        [lex[s] if lexical else None for s in slices],
                        [susp[s] for s in slices], complete, given_suspicion)


class _StoredSuspicion:
    """The base run's suspicion, served where strategies ask the run's scorer."""

    def __init__(self, stored: _StoredPools) -> None:
        self.stored = stored

    def score(self, row: int, docs: np.ndarray, scores: np.ndarray, pos: float) -> PoolSuspicion:
        values = self.stored.suspicion[row][:len(docs)]
        return PoolSuspicion(np.nan_to_num(values, nan=0.0), {}, [[]] * len(docs))


def _pool(stored: _StoredPools, corpus: _Corpus, row: int, depth: int,
          pos_score: float) -> QueryPool:
    docs = stored.docs[row][:depth]
    exhausted = bool(stored.complete[row] and len(docs) == len(stored.docs[row]))
    lexical = stored.lexical[row]
    return QueryPool(corpus.query_ids[row], docs, stored.scores[row][:depth], pos_score,
                     exhausted, None if lexical is None else lexical[:depth])


def _select(strategy: Strategy, params: Any, state: Any, stored: _StoredPools, corpus: _Corpus,
            pos_scores: np.ndarray, k: int, depth: int,
            seed: int) -> tuple[list[QueryPool], list[Selection], int] | None:
    """``mine``'s selection with widening served from storage; None when storage runs out."""
    pools = [_pool(stored, corpus, r, depth, float(pos_scores[r]))
             for r in range(len(corpus.query_ids))]
    selections = [strategy.select(p, k, params, state, _rng(seed, p.query_id)) for p in pools]
    widened: set[int] = set()
    n_docs = len(corpus.doc_ids)
    while strategy.widens:
        short = [i for i, (p, s) in enumerate(zip(pools, selections))
                 if len(s.selected) < k and not p.exhausted]
        if not short:
            break
        depth = min(n_docs, depth * 4)
        for i in short:
            if len(stored.docs[i]) < depth and not stored.complete[i]:
                return None  # the stored pool is too shallow for this query
            widened.add(i)
            pools[i] = _pool(stored, corpus, i, depth, float(pos_scores[i]))
            rng = _rng(seed, pools[i].query_id)
            selections[i] = strategy.select(pools[i], k, params, state, rng)
    return pools, selections, len(widened)


def remine(store: Store, request: MineRequest, strategy: Strategy, params: Any,
           source: VectorSource, depth: int, dataset_id: int,
           progress: PhaseProgress | None = None) -> RunInfo | None:
    """Mine from a reusable run's stored pool; None when there is none or it is too shallow."""
    base = find_reusable_run(store, dataset_id, source.fingerprint, request, strategy, depth)
    if base is None:
        return None
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    k = request.num_negatives
    corpus = _load_corpus(store, dataset_id)
    stored = _stored_pools(store, base, corpus, strategy.pool_source == "lexical")
    timings["load_pool"] = time.perf_counter() - t0
    q_vecs, d_vecs = embed_corpus(store, source, corpus, request, progress, timings)
    t = time.perf_counter()
    pos_scores = _positive_scores(corpus, q_vecs, d_vecs)
    ctx = MiningContext(corpus.query_ids, corpus.query_texts, q_vecs, corpus.doc_ids,
                        corpus.doc_texts, d_vecs, request.seed, corpus.positives,
                        _StoredSuspicion(stored), _decisions(store, corpus))
    state = strategy.prepare(ctx, params)
    chosen = _select(strategy, params, state, stored, corpus, pos_scores, k, depth, request.seed)
    if chosen is None:
        return None
    pool_list, selections, widened = chosen
    if progress:
        progress("mine", len(pool_list), len(pool_list))
    timings["mine"] = time.perf_counter() - t
    run_id = store.create_run(
        dataset_id, strategy.name, params_dict(params), source.name, source.fingerprint,
        request.query_prompt, request.doc_prompt, request.seed, k, depth,
    )
    try:
        t = time.perf_counter()
        frame = _frame(pool_list, selections, stored, corpus, depth, k, q_vecs, d_vecs)
        counts, short = run_counts(corpus, pool_list, selections, k, widened)
        origin = base.search.get("reused_pool_of", base.run_id)  # the run that searched
        search = {**base.search, "reused_pool_of": origin}
        store.finish_run(run_id, frame, timings, counts, len(corpus.query_ids), short, search,
                         suspicion_from=base.run_id)
        timings["store"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        store.set_run_timings(run_id, timings)
        return store.get_run(run_id)
    except BaseException as err:
        store.fail_run(run_id, str(err) or type(err).__name__)
        raise


def _positive_scores(corpus: _Corpus, q_vecs: np.ndarray, d_vecs: np.ndarray) -> np.ndarray:
    """Per query, the score of its lowest-scoring positive (as ``mine`` computes it)."""
    return np.array([float((d_vecs[p] @ q_vecs[i]).min()) if len(p) else 0.0
                     for i, p in enumerate(corpus.positives)], dtype=np.float32)


def _frame(pool_list: list[QueryPool], selections: list[Selection], stored: _StoredPools,
           corpus: _Corpus, depth: int, k: int, q_vecs: np.ndarray,
           d_vecs: np.ndarray) -> pa.Table:
    """The new run's candidate rows, with the stored suspicion beside them."""
    rows = pool_rows.layout(pool_list, selections, depth, k)
    suspicion = np.concatenate([stored.suspicion[i][:m] for i, m in enumerate(rows.keeps)]) \
        if len(pool_list) else np.zeros(0, np.float32)
    given, given_keys = _given_outside(pool_list, rows, corpus, q_vecs, d_vecs)
    frame = pool_rows.candidate_table(pool_list, selections, rows,
                                      pa.array(corpus.doc_ids, type=pa.string()), suspicion,
                                      given_keys)
    if given.empty:
        return frame
    values = []
    for q, d, qi, di in zip(given["query_id"], given["doc_id"], given["q_row"], given["d_idx"]):
        inside = np.flatnonzero(stored.docs[qi] == di)  # in the base's pool, past the new rows
        values.append(stored.suspicion[qi][inside[0]] if len(inside)
                      else stored.given_suspicion.get((q, d), np.nan))
    return pool_rows.append_rows(frame, given.assign(suspicion=np.array(values, np.float32)))
