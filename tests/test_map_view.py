"""What the map draws: roles, a query's neighbourhood, selections and their actions."""

from __future__ import annotations

import pandas as pd
import pytest

from core.clusters import Clusters
from core.errors import WorkbenchError
from core.map_view import label_pairs, map_points, query_focus, selection_pairs, selection_table
from core.projection import Projection
from tests.synthetic import synthetic_workspace


@pytest.fixture
def mined(store, tmp_path):
    return synthetic_workspace(store, tmp_path / "tiny")


def _layout(store, dataset_id):
    """A stand-in projection and clustering over every point (the map code does not care how)."""
    docs = store.dataset_frame(dataset_id, "documents")["doc_id"].tolist()
    queries = store.dataset_frame(dataset_id, "queries")["query_id"].tolist()
    points = pd.DataFrame({"id": docs + queries,
                           "kind": ["document"] * len(docs) + ["query"] * len(queries)})
    points["x"], points["y"] = range(len(points)), 0.0
    assignments = points[["id", "kind"]].assign(cluster=0, cluster_name="0: all")
    return Projection(points, len(points), False, 5), Clusters(assignments, {0: "0: all"},
                                                               pd.DataFrame())


def test_roles_and_decisions(store, mined):
    projection, clusters = _layout(store, mined.dataset_id)
    selected = set(mined.candidates.loc[mined.candidates["selected"], "doc_id"])
    label_pairs(store, mined.run_id, pd.DataFrame({"query_id": ["q1"], "doc_id": ["d2"]}),
                "false_negative", "alice")
    points = map_points(store, mined.run_id, projection, clusters).set_index(["kind", "id"])
    assert points.loc[("document", "d1"), "role"] == "positive"
    assert points.loc[("query", "q1"), "role"] == "query"
    assert all(points.loc[("document", d), "role"] in ("selected negative", "positive")
               for d in selected)
    assert points.loc[("document", "d2"), "decision"] == "false_negative"
    assert points.loc[("document", "d12"), "decision"] == "undecided"
    assert points["suspicion"].isna().all()  # the synthetic run is not scored


def test_query_focus_lists_positives_and_selected_negatives(store, mined):
    focus = query_focus(store, mined.run_id, "q1")
    assert focus.positives == ["d1"]
    expected = mined.candidates[mined.candidates["query_id"].eq("q1")
                                & mined.candidates["selected"]]["doc_id"].tolist()
    assert focus.negatives["doc_id"].tolist() == expected


def test_selection_pairs_and_labels(store, mined):
    projection, clusters = _layout(store, mined.dataset_id)
    points = map_points(store, mined.run_id, projection, clusters)
    picked = [("document", "d2"), ("query", "q4")]
    table = selection_table(store, mined.run_id, points, picked)
    assert table["text"].iloc[0].startswith("Lyon")
    with_query = selection_pairs(store, mined.run_id, picked, query_id="q1")
    q4_negatives = int(mined.candidates[mined.candidates["query_id"].eq("q4")]["selected"].sum())
    assert len(with_query) == 1 + q4_negatives
    chosen = mined.candidates[mined.candidates["doc_id"].eq("d2") & mined.candidates["selected"]]
    every = selection_pairs(store, mined.run_id, [("document", "d2")])
    assert sorted(every["query_id"]) == sorted(chosen["query_id"]) and len(every) >= 1
    with pytest.raises(WorkbenchError, match="annotator name is required"):
        label_pairs(store, mined.run_id, every, "hard_negative", "  ")
    assert label_pairs(store, mined.run_id, every, "hard_negative", "bob") == len(every)
    assert len(store.latest_decisions()) == len(every)
