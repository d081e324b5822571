"""k-means clusters named by their distinctive TF-IDF terms."""

from __future__ import annotations

import numpy as np
import pytest

from core.clusters import cluster_names, cluster_version, default_cluster_count
from core.errors import WorkbenchError
from core.projection import embedding_version
from tests.synthetic import synthetic_workspace


def test_planted_topics_become_named_clusters(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    clusters = cluster_version(store, embedding_version(store.get_run(mined.run_id)), 5)
    by_id = clusters.assignments.set_index(["kind", "id"])["cluster"]
    france = {by_id[("document", d)] for d in ("d1", "d2", "d3")}
    assert len(france) == 1
    assert by_id[("query", "q1")] in france  # the query joins its topic's cluster
    assert "france" in clusters.names[france.pop()]
    assert clusters.sizes["documents"].sum() == 12 and clusters.sizes["queries"].sum() == 4


def test_names_carry_words_only():
    texts = ["<script>alert(1)</script> rocket rocket", "<b>bold</b> garden", "rocket launch"]
    names = cluster_names(texts, np.array([0, 1, 0]), 2)
    assert "<" not in "".join(names.values()) and "rocket" in names[0]


def test_cluster_count_bounds(store, tmp_path):
    assert default_cluster_count(5000) == 30 and default_cluster_count(12) == 2
    mined = synthetic_workspace(store, tmp_path / "tiny")
    version = embedding_version(store.get_run(mined.run_id))
    with pytest.raises(WorkbenchError, match="cannot make 50 clusters"):
        cluster_version(store, version, 50)
