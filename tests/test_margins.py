"""Margins of a run's negatives and the what-if filters."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.margins import WhatIf, margin_frame, positive_scores, what_if
from tests.synthetic import synthetic_workspace


@pytest.fixture
def mined(store, tmp_path):
    return synthetic_workspace(store, tmp_path / "tiny", k=2)


def test_margin_is_positive_minus_negative(store, mined):
    frame = margin_frame(store, mined.run_id)
    assert len(frame) == int(mined.candidates["selected"].sum())
    assert np.allclose(frame["margin"], frame["pos_score"] - frame["score"])
    whole = margin_frame(store, mined.run_id, selected_only=False)
    assert len(whole) == len(mined.candidates)
    assert positive_scores(frame)["query_id"].tolist() == ["q1", "q2", "q3", "q4"]


def test_no_filter_drops_nothing(store, mined):
    result = what_if(store, mined.run_id, WhatIf())
    assert (result.selected_dropped, result.pool_dropped, result.queries_short) == (0, 0, 0)
    assert result.rules.empty and result.k == 2 and result.queries == 4


def test_max_score_counts_match_the_pool(store, mined):
    threshold = 0.5
    result = what_if(store, mined.run_id, WhatIf(max_score=threshold))
    pool = mined.candidates
    over = pool["score"] > threshold
    assert result.pool_dropped == int(over.sum())
    assert result.selected_dropped == int((over & pool["selected"]).sum())
    assert result.queries_affected == pool.loc[over & pool["selected"], "query_id"].nunique()
    assert result.rules.iloc[0]["pool dropped"] == int(over.sum())


def test_a_filter_that_drops_everything_leaves_every_query_short(store, mined):
    result = what_if(store, mined.run_id, WhatIf(absolute_margin=5.0))
    assert result.pool_dropped == result.pool
    assert result.queries_short == result.queries == 4
    assert np.isnan(result.hardness_after)


def test_hardness_after_refilling_is_the_mean_of_each_querys_k_best_kept(store, mined):
    pool = mined.candidates[mined.candidates["rank"].notna()]
    threshold = float(pool["score"].quantile(0.6))
    result = what_if(store, mined.run_id, WhatIf(max_score=threshold))
    k = store.get_run(mined.run_id).num_negatives
    kept = pool[pool["score"] <= threshold]
    best = kept.sort_values("score", ascending=False).groupby("query_id").head(k)
    assert result.hardness_after == pytest.approx(best["score"].mean())
    assert result.hardness == pytest.approx(pool.loc[pool["selected"], "score"].mean())
    assert result.hardness_after < result.hardness  # the filter took the hardest away
    unfiltered = what_if(store, mined.run_id, WhatIf())
    assert unfiltered.hardness_after == pytest.approx(unfiltered.hardness)  # top-k refills itself


def test_hardness_after_refilling_applies_decisions_as_an_export_does(store, mined):
    """A pair marked false negative never refills; a reviewed hard negative is kept first even
    when a filter would drop it; the pool's hardest k ignore both."""
    pool = store.run_candidates(mined.run_id)
    pool = pool[pool["rank"].notna()]
    k = store.get_run(mined.run_id).num_negatives
    threshold = float(pool["score"].quantile(0.6))
    ranked = pool.sort_values("score", ascending=False)
    hardest_q1 = ranked[ranked.query_id == "q1"].iloc[0]  # above the threshold: dropped anyway
    low_q2 = ranked[(ranked.query_id == "q2") & (ranked.score <= threshold)].iloc[0]
    store.record_decision(hardest_q1.query_hash, hardest_q1.doc_hash, "hard_negative", "ann")
    store.record_decision(low_q2.query_hash, low_q2.doc_hash, "false_negative", "ann")
    result = what_if(store, mined.run_id, WhatIf(max_score=threshold))
    usable = pool[((pool.score <= threshold) | (pool.doc_id == hardest_q1.doc_id)
                   & (pool.query_id == "q1"))
                  & ~((pool.query_id == "q2") & (pool.doc_id == low_q2.doc_id))]
    usable = usable.assign(first=~((usable.query_id == "q1")
                                   & (usable.doc_id == hardest_q1.doc_id)))
    expected = usable.sort_values(["query_id", "first", "score"],
                                  ascending=[True, True, False]).groupby("query_id").head(k)
    assert result.hardness_after == pytest.approx(expected["score"].mean())
    top = ranked.groupby("query_id").head(k)
    assert result.pool_hardest == pytest.approx(top["score"].mean())


def test_relative_margin_and_unscored_suspicion(store, mined):
    pool = mined.candidates
    result = what_if(store, mined.run_id, WhatIf(relative_margin=0.95, suspicion_threshold=0.5))
    assert result.pool_dropped == int((pool["score"] > 0.95 * pool["pos_score"]).sum())
    rules = dict(zip(result.rules["rule"], result.rules["pool dropped"]))
    assert rules["suspicion above 0.5"] == 0  # the synthetic run is not scored
    with pytest.raises(WorkbenchError, match="relative margin"):
        what_if(store, mined.run_id, WhatIf(relative_margin=0.0))
