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
import pyarrow as pa

from core import pool_rows
from core.corpus import MiningCorpus, decided_pairs, load_corpus
from core.embed import Encoder, embed_texts, load_encoder, model_cache_dir
from core.errors import WorkbenchError
from core.false_negatives.base import DetectionContext
from core.false_negatives.suspicion import Scorer, suspicion_rows
from core.false_negatives.teacher import load_teacher
from core.lexical import LexicalIndex
from core.memory import trim_heap
from core.mining import (
    MiningContext, QueryPool, Selection, Strategy, get_strategy, params_dict, parse_params,
)
from core.search import SearchReport, build_index, exact_ids, search, tune_recall
from core.store import RunInfo, Store
from core.vectors import PrecomputedModel, is_precomputed, load_precomputed, lookup_vectors

DEFAULT_POOL_DEPTH = 100
# Runs with more candidate rows than this explain (readable reasons, JSON signals) only each
# pool's first max(EXPLAIN_DEPTH, 2k) candidates, the ones review shows first; every candidate
# still gets its suspicion. 100k queries x 100 deep would otherwise spend minutes in Python.
EXPLAIN_ALL_UP_TO = 1_000_000
EXPLAIN_DEPTH = 10
# Widening searches at most this many (query x depth) results at once.
WIDEN_BLOCK = 16_000_000

PhaseProgress = Callable[[str, int, int], None]
"""Called as progress(phase, done, total); phases: encode queries, encode documents, search,
teacher (a cross-encoder teacher scoring pairs it has not scored before), mine."""


@dataclass(frozen=True)
class MineRequest:
    """What to mine. ``params`` are the strategy's own (strings are converted, as from the CLI).

    ``model``: a sentence-transformers model, or ``precomputed:NAME`` for vectors ingested with
    ``core.vectors.ingest_vectors`` (no model is loaded). ``reuse_pool``: select from the stored
    pool of an earlier run with the same dataset, vectors and teacher when it is deep enough,
    instead of searching again (``core.remine``).
    """

    strategy: str
    num_negatives: int = 5
    params: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    model: str | None = None
    query_prompt: str = ""
    doc_prompt: str = ""
    seed: int = 0
    pool_depth: int = DEFAULT_POOL_DEPTH
    batch_size: int = 32
    teacher: str | None = None
    teacher_kind: str = "cross-encoder"
    # How the model encodes (core.backends): torch (fp32, the reference), torch-bf16, onnx or
    # onnx-int8. Built models are cached beside the workspace; each backend has its own vectors.
    backend: str = "torch"
    reuse_pool: bool = True


def _rng(seed: int, query_id: str) -> np.random.Generator:
    """Per-query generator: selections do not depend on query order or on widening."""
    return np.random.default_rng([seed, zlib.crc32(query_id.encode("utf-8"))])


