"""Projection benchmark (issue 5, target 5): UMAP of 100,000 points, cold, warm and cached.

Ingests a precomputed-embeddings folder (bench/synthetic.py) into a fresh workspace and projects
its embedding version with ``core.projection.project`` (PCA to 50 dimensions, FAISS neighbours,
UMAP on that graph above 5,000 points):
- cold: first projection in this process (includes importing UMAP and numba compiling it);
- cached: the same projection again (read back from the workspace);
- warm: another seed (computed again, numba already compiled).
Neighbourhood preservation (share of each point's 10 nearest neighbours in the embedding that are
among its 10 nearest on the map, 1,000 sampled points; higher is better) says the map is a map.
With ``--compare N`` both layouts run side by side on an N-point sample: UMAP's own pipeline
(cosine NN-descent, spectral initialisation, as the app used before) and the fast path.

Run:
    .venv/bin/python bench/synthetic.py --out data/workspaces/bench/synthetic-100k \
        --docs 100000 --queries 10000
    .venv/bin/python bench/projection.py --data data/workspaces/bench/synthetic-100k \
        --points 100000 --compare 20000 --figure bench/projection-100k.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import core.layout  # noqa: E402
from core.projection import EmbeddingVersion, embedded_points, project  # noqa: E402
from core.store import Store  # noqa: E402
from core.vectors import fingerprint, ingest_vectors  # noqa: E402
from results import report  # noqa: E402  (bench/, the script's own folder)


def preservation(vectors: np.ndarray, xy: np.ndarray, k: int = 10, sample: int = 1000) -> float:
    """Mean share of a sampled point's k nearest neighbours (cosine) kept among its k nearest on
    the map."""
    import faiss

    rng = np.random.default_rng(0)
    rows = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    high = faiss.IndexFlatIP(vectors.shape[1])
    high.add(np.ascontiguousarray(vectors, dtype=np.float32))
    flat = faiss.IndexFlatL2(2)
    flat.add(np.ascontiguousarray(xy, dtype=np.float32))
    _, a = high.search(np.ascontiguousarray(vectors[rows], dtype=np.float32), k + 1)
    _, b = flat.search(np.ascontiguousarray(xy[rows], dtype=np.float32), k + 1)
    return float(np.mean([len(set(x[1:]) & set(y[1:])) / k for x, y in zip(a, b)]))


def draw(points, path: Path, size: int = 1200) -> None:
    """A PNG scatter: documents grey, queries red (Pillow, no plotting library needed)."""
    from PIL import Image

    xy = points[["x", "y"]].to_numpy(dtype=np.float64)
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    pix = np.clip((xy - lo) / (hi - lo + 1e-9) * (size - 1), 0, size - 1).astype(int)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    queries = points["kind"].to_numpy() == "query"
    for mask, colour in ((~queries, (90, 90, 90)), (queries, (220, 40, 40))):
        image[size - 1 - pix[mask, 1], pix[mask, 0]] = colour
    Image.fromarray(image).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--compare", type=int, default=0,
                        help="also time both layouts side by side on this many points")
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result: dict = {"points": args.points, "load_average_start": os.getloadavg()[0]}
    store = Store(Path(tempfile.mkdtemp(prefix="projection-")) / "ws.duckdb")
    ingested = ingest_vectors(store, args.data)
    version = EmbeddingVersion(ingested.dataset.dataset_id, fingerprint(ingested.model), "", "")
    for label, seed in (("cold", 0), ("cached", 0), ("warm", 1)):
        t, cpu = time.perf_counter(), time.process_time()
        projection = project(store, version, max_points=args.points, seed=seed)
        result[f"{label}_s"] = round(time.perf_counter() - t, 2)
        # CPU seconds of every thread of this process: on a shared machine the wall time also
        # counts the waiting; on 2 idle cores the wall time is at least cpu / 2.
        result[f"{label}_cpu_s"] = round(time.process_time() - cpu, 2)
        result[f"{label}_load_average"] = os.getloadavg()[0]
        print(json.dumps(result), flush=True)
        if label == "cold":
            first = projection
    embedded = embedded_points(store, version)
    index = {(k, i): n for n, (k, i) in enumerate(zip(embedded.points["kind"],
                                                       embedded.points["id"]))}
    rows = np.array([index[(k, i)] for k, i in zip(first.points["kind"], first.points["id"])])
    vectors = embedded.vectors[rows]
    xy = first.points[["x", "y"]].to_numpy()
    result["shown"] = len(first.points)
    result["neighbours_kept_at_10"] = round(preservation(vectors, xy), 3)
    if args.figure:
        draw(first.points, args.figure)
    if args.compare:
        sample = vectors[np.random.default_rng(1).choice(len(vectors), args.compare,
                                                          replace=False)]
        import umap

        # Warm both up on a few points first: numba compiles each pipeline once per process.
        core.layout.umap_layout(sample[:2000], 15, seed=0)
        umap.UMAP(n_neighbors=15, metric="cosine", init="spectral").fit_transform(sample[:500])
        t = time.perf_counter()
        fast = core.layout.umap_layout(sample, 15, seed=0)
        result["compare_fast_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        reference = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=0,
                              init="spectral").fit_transform(sample)
        result["compare_umap_default_s"] = round(time.perf_counter() - t, 2)
        result["compare_ratio"] = round(result["compare_fast_s"] / result["compare_umap_default_s"],
                                        3)
        result["compare_kept_fast"] = round(preservation(sample, fast), 3)
        result["compare_kept_umap_default"] = round(preservation(sample, reference), 3)
    result["load_average_end"] = os.getloadavg()[0]
    report(result, args.json)


if __name__ == "__main__":
    main()
