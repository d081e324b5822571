"""The reasons and summary a learned model writes (core/false_negatives/learned_reasons.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.false_negatives.learned_reasons import (
    EXPLAIN_MIN_LOG_ODDS, correction_reasons, named_weights, query_effects, query_reasons,
    signal_label, surprising_queries,
)


def test_the_learned_reasons_say_what_moved_a_candidate():
    """The reasons a model adds: its query's effect and the corrections (with the signal that
    moved them most), each only when it moves the log-odds by EXPLAIN_MIN_LOG_ODDS or more, and
    never on decided candidates."""
    shift = np.array([0.5, 0.5, -0.3, 0.1, 0.5])
    correction = np.array([0.25, -0.4, 0.1, 0.2, 1.0])
    top = np.array([0, 1, 0, -1, 0])
    undecided = np.array([True, True, True, True, False])
    queries = pd.Series(["q1", "q1", "q2", "q3", "q1"])
    assert query_effects(shift, queries).to_dict() == {"q1": 0.5, "q2": -0.3, "q3": 0.1}
    assert query_reasons(query_effects(shift, queries), queries, undecided).to_pylist() == [
        "more false negatives than expected in its query (+0.50 log-odds)",
        "more false negatives than expected in its query (+0.50 log-odds)",
        "fewer false negatives than expected in its query (-0.30 log-odds)", None, None]
    names = ["a_query_pct", "b_global_pct"]
    assert correction_reasons(correction, top, names, undecided).to_pylist() == [
        "ranked higher by the learned weights (+0.25 log-odds; most: a within its query)",
        "ranked lower by the learned weights (-0.40 log-odds; most: b across the run)",
        None, "ranked higher by the learned weights (+0.20 log-odds)", None]
    assert EXPLAIN_MIN_LOG_ODDS == 0.2  # the figures above sit on both sides of it
    assert correction_reasons(None, None, names, undecided).to_pylist() == [None] * 5


def test_the_run_keeps_readable_weights_and_the_most_surprising_queries():
    assert signal_label("positive_similarity") == "positive similarity"
    assert signal_label("relative_score_global_pct") == "relative score across the run"
    assert named_weights(np.array([0.1, 0.7, 0.0]), ["a_query_pct", "b", "c_global_pct"]) == {
        "b": 0.7, "a within its query": 0.1, "c across the run": 0.0}
    assert named_weights(None, ["a"]) == {}
    queries = pd.Series([f"q{i}" for i in range(14)])
    effects = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.1, -0.1, -0.5, -0.6, -0.7, -0.8, -0.9,
                        -1.0])
    kept = surprising_queries(query_effects(effects, queries))
    assert list(kept) == ["q0", "q1", "q2", "q3", "q4", "q9", "q10", "q11", "q12", "q13"]
    assert kept["q13"] == -1.0 and "q6" not in kept  # below 0.2: no surprise worth keeping
