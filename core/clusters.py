"""Topic clusters of an embedding version: k-means on document vectors, named by TF-IDF terms.

Clusters are computed on the full-dimensional vectors (not the 2-D map), so the Map and Review
pages agree on them whatever the map's sample. Queries join the cluster of their nearest centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from core.errors import WorkbenchError
from core.projection import EmbeddingVersion, embedded_points
from core.store import Store

TERMS_PER_NAME = 3
_TOKEN = r"(?u)\b[^\W\d_]{3,}\b"  # words of three or more letters: names never carry markup


@dataclass(frozen=True)
class Clusters:
    """Cluster assignment of every point of an embedding version.

    Attributes:
        assignments: id, kind ("document"/"query"), cluster (int), cluster_name.
        names: cluster -> name ("7: galaxy, orbit, telescope").
        sizes: cluster, cluster_name, documents, queries.
    """

    assignments: pd.DataFrame
    names: dict[int, str]
    sizes: pd.DataFrame


def default_cluster_count(n_documents: int) -> int:
    """A readable number of clusters for a corpus: about sqrt(n / 2), between 2 and 30."""
    return int(min(30, max(2, round((n_documents / 2) ** 0.5))))


def cluster_names(texts: list[str], labels: np.ndarray, n_clusters: int) -> dict[int, str]:
    """Name each cluster by its most distinctive TF-IDF terms (mean in cluster minus overall mean).

    Returns:
        cluster -> "<id>: term, term, term" (just "<id>" when the texts have no usable words).
    """
    names = {c: str(c) for c in range(n_clusters)}
    try:
        matrix = TfidfVectorizer(stop_words="english", token_pattern=_TOKEN, max_features=20000,
                                 sublinear_tf=True).fit(texts)
    except ValueError:  # empty vocabulary: no word of three letters anywhere
        return names
    tfidf = matrix.transform(texts)
    vocabulary = np.array(matrix.get_feature_names_out())
    overall = np.asarray(tfidf.mean(axis=0)).ravel()
    for c in range(n_clusters):
        rows = np.flatnonzero(labels == c)
        if not len(rows):
            continue
        lift = np.asarray(tfidf[rows].mean(axis=0)).ravel() - overall
        top = [vocabulary[i] for i in np.argsort(-lift)[:TERMS_PER_NAME] if lift[i] > 0]
        if top:
            names[c] = f"{c}: {', '.join(top)}"
    return names


def _kmeans(vectors: np.ndarray, train: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Spherical k-means (FAISS) on the ``train`` rows; every row joins its nearest centroid.

    FAISS rather than scikit-learn: on the 5,000-document sample it takes a fraction of a second
    where scikit-learn's KMeans takes about ten on two cores.
    """
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    model = faiss.Kmeans(data.shape[1], k, niter=25, seed=seed, spherical=True, verbose=False,
                         min_points_per_centroid=1)
    model.train(data[train])
    _, nearest = model.index.search(data, 1)
    return nearest[:, 0].astype(int)


def cluster_version(
    store: Store, version: EmbeddingVersion, n_clusters: int | None = None, seed: int = 0,
) -> Clusters:
    """Cluster an embedding version's documents with k-means and name the clusters.

    Args:
        n_clusters: number of clusters; None picks ``default_cluster_count``.
        seed: k-means seed.

    Raises:
        WorkbenchError: fewer than 2 clusters asked, or more clusters than documents.
    """
    embedded = embedded_points(store, version)
    docs = embedded.points["kind"].eq("document").to_numpy()
    n_docs = int(docs.sum())
    k = default_cluster_count(n_docs) if n_clusters is None else n_clusters
    if k < 2:
        raise WorkbenchError(f"the map needs at least 2 clusters, got {k}")
    if k > n_docs:
        raise WorkbenchError(f"cannot make {k} clusters from {n_docs} documents")
    labels = _kmeans(embedded.vectors, docs, k, seed)
    texts = embedded.points["text"].tolist()
    names = cluster_names([t for t, d in zip(texts, docs) if d], labels[docs], k)
    assignments = embedded.points[["id", "kind"]].copy()
    assignments["cluster"] = labels.astype(int)
    assignments["cluster_name"] = assignments["cluster"].map(names)
    sizes = (assignments.groupby(["cluster", "cluster_name", "kind"]).size().unstack(fill_value=0)
             .reindex(columns=["document", "query"], fill_value=0)
             .rename(columns={"document": "documents", "query": "queries"}).reset_index())
    return Clusters(assignments, names, sizes)
