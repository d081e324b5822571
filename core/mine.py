"""A mining run end to end: embed (cached), search, build each query's pool, select, store.

The whole candidate pool is stored with the run (default the top 100 non-positives per query, with
scores and the positive's score) so margins, what-ifs and review never need to search again.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from core.embed import embed_texts, load_encoder, model_cache_dir
from core.errors import WorkbenchError
from core.false_negatives.base import DetectionContext
from core.false_negatives.suspicion import Scorer, suspicion_rows
from core.false_negatives.teacher import load_teacher
from core.lexical import LexicalIndex
from core.mining import (
    MiningContext, QueryPool, Selection, Strategy, get_strategy, params_dict, parse_params,
)
from core.search import build_index, search
from core.store import RunInfo, Store

DEFAULT_POOL_DEPTH = 100

PhaseProgress = Callable[[str, int, int], None]
"""Called as progress(phase, done, total); phases: encode queries, encode documents, search, mine."""


@dataclass(frozen=True)
class MineRequest:
    """What to mine. ``params`` are the strategy's own (strings are converted, as from the CLI)."""

    strategy: str
    num_negatives: int = 5
    params: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    model: str | None = None
    query_prompt: str = ""
    doc_prompt: str = ""
    seed: int = 0
    pool_depth: int = DEFAULT_POOL_DEPTH
    batch_size: int = 64
    teacher: str | None = None
    teacher_kind: str = "cross-encoder"
    # How the model encodes (core.backends): torch (fp32, the reference), torch-bf16, onnx or
    # onnx-int8. Built models are cached beside the workspace; each backend has its own vectors.
    backend: str = "torch"


@dataclass(frozen=True)
class _Corpus:
    query_ids: list[str]
    query_texts: list[str]
    doc_ids: list[str]
    doc_texts: list[str]
    excluded: list[np.ndarray]      # per query: positives and exact duplicates of a positive
    positives: list[np.ndarray]     # per query: labeled positives
    duplicate_count: int
    given: pd.DataFrame
    query_hashes: list[str]
    doc_hashes: list[str]


def _load_corpus(store: Store, dataset_id: int) -> _Corpus:
    queries = store.dataset_frame(dataset_id, "queries")
    documents = store.dataset_frame(dataset_id, "documents")
    positives = store.dataset_frame(dataset_id, "positives")
    if documents.empty:
        raise WorkbenchError("the dataset has no documents to mine from")
    doc_index = pd.Series(np.arange(len(documents)), index=documents["doc_id"])
    by_hash = documents.groupby("text_hash").indices
    pos_groups = positives.groupby("query_id")["doc_id"].agg(list)
    queries = queries[queries["query_id"].isin(pos_groups.index)].reset_index(drop=True)
    if queries.empty:
        raise WorkbenchError("the dataset has no query with a positive; nothing to mine")
    hashes = documents["text_hash"].to_numpy()
    excluded, pos_lists, duplicates = [], [], 0
    for query_id in queries["query_id"]:
        pos = doc_index[pos_groups[query_id]].to_numpy()
        same = np.unique(np.concatenate([by_hash[h] for h in hashes[pos]]))
        duplicates += len(same) - len(np.unique(pos))
        excluded.append(same)
        pos_lists.append(pos)
    return _Corpus(
        queries["query_id"].tolist(), queries["text"].tolist(), documents["doc_id"].tolist(),
        documents["text"].tolist(), excluded, pos_lists, duplicates,
        store.dataset_frame(dataset_id, "given_negatives"), queries["text_hash"].tolist(),
        documents["text_hash"].tolist(),
    )