class _Pools:
    """Builds query pools from dense or lexical search, excluding positives, at any depth.

    The dense index is chosen by corpus size (``core.search.plan_index``); an approximate one has
    its nprobe tuned on the run's queries for recall@depth (``report``) and is released after the
    initial pools (``release_index``): widening a query's pool then searches it exactly.
    """

    def __init__(self, corpus: MiningCorpus, q_vecs: np.ndarray, d_vecs: np.ndarray,
                 lexical: bool, seed: int = 0, indexed: bool = True):
        self.corpus, self.q_vecs, self.d_vecs = corpus, q_vecs, d_vecs
        self.n_docs = d_vecs.shape[0]
        if lexical and not any(corpus.doc_texts):
            raise WorkbenchError("a lexical (BM25) pool needs document texts, and this dataset "
                                 "has vectors only; choose a dense strategy")
        self.lexical = LexicalIndex(corpus.doc_texts) if lexical else None
        # Without an index (pools patched from a stored run), searches are exact.
        self.index = None if lexical or not indexed else build_index(d_vecs, seed=seed)
        self.report = SearchReport("bm25" if lexical else "flat", 0, 0, 0, 1.0, 0, 1.0)
        self.seed = seed
        lengths = np.array([len(p) for p in corpus.positives], dtype=np.int64)
        flat = np.concatenate(corpus.positives) if len(lengths) else np.zeros(0, np.int64)
        q_rows = np.repeat(np.arange(len(lengths)), lengths)
        pos = np.einsum("ij,ij->i", d_vecs[flat], q_vecs[q_rows]) if len(flat) else flat
        self.pos_scores = np.minimum.reduceat(pos, np.concatenate([[0], np.cumsum(lengths)[:-1]])
                                              ).astype(np.float32) if len(flat) else np.zeros(0)

    def tune(self, depth: int) -> SearchReport:
        """Measure (IVF: tune nprobe for) recall@depth on a sample of the run's queries."""
        if self.index is not None:
            self.report = tune_recall(self.index, self.d_vecs, self.q_vecs, depth, seed=self.seed)
        return self.report

    def release_index(self) -> None:
        """Free an approximate index once the initial pools exist: widening searches exactly."""
        if self.index is not None and self.report.index == "ivf":
            self.index = None

    def _search(self, rows: np.ndarray, fetch: int) -> np.ndarray:
        """Dense ids, ``WIDEN_BLOCK`` results at a time; without the index (released after the
        initial pools), exact search over the vectors."""
        block = max(1, WIDEN_BLOCK // max(fetch, 1))
        if self.index is None:
            parts = [exact_ids(self.d_vecs, self.q_vecs[rows[i:i + block]], fetch)
                     for i in range(0, len(rows), block)]
        else:
            parts = [search(self.index, self.q_vecs[rows[i:i + block]], fetch)[1]
                     for i in range(0, len(rows), block)]
        return np.concatenate(parts) if parts else np.zeros((0, fetch), np.int64)

    def build(self, rows: np.ndarray, depth: int) -> list[QueryPool]:
        extra = max(len(self.corpus.excluded[r]) for r in rows)
        fetch = min(self.n_docs, depth + extra)
        if self.lexical is not None:
            texts = [self.corpus.query_texts[r] for r in rows]
            lex, ids = self.lexical.search(texts, fetch)
        else:
            ids = self._search(rows, fetch)
            lex = None
        pools = []
        for j, row in enumerate(rows):
            keep = (ids[j] >= 0) & ~np.isin(ids[j], self.corpus.excluded[row])
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
) -> tuple[list[QueryPool], list[Selection], int, dict[str, Any]]:
    """Select for every query, widening the pools of queries left short while that can help.
    Returns the pools, the selections, the number of widened queries and what the strategy
    chose over the run (``Strategy.describe``)."""
    pool_list = list(pool_list)
    state = strategy.survey(pool_list, k, params, state)
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
    return pool_list, selections, len(widened), strategy.describe(state)


def _candidate_frame(
    pool_list: list[QueryPool], selections: list[Selection], corpus: MiningCorpus,
    store_depth: int, k: int, q_vecs: np.ndarray, d_vecs: np.ndarray, scorer: Scorer,
) -> tuple[pa.Table, pa.Table]:
    """The stored pool (top ``store_depth``, deeper where selections reach) and its suspicion.

    Built in bulk (``core.pool_rows``); the candidate rows carry their suspicion too.
    """
    rows = pool_rows.layout(pool_list, selections, store_depth, k)
    doc_ids = pa.array(corpus.doc_ids, type=pa.string())
    results = [scorer.score(row, p.doc_indices, p.scores, p.pos_score)
               for row, p in enumerate(pool_list)]
    suspicion = pool_rows.suspicion_table(pool_list, results, rows, doc_ids,
                                          scorer.ctx.explain_depth)
    given, given_keys = _given_outside(pool_list, rows, corpus, q_vecs, d_vecs)
    frame = pool_rows.candidate_table(pool_list, selections, rows, doc_ids,
                                      suspicion.column("suspicion").to_numpy(), given_keys)
    if given.empty:
        return frame, suspicion
    # Given negatives outside the searched pool are scored like any candidate.
    extra: dict[str, list] = {}
    qi, di = given["q_row"].to_numpy(), given["d_idx"].to_numpy()
    scores, pos = given["score"].to_numpy(np.float32), given["pos_score"].to_numpy(np.float32)
    susp = np.zeros(len(given), dtype=np.float32)
    for row in np.unique(qi):
        mask = qi == row
        scored = scorer.score(int(row), di[mask], scores[mask], float(pos[mask][0]))
        susp[mask] = scored.suspicion
        for column, values in suspicion_rows(
                corpus.query_ids[row], np.asarray(corpus.doc_ids, dtype=object)[di[mask]], scored,
                int(mask.sum())).items():
            extra.setdefault(column, []).extend(values)
    frame = pool_rows.append_rows(frame, given.assign(suspicion=susp))
    suspicion = pool_rows.append_rows(suspicion, pd.DataFrame(extra))
    return frame, suspicion


