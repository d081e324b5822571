"""The 2-D projection: vectors from the cache, sampling that keeps what the map must show."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.projection import EmbeddingVersion, embedded_points, embedding_version, project, \
    version_runs
from tests.synthetic import MODEL_FP, synthetic_workspace


@pytest.fixture
def mined(store, tmp_path):
    return synthetic_workspace(store, tmp_path / "tiny")


def test_embedded_points_come_from_the_cache(store, mined):
    version = embedding_version(store.get_run(mined.run_id))
    assert version == EmbeddingVersion(mined.dataset_id, MODEL_FP, "", "")
    embedded = embedded_points(store, version)
    assert (embedded.points["kind"] == "document").sum() == 12
    assert (embedded.points["kind"] == "query").sum() == 4
    assert np.allclose(np.linalg.norm(embedded.vectors, axis=1), 1.0, atol=1e-5)
    assert version_runs(store, version) == (mined.run_id,)


def test_projection_of_everything(store, mined):
    version = embedding_version(store.get_run(mined.run_id))
    projection = project(store, version, max_points=100)
    assert not projection.sampled and projection.total == 16
    assert len(projection.points) == 16
    assert np.isfinite(projection.points[["x", "y"]].to_numpy()).all()


def test_sample_keeps_queries_positives_and_selected_negatives(store, mined):
    version = embedding_version(store.get_run(mined.run_id))
    projection = project(store, version, max_points=14, runs=(mined.run_id,))
    assert projection.sampled and len(projection.points) == 14
    shown = set(zip(projection.points["kind"], projection.points["id"]))
    must = {("query", q) for q in ("q1", "q2", "q3", "q4")}
    must |= {("document", d) for d in ("d1", "d4", "d6", "d10")}
    must |= {("document", d) for d in mined.candidates.loc[mined.candidates["selected"], "doc_id"]}
    assert must <= shown


def test_missing_vectors_and_tiny_limits_are_readable_errors(store, mined):
    version = EmbeddingVersion(mined.dataset_id, "another-model", "", "")
    with pytest.raises(WorkbenchError, match="no cached vector"):
        project(store, version)
    with pytest.raises(WorkbenchError, match="at least 5 points"):
        project(store, embedding_version(store.get_run(mined.run_id)), max_points=2)