def _decisions(store: Store, corpus: _Corpus) -> dict[tuple[int, int], str]:
    """Latest decisions on this corpus's pairs, keyed by (query row, doc index)."""
    latest = store.latest_decisions()
    if not latest:
        return {}
    q_rows: dict[str, list[int]] = {}
    for i, h in enumerate(corpus.query_hashes):
        q_rows.setdefault(h, []).append(i)
    d_rows: dict[str, list[int]] = {}
    for i, h in enumerate(corpus.doc_hashes):
        d_rows.setdefault(h, []).append(i)
    out: dict[tuple[int, int], str] = {}
    for d in latest:
        for q in q_rows.get(d.query_hash, ()):
            for doc in d_rows.get(d.doc_hash, ()):
                out[(q, doc)] = d.label
    return out


def _rng(seed: int, query_id: str) -> np.random.Generator:
    """Per-query generator: selections do not depend on query order or on widening."""
    return np.random.default_rng([seed, zlib.crc32(query_id.encode("utf-8"))])


class _Pools:
    """Builds query pools from dense or lexical search, excluding positives, at any depth."""

    def __init__(self, corpus: _Corpus, q_vecs: np.ndarray, d_vecs: np.ndarray, lexical: bool):
        self.corpus, self.q_vecs, self.d_vecs = corpus, q_vecs, d_vecs
        self.n_docs = d_vecs.shape[0]
        self.lexical = LexicalIndex(corpus.doc_texts) if lexical else None
        self.index = None if lexical else build_index(d_vecs)
        self.pos_scores = np.array([
            float((d_vecs[p] @ q_vecs[i]).min()) for i, p in enumerate(corpus.positives)
        ], dtype=np.float32)

    def build(self, rows: np.ndarray, depth: int) -> list[QueryPool]:
        extra = max(len(self.corpus.excluded[r]) for r in rows)
        fetch = min(self.n_docs, depth + extra)
        if self.lexical is not None:
            texts = [self.corpus.query_texts[r] for r in rows]
            lex, ids = self.lexical.search(texts, fetch)
        else:
            _, ids = search(self.index, self.q_vecs[rows], fetch)
            lex = None
        pools = []
        for j, row in enumerate(rows):
            keep = ~np.isin(ids[j], self.corpus.excluded[row])
            doc_idx = ids[j][keep][:depth]
            dense = self.d_vecs[doc_idx] @ self.q_vecs[row]
            exhausted = fetch >= self.n_docs or len(doc_idx) >= self.n_docs - len(
                self.corpus.excluded[row])
            pools.append(QueryPool(
                self.corpus.query_ids[row], doc_idx, dense.astype(np.float32),
                float(self.pos_scores[row]), bool(exhausted),
                None if lex is None else lex[j][keep][:depth],
            ))
        return pools


def _initial_pools(pools: _Pools, depth: int, progress: PhaseProgress | None) -> list[QueryPool]:
    n = len(pools.corpus.query_ids)
    rows = np.arange(n)
    out: list[QueryPool] = []
    for start in range(0, n, 4096):
        out.extend(pools.build(rows[start:start + 4096], depth))
        if progress:
            progress("search", min(start + 4096, n), n)
    return out


def _select_all(
    strategy: Strategy, params: Any, state: Any, pools: _Pools, pool_list: list[QueryPool],
    k: int, depth: int, seed: int,
) -> tuple[list[QueryPool], list[Selection], int]:
    """Select for every query, widening the pools of queries left short while that can help."""
    pool_list = list(pool_list)
    selections = [
        strategy.select(p, k, params, state, _rng(seed, p.query_id)) for p in pool_list
    ]
    widened: set[int] = set()
    while strategy.widens:
        short = np.array([
            i for i, (p, s) in enumerate(zip(pool_list, selections))
            if len(s.selected) < k and not p.exhausted
        ], dtype=np.int64)
        if not len(short):
            break
        depth = min(pools.n_docs, depth * 4)
        widened.update(short.tolist())
        for i, pool in zip(short, pools.build(short, depth)):
            pool_list[i] = pool
            selections[i] = strategy.select(pool, k, params, state, _rng(seed, pool.query_id))
    return pool_list, selections, len(widened)


