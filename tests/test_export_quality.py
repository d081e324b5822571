"""Tests for core/export_quality.py: how hard and how suspect an export's negatives are."""

from __future__ import annotations

import pandas as pd

from core.export import ExportOptions, build_export
from core.export_quality import export_quality, quality_text
from core.mining.curated import DEFAULT_MAX_SUSPICION
from core.store import Store
from tests.test_export import CANDIDATES, add_dataset, add_run, decide, mined  # noqa: F401

SUSPICION = {("q1", "d3"): 0.9, ("q1", "d4"): 0.5, ("q1", "d6"): 0.2, ("q1", "d7"): 0.1,
             ("q2", "d6"): 0.7, ("q2", "d8"): 0.3}


def score_suspicion(store: Store, run_id: int) -> None:
    pairs = list(SUSPICION)
    store.put_suspicion(run_id, pd.DataFrame({
        "query_id": [q for q, _ in pairs], "doc_id": [d for _, d in pairs],
        "suspicion": list(SUSPICION.values()), "reasons": "[]", "signals": "{}"}), "cold")


def test_quality_says_how_hard_and_how_suspect_the_negatives_are(mined):
    store, run_id = mined
    score_suspicion(store, run_id)
    quality = build_export(store, run_id, ExportOptions("triplet")).attrs["quality"]
    # Exported: q1 d3 (0.875), d4 (0.75); q2 d6 (0.8125). The pools' hardest 2 add q2's d8.
    assert quality == {
        "k": 2, "negatives": 3, "hardness": 0.8125, "pool_hardest": 0.7812,
        "relative_hardness": round(0.8125 / 0.78125, 4), "mean_suspicion": 0.7,
        "flagged": 2, "flag_threshold": DEFAULT_MAX_SUSPICION, "unscored": 0}
    assert quality_text(quality) == (
        "hardness 0.812 (1.04 x the pool's hardest 2, 0.781); mean suspicion 0.70; "
        "2 of 3 unreviewed above suspicion 0.65 (curated's default threshold)")


def test_quality_follows_decisions(mined):
    store, run_id = mined
    score_suspicion(store, run_id)
    decide(store, "q1", "d3", "hard_negative")  # reviewed: no longer flagged
    decide(store, "q2", "d6", "false_negative")  # q2 is left without a negative
    quality = build_export(store, run_id, ExportOptions("triplet")).attrs["quality"]
    assert (quality["negatives"], quality["flagged"], quality["hardness"]) == (2, 0, 0.8125)
    # plain top-k's hardness ignores decisions: the pool's hardest 2 of q1 only
    assert quality["pool_hardest"] == 0.8125
    only = build_export(store, run_id, ExportOptions("triplet", only_reviewed=True))
    assert (only.attrs["quality"]["negatives"], only.attrs["quality"]["hardness"]) == (1, 0.875)


def test_quality_of_an_unscored_run_or_an_empty_export(store):
    run_id = add_run(store, add_dataset(store), rows=[("q1", "d1", 1, 0.96875, True, True),
                                                      *CANDIDATES])
    quality = build_export(store, run_id, ExportOptions("triplet")).attrs["quality"]
    # the positive d1 in q1's pool is not among "the pool's hardest"
    assert quality["pool_hardest"] == round((0.875 + 0.75 + 0.8125 + 0.6875) / 4, 4)
    assert (quality["mean_suspicion"], quality["unscored"], quality["flagged"]) == (None, 3, 0)
    assert "3 without a suspicion score" in quality_text(quality)
    empty = export_quality(store, store.get_run(run_id), pd.DataFrame(
        columns=["query_id", "doc_id", "score", "tier"]), 2)
    assert empty["negatives"] == 0 and empty["hardness"] is None
    assert quality_text(empty) == "no negatives"