def _given_outside(pool_list: list[QueryPool], rows: pool_rows.PoolLayout, corpus: MiningCorpus,
                   q_vecs: np.ndarray, d_vecs: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Given negatives of the mined queries: (rows for those outside the stored pool, the keys
    (query row x documents + doc index) of all of them)."""
    given = corpus.given
    n_docs = len(corpus.doc_ids)
    if given.empty:
        return pd.DataFrame(), np.zeros(0, dtype=np.int64)
    q_row = pd.Index(corpus.query_ids).get_indexer(given["query_id"])
    d_idx = pd.Index(corpus.doc_ids).get_indexer(given["doc_id"])
    given = given.assign(q_row=q_row, d_idx=d_idx)[q_row >= 0]
    keys = given["q_row"].to_numpy(np.int64) * n_docs + given["d_idx"].to_numpy(np.int64)
    stored = np.concatenate([row * n_docs + p.doc_indices[:m] for row, (p, m) in
                             enumerate(zip(pool_list, rows.keeps))]).astype(np.int64)
    outside = given[~np.isin(keys, stored)]
    qi, di = outside["q_row"].to_numpy(), outside["d_idx"].to_numpy()
    pos = np.array([pool_list[i].pos_score for i in qi], dtype=np.float32)
    scores = np.einsum("ij,ij->i", q_vecs[qi], d_vecs[di]).astype(np.float32)
    return pd.DataFrame({
        "query_id": outside["query_id"].to_numpy(dtype=object),
        "doc_id": outside["doc_id"].to_numpy(dtype=object),
        "rank": pd.array([None] * len(outside), dtype="Int32"),
        "score": scores, "pos_score": pos, "lexical_score": np.float32(np.nan),
        "source": "given", "eligible": False, "selected": False,
        "q_row": qi, "d_idx": di,
    }), keys


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
    encoder = _vector_source(store, request)
    depth = max(request.pool_depth, strategy.min_depth(params, k))
    if request.reuse_pool:
        from core.remine import remine  # remine builds on this module's helpers

        reused = remine(store, request, strategy, params, encoder, depth, dataset.dataset_id,
                        progress)
        if reused is not None:
            return reused
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


VectorSource = Encoder | PrecomputedModel


def _vector_source(store: Store, request: MineRequest) -> VectorSource:
    """The model to embed with, or the precomputed vectors named ``precomputed:NAME``."""
    if is_precomputed(request.model):
        if request.query_prompt or request.doc_prompt:
            raise WorkbenchError("precomputed vectors already include any prompt; leave the query "
                                 "and document prompts empty")
        if request.backend != "torch":
            raise WorkbenchError("precomputed vectors are not encoded here; leave the backend at "
                                 f"torch, not {request.backend!r}")
        return load_precomputed(store, request.model)
    return load_encoder(request.model, request.batch_size, request.backend,
                        model_cache_dir(store.path))


def embed_corpus(store: Store, source: VectorSource, corpus: MiningCorpus, request: MineRequest,
                 progress: PhaseProgress | None,
                 timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(query vectors, document vectors) from the cache, encoding only texts it lacks; the
    seconds each took go to ``timings`` (encode_queries, encode_documents)."""
    if not isinstance(source, PrecomputedModel) and not any(corpus.doc_texts):
        raise WorkbenchError("this dataset has vectors but no texts, so a model cannot embed it; "
                             "mine it with --model precomputed:NAME")
    out = []
    for phase, texts, hashes, prompt, what in (
            ("encode queries", corpus.query_texts, corpus.query_hashes, request.query_prompt,
             "queries"),
            ("encode documents", corpus.doc_texts, corpus.doc_hashes, request.doc_prompt,
             "documents")):
        t = time.perf_counter()
        report = (lambda done, total, p=phase: progress(p, done, total)) if progress else None
        if isinstance(source, PrecomputedModel):
            out.append(lookup_vectors(store, source, hashes, what))
            if report:
                report(len(hashes), len(hashes))
        else:
            out.append(embed_texts(store, source, texts, prompt, report, hashes=hashes))
        timings[phase.replace(" ", "_")] = time.perf_counter() - t
    return out[0], out[1]


def explain_depth(n_queries: int, depth: int, k: int) -> int | None:
    """How many candidates per pool get readable reasons (None: all); see EXPLAIN_ALL_UP_TO."""
    return None if n_queries * depth <= EXPLAIN_ALL_UP_TO else max(EXPLAIN_DEPTH, 2 * k)


def run_counts(corpus: MiningCorpus, pool_list: list[QueryPool], selections: list[Selection],
               k: int, widened: int) -> tuple[dict[str, int], list[str]]:
    """The run's per-rule counts, and the queries left short of k negatives."""
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
    return counts, short


def _search_pools(store: Store, request: MineRequest, strategy: Strategy, encoder: VectorSource,
                  dataset_id: int, embedded: tuple[MiningCorpus, np.ndarray, np.ndarray],
                  depth: int, progress: PhaseProgress | None,
                  timings: dict[str, float]) -> tuple[_Pools, list[QueryPool], dict[str, Any]]:
    """The run's pools and their search info: from a run on an earlier version of the dataset
    when one can serve (``core.remine.grown_pools``: only new documents are searched), else
    searched (timings: index, search)."""
    from core.remine import find_grown_base, grown_pools  # remine builds on this module

    t = time.perf_counter()
    corpus, q_vecs, d_vecs = embedded
    base = find_grown_base(store, dataset_id, encoder.fingerprint, request, strategy,
                           depth) if request.reuse_pool else None
    pools = _Pools(corpus, q_vecs, d_vecs, strategy.pool_source == "lexical", request.seed,
                   indexed=base is None)
    report = pools.tune(depth)
    timings["index"] = time.perf_counter() - t
    t = time.perf_counter()
    if base is not None:
        initial, info = grown_pools(store, base, pools, depth)
        if progress:
            progress("search", len(initial), len(initial))
    else:
        initial, info = _initial_pools(pools, depth, progress), report.as_dict()
        pools.release_index()  # an IVF index holds a copy of every vector; widening is exact
    timings["search"] = time.perf_counter() - t
    return pools, initial, info


def _execute(store, run_id, request, strategy, params, encoder, depth, progress, dataset_id):
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    corpus = load_corpus(store, dataset_id)
    k = request.num_negatives
    if len(corpus.doc_ids) - max(len(e) for e in corpus.excluded) < k:
        raise WorkbenchError(
            f"the corpus has {len(corpus.doc_ids)} documents: too few for {k} negatives per query"
        )

    if request.teacher and not any(corpus.doc_texts):
        raise WorkbenchError("a teacher reads texts, and this dataset has vectors only")
    timings["load"] = time.perf_counter() - t0
    q_vecs, d_vecs = embed_corpus(store, encoder, corpus, request, progress, timings)
    t = time.perf_counter()
    decisions = decided_pairs(store, corpus)
    teacher = (load_teacher(request.teacher, request.teacher_kind, store) if request.teacher
               else None)
    pools, initial, search_info = _search_pools(store, request, strategy, encoder, dataset_id,
                                                (corpus, q_vecs, d_vecs), depth, progress, timings)
    t = time.perf_counter()
    explain = explain_depth(len(corpus.query_ids), depth, k)
    scorer = Scorer(DetectionContext(
        corpus.query_ids, corpus.query_texts, q_vecs, corpus.doc_texts, d_vecs, corpus.positives,
        request.seed, teacher, explain_depth=explain, query_hashes=corpus.query_hashes,
        doc_hashes=corpus.doc_hashes,
        progress=(lambda done, total: progress("teacher", done, total)) if progress else None,
    )).fit([(i, p.doc_indices, p.scores, p.pos_score) for i, p in enumerate(initial)])
    ctx = MiningContext(corpus.query_ids, corpus.query_texts, q_vecs, corpus.doc_ids,
                        corpus.doc_texts, d_vecs, request.seed, corpus.positives, scorer, decisions)
    state = strategy.prepare(ctx, params)
    pool_list, selections, widened, choice = _select_all(
        strategy, params, state, pools, initial, k, depth, request.seed)
    if progress:
        progress("mine", len(pool_list), len(pool_list))
    timings["mine"] = time.perf_counter() - t
    t = time.perf_counter()
    frame, suspicion = _candidate_frame(pool_list, selections, corpus, depth, k, q_vecs, d_vecs,
                                        scorer)
    counts, short = run_counts(corpus, pool_list, selections, k, widened)
    scorer.forget_scored()
    trim_heap()  # the process's peak is the store write below, on top of what is resident now
    timings["build_pool"] = time.perf_counter() - t
    t = time.perf_counter()
    search_info = {**search_info, "teacher": request.teacher,
                   "teacher_kind": request.teacher_kind if request.teacher else None,
                   "explain_depth": explain,
                   "suspicion_weights": scorer.weight_report()}
    if choice:
        search_info["strategy_choice"] = choice
    store.finish_run(run_id, frame, timings, counts, len(corpus.query_ids), short, search_info,
                     suspicion=(suspicion, "cold"))
    timings["store"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    store.set_run_timings(run_id, timings)
    return store.get_run(run_id)
