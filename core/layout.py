"""2-D UMAP layouts of many points, fast enough for 100,000 on two CPU cores.

Three steps replace UMAP's own pipeline above ``FAST_ABOVE`` points:
1. PCA to ``PCA_DIMS`` dimensions (FAISS, trained on a seeded sample): neighbourhoods of sentence
   embeddings survive it, and every later step costs less.
2. The k-nearest-neighbour graph from a FAISS inverted-file index instead of UMAP's NN-descent
   (approximate, as NN-descent is; its build and search are compiled C++, no numba warm-up).
3. UMAP's layout optimisation on that graph (``precomputed_knn``), initialised from the PCA
   coordinates (a spectral initialisation of 100k points alone takes minutes) with
   ``LARGE_EPOCHS`` epochs.
"""

from __future__ import annotations

import warnings

import faiss
import numpy as np

FAST_ABOVE = 5_000
PCA_DIMS = 50
PCA_SAMPLE = 20_000
LARGE_EPOCHS = 200
KNN_PROBES = 12


def reduce_dims(vectors: np.ndarray, dims: int = PCA_DIMS, seed: int = 0) -> np.ndarray:
    """PCA to ``dims`` dimensions, fitted on a seeded sample of at most ``PCA_SAMPLE`` rows."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape[1] <= dims:
        return vectors
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(len(vectors), min(len(vectors), PCA_SAMPLE),
                                        replace=False))]
    pca = faiss.PCAMatrix(vectors.shape[1], dims)
    pca.train(sample)
    return pca.apply(vectors)


def knn_graph(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, euclidean distances), each (n, k), every point's own index first."""
    n, dim = x.shape
    nlist = int(max(1, min(n // 40, round(4 * np.sqrt(n)))))
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
    index.cp.seed = seed
    index.cp.niter = 10
    index.train(x)
    index.add(x)
    index.nprobe = min(nlist, max(KNN_PROBES, nlist // 32))
    dist, ind = index.search(x, k)
    rows = np.arange(n)
    # Rare short probe lists pad with -1: use the point itself there, at the largest distance.
    short = ind < 0
    ind[short] = np.broadcast_to(rows[:, None], ind.shape)[short]
    dist[short] = np.inf
    own = ind == rows[:, None]
    lacking = ~own.any(axis=1)
    ind[lacking] = np.column_stack([rows[lacking], ind[lacking, :-1]])
    dist[lacking] = np.column_stack([np.zeros(lacking.sum(), np.float32), dist[lacking, :-1]])
    at = np.where(lacking, 0, own.argmax(axis=1))
    moved = np.flatnonzero(at > 0)  # a duplicate at distance 0 came before the point itself
    ind[moved, at[moved]] = ind[moved, 0]
    ind[moved, 0] = moved
    dist = np.sqrt(np.maximum(dist, 0.0))
    finite = np.isfinite(dist)
    dist[~finite] = dist[finite].max() if finite.any() else 1.0
    return ind.astype(np.int64), dist.astype(np.float32)


def umap_layout(vectors: np.ndarray, n_neighbors: int, seed: int = 0,
                epochs: int = LARGE_EPOCHS) -> np.ndarray:
    """2-D UMAP coordinates of many points (see the module docstring), seeded."""
    import umap  # imported here: loading numba takes seconds, only the map needs it

    x = reduce_dims(vectors, seed=seed)
    ind, dist = knn_graph(x, n_neighbors, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=0.1, random_state=seed,
                            init="pca", n_epochs=epochs, precomputed_knn=(ind, dist, None))
        return reducer.fit_transform(x).astype(np.float32)
