"""Progress per annotator and agreement between annotators."""

from __future__ import annotations

import math

import pytest

from core.annotation import agreement, review_progress
from core.review import decide
from tests.synthetic import synthetic_workspace


@pytest.fixture
def mined(store, tmp_path):
    return synthetic_workspace(store, tmp_path / "tiny")


def test_progress_per_annotator_and_overall(store, mined):
    decide(store, mined.run_id, "q1", "d2", "false_negative", "alice")
    decide(store, mined.run_id, "q1", "d3", "hard_negative", "alice")
    decide(store, mined.run_id, "q1", "d2", "hard_negative", "bob")
    decide(store, mined.run_id, "q2", "d5", "unsure", "bob")
    store.retract_last_decision("bob")  # bob's unsure on (q2, d5) no longer counts
    progress = review_progress(store, mined.run_id)
    table = progress.table.set_index("annotator")
    assert table.loc["alice", "decided"] == 2 and table.loc["bob", "decided"] == 1
    assert table.loc["overall", "decided"] == 2
    assert table.loc["overall", "hard_negative"] == 2  # (q1, d2): bob's later label wins
    assert progress.pool_pairs == len(mined.candidates)
    assert progress.selected_pairs == int(mined.candidates["selected"].sum())


def test_agreement_fraction_kappa_and_disagreements(store, mined):
    for doc, a, b in (("d2", "false_negative", "hard_negative"), ("d3", "hard_negative",
                      "hard_negative"), ("d5", "unsure", "unsure"), ("d6", "hard_negative",
                      "hard_negative")):
        decide(store, mined.run_id, "q1", doc, a, "alice")
        decide(store, mined.run_id, "q1", doc, b, "bob")
    report = agreement(store)
    row = report.pairs.iloc[0]
    assert (row["annotator a"], row["annotator b"], row["shared"], row["agreed"]) == (
        "alice", "bob", 4, 3)
    assert row["agreement"] == 0.75
    # Cohen's kappa: p_o = 0.75; p_e = 0.5*0.75 + 0.25*0 + 0.25*0.25 = 0.4375
    assert math.isclose(row["kappa"], (0.75 - 0.4375) / (1 - 0.4375))
    assert report.disagreements[["query_id", "doc_id"]].values.tolist() == [["q1", "d2"]]


def test_no_shared_pairs_means_an_empty_report(store, mined):
    decide(store, mined.run_id, "q1", "d2", "hard_negative", "alice")
    report = agreement(store)
    assert report.pairs.empty and report.disagreements.empty
