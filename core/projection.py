"""2-D UMAP projection of a dataset's documents and queries, from the embedding cache.

A projection belongs to an *embedding version* (dataset, model fingerprint, query and document
prompts): the vectors a run was mined with. Nothing is encoded here: the vectors come from the
workspace's cache, so a run must exist first. Above ``max_points`` the documents are sampled
(seeded); queries, positives and the given runs' selected negatives are always kept so a query's
neighbourhood can be drawn.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.layout import FAST_ABOVE, umap_layout
from core.store import RunInfo, Store

MIN_POINTS = 5
# Part of the cache key: bump when the layout method changes, so old maps are recomputed.
LAYOUT_VERSION = 2


@dataclass(frozen=True)
class EmbeddingVersion:
    """What a set of vectors depends on; two runs with equal versions share one projection."""

    dataset_id: int
    model_fp: str
    query_prompt: str
    doc_prompt: str


def embedding_version(run: RunInfo) -> EmbeddingVersion:
    """The embedding version a run was mined with."""
    return EmbeddingVersion(run.dataset_id, run.model_fp, run.query_prompt, run.doc_prompt)


def version_runs(store: Store, version: EmbeddingVersion) -> tuple[int, ...]:
    """The finished runs mined with ``version``, oldest first."""
    return tuple(sorted(r.run_id for r in store.list_runs(version.dataset_id)
                        if r.status == "done" and embedding_version(r) == version))


@dataclass(frozen=True)
class EmbeddedPoints:
    """Documents and queries with their cached vectors.

    Attributes:
        points: id, kind ("document" or "query"), text (rows align with ``vectors``).
        vectors: float32, L2-normalised, one row per point.
    """

    points: pd.DataFrame
    vectors: np.ndarray


def embedded_points(store: Store, version: EmbeddingVersion) -> EmbeddedPoints:
    """Every document and query of the version's dataset with its cached vector.

    Raises:
        WorkbenchError: vectors missing from the cache (the dataset changed since it was mined).
    """
    parts, vectors = [], []
    for table, kind, id_column, prompt in (
        ("documents", "document", "doc_id", version.doc_prompt),
        ("queries", "query", "query_id", version.query_prompt),
    ):
        frame = store.dataset_frame(version.dataset_id, table)
        matrix, found = store.vector_matrix(version.model_fp, prompt, frame["text_hash"].tolist())
        missing = int((~found).sum())
        if missing:
            raise WorkbenchError(
                f"{missing} {table} of dataset {version.dataset_id} have no cached vector for this "
                "run's model; mine the dataset again to embed them")
        parts.append(pd.DataFrame({"id": frame[id_column], "kind": kind, "text": frame["text"]}))
        vectors.append(matrix if len(frame) else np.zeros((0, 1), dtype=np.float32))
    points = pd.concat(parts, ignore_index=True)
    dims = {v.shape[1] for v in vectors if len(v)}
    return EmbeddedPoints(points, np.concatenate([v for v in vectors if len(v)]).astype(
        np.float32) if dims else np.zeros((0, 1), dtype=np.float32))


@dataclass(frozen=True)
class Projection:
    """2-D coordinates of (a sample of) an embedding version's points.

    Attributes:
        points: id, kind, x, y.
        total: points before sampling; ``sampled`` is True when fewer are shown.
        n_neighbors: UMAP's neighbourhood size used.
    """

    points: pd.DataFrame
    total: int
    sampled: bool
    n_neighbors: int


def _sample(points: pd.DataFrame, keep_docs: set[str], max_points: int, seed: int) -> np.ndarray:
    """Row positions to project: queries and ``keep_docs`` first, then a seeded random fill."""
    must = (points["kind"].eq("query") | points["id"].isin(keep_docs)).to_numpy()
    chosen = np.flatnonzero(must)[:max_points]
    room = max_points - len(chosen)
    rest = np.flatnonzero(~must)
    if room > 0 and len(rest):
        rng = np.random.default_rng(seed)
        chosen = np.concatenate([chosen, rng.choice(rest, size=min(room, len(rest)),
                                                    replace=False)])
    return np.sort(chosen)


def project(
    store: Store, version: EmbeddingVersion, max_points: int = 2000, seed: int = 0,
    runs: Sequence[int] = (),
) -> Projection:
    """Project the version's documents and queries to 2-D with UMAP (cosine metric, seeded).

    The result is cached in the workspace per embedding version and settings (sample size, seed,
    kept runs): a second call reads it back. Above ``core.layout.FAST_ABOVE`` points the layout
    is ``core.layout.umap_layout`` (PCA to 50 dimensions, FAISS neighbours, UMAP on that graph),
    about a minute for 100,000 points on two cores.

    Args:
        max_points: above this many points, documents are sampled (queries, positives and the
            selected negatives of ``runs`` are kept).
        seed: for the sample and UMAP.
        runs: runs whose selected negatives must stay in a sample.

    Raises:
        WorkbenchError: fewer than 5 points, ``max_points`` below 5, vectors missing.
    """
    if max_points < MIN_POINTS:
        raise WorkbenchError(f"the map needs at least {MIN_POINTS} points, got max {max_points}")
    settings = json.dumps({"max_points": max_points, "seed": seed, "runs": sorted(runs),
                           "layout": LAYOUT_VERSION})
    cached = store.find_projection(version.dataset_id, version.model_fp, version.query_prompt,
                                   version.doc_prompt, settings)
    if cached is not None:
        total, n_neighbors, points = cached
        return Projection(points, total, len(points) < total, n_neighbors)
    started = time.perf_counter()
    embedded = embedded_points(store, version)
    total = len(embedded.points)
    if total < MIN_POINTS:
        raise WorkbenchError(f"the dataset has {total} texts; the map needs at least {MIN_POINTS}")
    keep = set(store.dataset_frame(version.dataset_id, "positives")["doc_id"])
    for run_id in runs:
        keep |= set(store.selected_doc_ids(run_id))
    rows = _sample(embedded.points, keep, max_points, seed) if total > max_points \
        else np.arange(total)
    vectors = embedded.vectors[rows]
    n_neighbors = int(max(2, min(15, len(rows) - 1)))
    if len(rows) > FAST_ABOVE:
        xy = umap_layout(vectors, n_neighbors, seed)
    else:
        import umap  # imported here: loading numba takes seconds, only the map needs it

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=0.1, metric="cosine",
                                random_state=seed, init="spectral" if len(rows) > 50 else "random")
            xy = reducer.fit_transform(vectors)
    points = embedded.points.iloc[rows][["id", "kind"]].reset_index(drop=True)
    points["x"], points["y"] = xy[:, 0], xy[:, 1]
    store.put_projection(version.dataset_id, version.model_fp, version.query_prompt,
                         version.doc_prompt, settings, total, n_neighbors,
                         time.perf_counter() - started, points)
    return Projection(points, total, len(rows) < total, n_neighbors)
