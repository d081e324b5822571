"""cluster: negatives drawn from the query's own topic cluster (TAS-B / ClusterNS style)."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from core.errors import WorkbenchError
from core.mining.base import (
    MiningContext, QueryPool, Selection, Strategy, sample_selection, top_selection,
)


@dataclass(frozen=True)
class ClusterParams:
    """Attributes:
        n_clusters: k-means clusters over document embeddings; 0 picks sqrt(documents).
        sampling: "top" takes the hardest in-cluster candidates, "random" samples them.
        iterations: k-means iterations.
    """

    n_clusters: int = 0
    sampling: str = "top"
    iterations: int = 20

    def validate(self) -> None:
        if self.n_clusters < 0 or self.iterations < 1:
            raise WorkbenchError(
                f"cluster needs n_clusters >= 0 and iterations >= 1, got {self.n_clusters} "
                f"and {self.iterations}"
            )
        if self.sampling not in ("top", "random"):
            raise WorkbenchError(f"cluster sampling must be 'top' or 'random', got {self.sampling!r}")


@dataclass(frozen=True)
class ClusterState:
    doc_cluster: np.ndarray
    query_cluster: dict[str, int]


def fit_clusters(vectors: np.ndarray, n_clusters: int, seed: int, iterations: int = 20):
    """Spherical k-means with FAISS; returns the trained ``faiss.Kmeans``."""
    n_clusters = max(1, min(n_clusters, vectors.shape[0]))
    kmeans = faiss.Kmeans(
        vectors.shape[1], n_clusters, niter=iterations, seed=seed, spherical=True,
        min_points_per_centroid=1, max_points_per_centroid=100000,
    )
    kmeans.train(np.ascontiguousarray(vectors, dtype=np.float32))
    return kmeans


class Cluster(Strategy):
    """Keep only candidates in the query's k-means cluster, then take the top k (or sample them).

    References:
        Hofstätter et al., "Efficiently Teaching an Effective Dense Retriever with Balanced Topic
        Aware Sampling" (TAS-B), SIGIR 2021; "Embedding And Clustering Your Data Can Improve
        Contrastive Pretraining" (arXiv 2407.18887); ClusterNS (arXiv 2305.09892).

    Documents are clustered; a query belongs to the cluster of its nearest centroid. Negatives are
    then on-topic by construction, which top_k only implies. The pool widens until k in-cluster
    candidates are found or the cluster is used up.
    """

    name = "cluster"
    summary = "top (or random) k within the query's k-means topic cluster (TAS-B, ClusterNS)"
    Params = ClusterParams
    presets = {"Topic clusters, hardest": {"sampling": "top"},
               "Topic clusters, random (TAS-B)": {"sampling": "random"}}

    def prepare(self, ctx: MiningContext, params: ClusterParams) -> ClusterState:
        n = params.n_clusters or int(round(np.sqrt(len(ctx.doc_ids))))
        kmeans = fit_clusters(ctx.doc_vectors, n, ctx.seed, params.iterations)
        _, doc_cluster = kmeans.index.search(ctx.doc_vectors, 1)
        _, query_cluster = kmeans.index.search(ctx.query_vectors, 1)
        return ClusterState(
            doc_cluster[:, 0],
            {q: int(c) for q, c in zip(ctx.query_ids, query_cluster[:, 0])},
        )

    def select(
        self, pool: QueryPool, k: int, params: ClusterParams, state: ClusterState,
        rng: np.random.Generator,
    ) -> Selection:
        same = state.doc_cluster[pool.doc_indices] == state.query_cluster[pool.query_id]
        removed = {"other_cluster": int((~same).sum())}
        if params.sampling == "random":
            return sample_selection(same, k, removed, rng)
        return top_selection(same, k, removed)


STRATEGY = Cluster()