def _candidate_frame(
    pool_list: list[QueryPool], selections: list[Selection], corpus: _Corpus, store_depth: int,
    k: int, q_vecs: np.ndarray, d_vecs: np.ndarray, scorer: Scorer,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored pool (top ``store_depth``, deeper where selections reach) and its suspicion."""
    parts = []
    suspicion: dict[str, list] = {}
    doc_ids = np.asarray(corpus.doc_ids, dtype=object)
    for row, (pool, sel) in enumerate(zip(pool_list, selections)):
        deepest = int(sel.selected.max()) + 1 if len(sel.selected) else 0
        keep = min(len(pool), max(store_depth, deepest + k))
        scored = scorer.score(row, pool.doc_indices, pool.scores, pool.pos_score)
        for column, values in suspicion_rows(
                pool.query_id, doc_ids[pool.doc_indices], scored, keep).items():
            suspicion.setdefault(column, []).extend(values)
        chosen = np.zeros(len(pool), dtype=bool)
        chosen[sel.selected] = True
        parts.append(pd.DataFrame({
            "query_id": pool.query_id,
            "doc_id": doc_ids[pool.doc_indices[:keep]],
            "rank": np.arange(1, keep + 1, dtype=np.int32),
            "score": pool.scores[:keep],
            "pos_score": np.float32(pool.pos_score),
            "lexical_score": (pool.lexical_scores[:keep] if pool.lexical_scores is not None
                              else np.full(keep, np.nan, dtype=np.float32)),
            "source": "lexical" if pool.lexical_scores is not None else "search",
            "eligible": sel.eligible[:keep],
            "selected": chosen[:keep],
        }))
    frame = pd.concat(parts, ignore_index=True)
    given = corpus.given
    if not given.empty:
        q_row = {q: i for i, q in enumerate(corpus.query_ids)}
        d_row = {d: i for i, d in enumerate(corpus.doc_ids)}
        given = given[given["query_id"].isin(q_row)]
        given_pairs = set(zip(given["query_id"], given["doc_id"]))
        pairs = list(zip(frame["query_id"], frame["doc_id"]))
        frame.loc[[p in given_pairs for p in pairs], "source"] = "given"
        seen = set(pairs)
        given = given[[(q, d) not in seen for q, d in zip(given["query_id"], given["doc_id"])]]
        if not given.empty:
            qi = given["query_id"].map(q_row).to_numpy()
            di = given["doc_id"].map(d_row).to_numpy()
            pos = np.array([pool_list[i].pos_score for i in qi], dtype=np.float32)
            scores = np.einsum("ij,ij->i", q_vecs[qi], d_vecs[di]).astype(np.float32)
            frame = pd.concat([frame, pd.DataFrame({
                "query_id": given["query_id"].to_numpy(), "doc_id": given["doc_id"].to_numpy(),
                "rank": pd.array([None] * len(given), dtype="Int32"),
                "score": scores, "pos_score": pos, "lexical_score": np.nan, "source": "given",
                "eligible": False, "selected": False,
            })], ignore_index=True)
            # Given negatives outside the searched pool are scored like any candidate.
            for row in np.unique(qi):
                mask = qi == row
                scored = scorer.score(int(row), di[mask], scores[mask], float(pos[mask][0]))
                for column, values in suspicion_rows(
                        corpus.query_ids[row], doc_ids[di[mask]], scored, int(mask.sum())).items():
                    suspicion[column].extend(values)
    return frame, pd.DataFrame(suspicion)


def mine(store: Store, request: MineRequest, progress: PhaseProgress | None = None) -> RunInfo:
    """Run one mining strategy over a dataset and store the run with its candidate pool.

    Raises:
        WorkbenchError: unknown strategy or parameter, no dataset, bad k or depth. A failure after
            the run was created marks it failed before re-raising.
    """
    strategy = get_strategy(request.strategy)
    params = parse_params(strategy, request.params)
    k = request.num_negatives
    if k < 1:
        raise WorkbenchError(f"--num-negatives must be at least 1, got {k}")
    if request.pool_depth < k:
        raise WorkbenchError(f"pool depth {request.pool_depth} is smaller than num_negatives {k}")
    dataset = store.get_dataset(request.dataset)
    encoder = load_encoder(request.model, request.batch_size, request.backend,
                           model_cache_dir(store.path))
    depth = max(request.pool_depth, strategy.min_depth(params, k))
    run_id = store.create_run(
        dataset.dataset_id, strategy.name, params_dict(params), encoder.name, encoder.fingerprint,
        request.query_prompt, request.doc_prompt, request.seed, k, depth,
    )
    try:
        return _execute(store, run_id, request, strategy, params, encoder, depth, progress,
                        dataset.dataset_id)
    except BaseException as err:
        store.fail_run(run_id, str(err) or type(err).__name__)
        raise


def _execute(store, run_id, request, strategy, params, encoder, depth, progress, dataset_id):
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    corpus = _load_corpus(store, dataset_id)
    k = request.num_negatives
    if len(corpus.doc_ids) - max(len(e) for e in corpus.excluded) < k:
        raise WorkbenchError(
            f"the corpus has {len(corpus.doc_ids)} documents: too few for {k} negatives per query"
        )

    def phase(name: str):
        return (lambda done, total: progress(name, done, total)) if progress else None

    q_vecs = embed_texts(store, encoder, corpus.query_texts, request.query_prompt,
                         phase("encode queries"))
    timings["encode_queries"] = time.perf_counter() - t0
    t = time.perf_counter()
    d_vecs = embed_texts(store, encoder, corpus.doc_texts, request.doc_prompt,
                         phase("encode documents"))
    timings["encode_documents"] = time.perf_counter() - t
    t = time.perf_counter()
    decisions = _decisions(store, corpus)
    teacher = load_teacher(request.teacher, request.teacher_kind) if request.teacher else None
    pools = _Pools(corpus, q_vecs, d_vecs, strategy.pool_source == "lexical")
    initial = _initial_pools(pools, depth, progress)
    scorer = Scorer(DetectionContext(
        corpus.query_ids, corpus.query_texts, q_vecs, corpus.doc_texts, d_vecs, corpus.positives,
        request.seed, teacher,
    )).fit([(i, p.doc_indices, p.scores, p.pos_score) for i, p in enumerate(initial)])
    ctx = MiningContext(corpus.query_ids, corpus.query_texts, q_vecs, corpus.doc_ids,
                        corpus.doc_texts, d_vecs, request.seed, corpus.positives, scorer, decisions)
    state = strategy.prepare(ctx, params)
    pool_list, selections, widened = _select_all(
        strategy, params, state, pools, initial, k, depth, request.seed)
    if progress:
        progress("mine", len(pool_list), len(pool_list))
    timings["search_and_mine"] = time.perf_counter() - t
    t = time.perf_counter()
    frame, suspicion = _candidate_frame(pool_list, selections, corpus, depth, k, q_vecs, d_vecs,
                                        scorer)
    counts: dict[str, int] = {
        "positives_excluded": int(sum(len(p) for p in corpus.positives)),
        "duplicates_of_positive_excluded": corpus.duplicate_count,
    }
    for sel in selections:
        for rule, n in sel.removed.items():
            counts[rule] = counts.get(rule, 0) + n
    short = [p.query_id for p, s in zip(pool_list, selections) if len(s.selected) < k]
    counts["selected"] = int(sum(len(s.selected) for s in selections))
    counts["widened_queries"] = widened
    counts["short_queries"] = len(short)
    timings["build_pool"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    store.finish_run(run_id, frame, timings, counts, len(corpus.query_ids), short)
    store.put_suspicion(run_id, suspicion, "cold")
    return store.get_run(run_id)
