"""Re-mining from a stored pool: another strategy or parameters without encoding or searching.

Every finished run stores each query's candidate pool (top ``pool_depth``, deeper where it
widened) with scores and suspicion. A new request reuses the newest such run (the *base*) when
its dataset version, vectors (model fingerprint and prompts) and teacher are the same, its pool
is of the kind the strategy draws from (dense or lexical) and at least as deep as the request
needs. Selection then runs on the stored pools; a query whose selection would widen its pool
past what is stored makes the pool "too shallow", and ``mine`` searches again instead.

The new run records ``search["reused_pool_of"]`` and inherits the base's suspicion rows (the
suspicion of a candidate depends on the candidate and the base's pools, not on the strategy).

A re-ingested dataset (a new version under the same name, e.g. with 1 % more documents) cannot
reuse a pool as it is, but a dense one can be extended (``find_grown_base``, ``grown_pools``):
only the new or changed documents are scored against every query and merged into the stored
top ``depth``; queries whose text or positives changed, or whose pool held a removed or changed
document, are searched again. The pools equal a fresh search's. Suspicion is then computed
afresh over them, not inherited: BM25 evidence (IDF), the topic clusters and the percentile
references all depend on the whole corpus, so every candidate's suspicion may move a little
when documents are added, and the run stays identical to a fresh mine of the grown version.
Lexical (BM25) pools are searched again: their ranking itself depends on the corpus. A base
searched with an approximate (IVF) index stays as approximate as its recorded recall says; the
new documents are scored exactly.
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
from core.corpus import MiningCorpus, decided_pairs, load_corpus
from core.mine import (
    MineRequest, PhaseProgress, VectorSource, _given_outside, _Pools, _rng, embed_corpus,
    run_counts,
)
from core.mining import (
    MiningContext, QueryPool, Selection, Strategy, get_strategy, params_dict,
)
from core.store import RunInfo, Store


def find_reusable_run(store: Store, dataset_id: int, model_fp: str, request: MineRequest,
                      strategy: Strategy, depth: int) -> RunInfo | None:
    """The newest finished run whose stored pool can serve ``request`` (None if there is none).

    Runs from before pools recorded how they were searched (no ``search`` info) never qualify,
    nor, with a teacher, runs that did not record the teacher's kind: the same folder read as a
    cross-encoder and as a bi-encoder gives different suspicion.
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
                and run.search.get("teacher") == request.teacher
                and (request.teacher is None
                     or run.search.get("teacher_kind") == request.teacher_kind)):
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


def _stored_pools(store: Store, base: RunInfo, corpus: MiningCorpus, lexical: bool) -> _StoredPools:
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


def _pool(stored: _StoredPools, corpus: MiningCorpus, row: int, depth: int,
          pos_score: float) -> QueryPool:
    docs = stored.docs[row][:depth]
    exhausted = bool(stored.complete[row] and len(docs) == len(stored.docs[row]))
    lexical = stored.lexical[row]
    return QueryPool(corpus.query_ids[row], docs, stored.scores[row][:depth], pos_score,
                     exhausted, None if lexical is None else lexical[:depth])


