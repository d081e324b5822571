"""teacher: a second model rescoring the candidates (RocketQA-style denoising)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.false_negatives.base import DetectionContext, Detector, RawSignal

TEACHER_KINDS = ("bi-encoder", "cross-encoder")
# Pairs a cross-encoder scores between two progress reports.
PREDICT_CHUNK = 4096
ProgressFn = Callable[[int, int], None]


@dataclass
class Teacher:
    """A loaded teacher: a sentence-transformers bi-encoder or a CrossEncoder.

    ``encode``: for a bi-encoder loaded with a workspace, (texts, progress) -> normalised vectors
    through the workspace's per-text embedding cache, so each document is encoded once per model
    however many pools it sits in (and never again in a later run); ``progress(done, total)``
    counts the texts the cache lacks. ``store`` and ``fingerprint``: for a
    cross-encoder loaded with a workspace, where its pair scores are cached and under which key.
    """

    name: str
    kind: str
    model: Any
    encode: Callable[[Sequence[str], ProgressFn | None], np.ndarray] | None = None
    store: Any = None
    fingerprint: str | None = None

    def score(self, query: str, docs: list[str]) -> np.ndarray:
        """Teacher scores of (query, doc) pairs; higher means more relevant."""
        if not docs:
            return np.zeros(0, dtype=np.float32)
        if self.kind == "cross-encoder":
            return np.asarray(self.model.predict([(query, d) for d in docs],
                                                 show_progress_bar=False), dtype=np.float32)
        vectors = self.model.encode([query, *docs], normalize_embeddings=True,
                                    show_progress_bar=False)
        return (vectors[1:] @ vectors[0]).astype(np.float32)


def load_teacher(name: str, kind: str = "cross-encoder", store: Any = None) -> Teacher:
    """Load a teacher model from a local folder or hub id.

    With ``store`` (a workspace's ``Store``), a bi-encoder's vectors go through its embedding
    cache and a cross-encoder's pair scores through its pair-score cache, keyed by the teacher's
    own fingerprint.

    Raises:
        WorkbenchError: unknown kind or a model that cannot be loaded.
    """
    if kind not in TEACHER_KINDS:
        raise WorkbenchError(f"teacher kind must be one of {', '.join(TEACHER_KINDS)}, got {kind!r}")
    from sentence_transformers import CrossEncoder, SentenceTransformer

    try:
        if kind == "cross-encoder":
            model = CrossEncoder(name, device="cpu")
        else:
            plain = SentenceTransformer(name, device="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = "folder" if Path(name).exists() else "model"
        raise WorkbenchError(f"teacher {where} {name!r} could not be loaded ({first})") from err
    from core.embed import model_fingerprint

    if kind == "cross-encoder":
        if store is None:
            return Teacher(name, kind, model)
        return Teacher(name, kind, model, store=store, fingerprint=model_fingerprint(model))
    from core.backends.torch_backend import checked_fused_view
    from core.embed import Encoder, embed_texts

    # Same fused linear layers as the torch backend (about 1.16x faster, same vectors). The cache
    # key is the plain model's fingerprint, as for the mining model: the fused view's module
    # tree differs, its vectors do not, and a teacher's earlier vectors must still be found.
    model = checked_fused_view(plain)
    if store is None:
        return Teacher(name, kind, model)
    encoder = Encoder(f"teacher {name}", model_fingerprint(plain),
                      int(model.get_embedding_dimension()), model)
    return Teacher(name, kind, model,
                   lambda texts, progress=None: embed_texts(store, encoder, texts, "", progress))


def _encode_documents(ctx: DetectionContext, teacher: Teacher, indices: list[int],
                      progress: ProgressFn | None = None) -> None:
    """Encode (through the cache) the run's queries, once, and the documents among ``indices``
    the run has no vector of yet, in one call so ``progress`` counts them together."""
    vectors: dict[int, np.ndarray] = ctx.cache.setdefault("teacher_documents", {})
    missing = [d for d in dict.fromkeys(indices) if d not in vectors]
    queries = [] if "teacher_queries" in ctx.cache else list(ctx.query_texts)
    if not missing and not queries:
        return
    encoded = teacher.encode([*queries, *(ctx.doc_texts[d] for d in missing)], progress)
    if queries:
        ctx.cache["teacher_queries"] = encoded[:len(queries)]
    vectors.update(zip(missing, encoded[len(queries):]))


def _score_pairs(ctx: DetectionContext, teacher: Teacher,
                 pools: list[tuple[int, np.ndarray]]) -> dict[tuple[int, int], float]:
    """Cross-encoder scores of every (query row, document) pair of ``pools`` and of each query's
    positives: read from the workspace's pair-score cache; the pairs it lacks are scored in one
    ``predict`` call and added to it. Returns the run's (row, doc index) -> score map."""
    known: dict[tuple[int, int], float] = ctx.cache.setdefault("teacher_pairs", {})
    rows, docs = [], []
    for row, pool_docs in pools:
        wanted = [d for d in (*pool_docs.tolist(), *ctx.positives[row].tolist())
                  if (row, d) not in known]
        rows += [row] * len(wanted)
        docs += wanted
    if not rows:
        return known
    pairs = pd.DataFrame({"row": rows, "doc": docs}).drop_duplicates()
    pairs["query_hash"] = [ctx.query_hashes[r] for r in pairs["row"]]
    pairs["doc_hash"] = [ctx.doc_hashes[d] for d in pairs["doc"]]
    cached = teacher.store.cached_pair_scores(teacher.fingerprint, pairs)
    pairs = pairs.merge(cached, on=["query_hash", "doc_hash"], how="left")
    missing = pairs[pairs["score"].isna()].drop_duplicates(["query_hash", "doc_hash"])
    if len(missing):
        scored = missing.assign(score=_predict(ctx, teacher, list(zip(missing["row"],
                                                                      missing["doc"]))))
        teacher.store.put_pair_scores(teacher.fingerprint, scored)
        fresh = scored.set_index(["query_hash", "doc_hash"])["score"]
        keys = pd.MultiIndex.from_frame(pairs[["query_hash", "doc_hash"]])
        pairs["score"] = pairs["score"].fillna(
            pd.Series(fresh.reindex(keys).to_numpy(), index=pairs.index))
    known.update(zip(zip(pairs["row"].tolist(), pairs["doc"].tolist()),
                     pairs["score"].astype(float).tolist()))
    return known


def _predict(ctx: DetectionContext, teacher: Teacher, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Cross-encoder scores of (query row, doc index) pairs, ``PREDICT_CHUNK`` at a time so
    ``ctx.progress`` can report them."""
    scores = np.zeros(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), PREDICT_CHUNK):
        chunk = pairs[start:start + PREDICT_CHUNK]
        scores[start:start + len(chunk)] = teacher.model.predict(
            [(ctx.query_texts[r], ctx.doc_texts[d]) for r, d in chunk], show_progress_bar=False)
        if ctx.progress:
            ctx.progress(start + len(chunk), len(pairs))
    return scores


def _cached_scores(ctx: DetectionContext, teacher: Teacher, row: int,
                   doc_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bi-encoder teacher scores of a pool and of the query's positives, encoding each query
    once per run and each document once (the workspace cache keeps them across runs)."""
    _encode_documents(ctx, teacher, [*doc_indices.tolist(), *ctx.positives[row].tolist()])
    vectors: dict[int, np.ndarray] = ctx.cache["teacher_documents"]
    query = ctx.cache["teacher_queries"][row]
    cand = np.stack([vectors[d] for d in doc_indices.tolist()]) @ query
    pos = np.stack([vectors[d] for d in ctx.positives[row].tolist()]) @ query
    return cand.astype(np.float32), pos.astype(np.float32)


def _caches_pairs(ctx: DetectionContext, teacher: Teacher) -> bool:
    """Whether this cross-encoder's pair scores go through the workspace's cache."""
    return (bool(ctx.query_hashes) and teacher.encode is None
            and getattr(teacher, "store", None) is not None)


class TeacherScore(Detector):
    """The teacher's score of the candidate minus its score of the (lowest) positive.

    References:
        Qu et al., RocketQA, arXiv 2010.08191 (a cross-encoder denoises mined negatives);
        sentence-transformers mine_hard_negatives(cross_encoder=...).

    Only available when a teacher is configured. Like every weighted signal, its share of the cold
    suspicion follows how well it ranks the labeled positives above the pools, so a teacher that
    is the stronger model earns the larger weight by measurement rather than by assumption.
    """

    name = "teacher"
    summary = "a second model's score of the candidate relative to the positive"

    def available(self, ctx: DetectionContext) -> bool:
        return ctx.teacher is not None

    def prepare(self, ctx: DetectionContext, pools: list[tuple[int, np.ndarray]]) -> None:
        """A bi-encoder teacher encodes the queries and every pooled document and positive in one
        cache lookup and one encode (reported through ``ctx.progress``), not one per query (at
        100k queries, 100k lookups); a cross-encoder
        loaded with a workspace reads every pooled pair's cached score at once and scores the
        rest in one call."""
        teacher: Teacher = ctx.teacher
        if _caches_pairs(ctx, teacher):
            _score_pairs(ctx, teacher, pools)
        if teacher.encode is None:
            return
        wanted = [d for row, docs in pools for d in (*docs.tolist(), *ctx.positives[row].tolist())]
        _encode_documents(ctx, teacher, wanted, ctx.progress)

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        teacher: Teacher = ctx.teacher
        if teacher.encode is not None:
            cand, positives = _cached_scores(ctx, teacher, row, doc_indices)
        elif _caches_pairs(ctx, teacher):
            known = _score_pairs(ctx, teacher, [(row, doc_indices)])
            cand = np.array([known[(row, d)] for d in doc_indices.tolist()], dtype=np.float32)
            positives = np.array([known[(row, d)] for d in ctx.positives[row].tolist()],
                                 dtype=np.float32)
        else:
            query = ctx.query_texts[row]
            cand = teacher.score(query, [ctx.doc_texts[d] for d in doc_indices])
            positives = teacher.score(query, [ctx.doc_texts[d] for d in ctx.positives[row]])
        pos = float(positives.min())
        details = [f"{c:.2f} (positive: {pos:.2f})" for c in cand]
        return RawSignal((cand - pos).astype(np.float32), None, details,
                         (positives - pos).astype(np.float32))

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        if evidence < 0.8 and value < 0:
            return None
        return f"the teacher scores it {detail}"