def _select(strategy: Strategy, params: Any, state: Any, stored: _StoredPools, corpus: MiningCorpus,
            pos_scores: np.ndarray, k: int, depth: int,
            seed: int) -> tuple[list[QueryPool], list[Selection], int, dict[str, Any]] | None:
    """``mine``'s selection with widening served from storage; None when storage runs out."""
    pools = [_pool(stored, corpus, r, depth, float(pos_scores[r]))
             for r in range(len(corpus.query_ids))]
    state = strategy.survey(pools, k, params, state)
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
    return pools, selections, len(widened), strategy.describe(state)


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
    corpus = load_corpus(store, dataset_id)
    stored = _stored_pools(store, base, corpus, strategy.pool_source == "lexical")
    timings["load_pool"] = time.perf_counter() - t0
    q_vecs, d_vecs = embed_corpus(store, source, corpus, request, progress, timings)
    t = time.perf_counter()
    pos_scores = _positive_scores(corpus, q_vecs, d_vecs)
    ctx = MiningContext(corpus.query_ids, corpus.query_texts, q_vecs, corpus.doc_ids,
                        corpus.doc_texts, d_vecs, request.seed, corpus.positives,
                        _StoredSuspicion(stored), decided_pairs(store, corpus))
    state = strategy.prepare(ctx, params)
    chosen = _select(strategy, params, state, stored, corpus, pos_scores, k, depth, request.seed)
    if chosen is None:
        return None
    pool_list, selections, widened, choice = chosen
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
        search = {key: v for key, v in base.search.items() if key != "strategy_choice"}
        search.update(reused_pool_of=origin, **({"strategy_choice": choice} if choice else {}))
        store.finish_run(run_id, frame, timings, counts, len(corpus.query_ids), short, search,
                         suspicion_from=base.run_id)
        timings["store"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        store.set_run_timings(run_id, timings)
        return store.get_run(run_id)
    except BaseException as err:
        store.fail_run(run_id, str(err) or type(err).__name__)
        raise


def _positive_scores(corpus: MiningCorpus, q_vecs: np.ndarray, d_vecs: np.ndarray) -> np.ndarray:
    """Per query, the score of its lowest-scoring positive (as ``mine`` computes it)."""
    return np.array([float((d_vecs[p] @ q_vecs[i]).min()) if len(p) else 0.0
                     for i, p in enumerate(corpus.positives)], dtype=np.float32)


def _frame(pool_list: list[QueryPool], selections: list[Selection], stored: _StoredPools,
           corpus: MiningCorpus, depth: int, k: int, q_vecs: np.ndarray,
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


# -- a grown dataset: search only what changed ---------------------------------------------------

def find_grown_base(store: Store, dataset_id: int, model_fp: str, request: MineRequest,
                    strategy: Strategy, depth: int) -> RunInfo | None:
    """The newest run on an earlier version of this dataset (same name, re-ingested) whose stored
    pool ``grown_pools`` can extend; None when there is none or the strategy's pool is lexical
    (BM25 scores depend on the whole corpus, so every lexical pool may change)."""
    if strategy.pool_source != "dense":
        return None
    name = store.dataset_name(dataset_id)
    for info in store.list_datasets(include_inactive=True):  # newest first
        if info.name == name and info.dataset_id < dataset_id:
            run = find_reusable_run(store, info.dataset_id, model_fp, request, strategy, depth)
            if run is not None:
                return run
    return None


def _changed_documents(store: Store, base: RunInfo, corpus: MiningCorpus) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """(doc indices that are new or whose text changed since the base's dataset version; a mask
    over the corpus of those that changed)."""
    old = store.dataset_frame(base.dataset_id, "documents")
    old_hash = pd.Series(old["text_hash"].to_numpy(), index=old["doc_id"].to_numpy())
    before = old_hash.reindex(corpus.doc_ids).to_numpy()
    now = np.asarray(corpus.doc_hashes, dtype=object)
    fresh = pd.isna(before) | (before != now)
    return np.flatnonzero(fresh), fresh & ~pd.isna(before)


def _unchanged_queries(store: Store, base: RunInfo, corpus: MiningCorpus,
                       stale_doc: np.ndarray) -> np.ndarray:
    """Per query row: same text and the same positives as in the base's dataset version, with no
    positive whose text changed."""
    queries = store.dataset_frame(base.dataset_id, "queries")
    hashes = pd.Series(queries["text_hash"].to_numpy(), index=queries["query_id"].to_numpy())
    same = hashes.reindex(corpus.query_ids).to_numpy() == np.asarray(corpus.query_hashes, object)
    old = store.dataset_frame(base.dataset_id, "positives").groupby("query_id")["doc_id"]
    old_sets = {q: frozenset(d) for q, d in old}
    doc_ids = np.asarray(corpus.doc_ids, dtype=object)
    for row, positives in enumerate(corpus.positives):
        if same[row]:
            same[row] = (old_sets.get(corpus.query_ids[row]) == frozenset(doc_ids[positives])
                         and not stale_doc[positives].any())
    return same


def grown_pools(store: Store, base: RunInfo, pools: _Pools,
                depth: int) -> tuple[list[QueryPool], dict[str, Any]]:
    """Each query's top ``depth`` pool over a grown corpus from ``base``'s stored pool: the new
    documents are scored against every query and merged into it; a query whose text or
    positives changed, or whose stored pool holds a removed or changed document or is shallower
    than ``depth``, is searched again (exactly). ``pools`` is the run's ``core.mine._Pools``.

    The result equals a fresh search's pools up to the order of scores equal within float
    rounding (new documents go after stored ones that score the same). Returns the pools and
    the run's search info (the base's search, ``grown_from``, counts of what was searched).
    """
    corpus = pools.corpus
    stored = _stored_pools(store, base, corpus, lexical=False)
    new_docs, changed = _changed_documents(store, base, corpus)
    stale = np.zeros(len(corpus.doc_ids) + 1, dtype=bool)  # the last slot: removed (index -1)
    stale[np.flatnonzero(changed)] = stale[-1] = True
    keep = _unchanged_queries(store, base, corpus, stale[:-1])
    # As mine's search: 4096 queries at a time, each block fetching depth + its most exclusions.
    lengths = np.array([len(e) for e in corpus.excluded], dtype=np.int64)
    extra = np.maximum.reduceat(lengths, np.arange(0, len(lengths), 4096))
    out: list[QueryPool | None] = [None] * len(corpus.query_ids)
    for row in np.flatnonzero(keep):
        old = stored.docs[row][:depth]
        if len(old) < depth or stale[old].any():
            keep[row] = False
            continue
        out[row] = _merged(pools, row, old, new_docs, depth, int(extra[row // 4096]))
    again = np.flatnonzero(~keep)
    for start in range(0, len(again), 4096):
        for row, pool in zip(again[start:start + 4096], pools.build(again[start:start + 4096],
                                                                     depth)):
            out[row] = pool
    info = {k: v for k, v in base.search.items() if k not in ("reused_pool_of", "grown_from")}
    info.update(grown_from=base.run_id, new_documents=int(len(new_docs)),
                searched_again=int(len(again)))
    return out, info


def _merged(pools: _Pools, row: int, old: np.ndarray, new_docs: np.ndarray, depth: int,
            extra: int) -> QueryPool:
    """One query's stored top ``depth`` with the new documents that score into it."""
    corpus, q = pools.corpus, pools.q_vecs[row]
    new = new_docs[~np.isin(new_docs, corpus.excluded[row])]
    old_scores = pools.d_vecs[old] @ q
    new_scores = pools.d_vecs[new] @ q
    order = np.argsort(-new_scores, kind="stable")
    at = np.searchsorted(-old_scores, -new_scores[order], side="right")
    docs = np.insert(old, at, new[order])[:depth]
    n_docs, excluded = pools.n_docs, len(corpus.excluded[row])
    exhausted = min(n_docs, depth + extra) >= n_docs or len(docs) >= n_docs - excluded
    return QueryPool(corpus.query_ids[row], docs, (pools.d_vecs[docs] @ q).astype(np.float32),
                     float(pools.pos_scores[row]), bool(exhausted))
