"""Learning suspicion from decisions (core/false_negatives/learning.py) on synthetic decisions."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from core.false_negatives.learning import QUERY_RATE, learned_suspicion, query_rate


def _percentile_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty(len(values))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out[idx] = (np.argsort(np.argsort(values[idx])) + 0.5) / len(idx)
    return out


def _queue_slice(cold: np.ndarray, n: int) -> np.ndarray:
    """The review queue's pick: the n most suspicious candidates."""
    return np.argsort(-cold, kind="stable")[:n]


def test_query_rate_never_counts_the_candidates_own_label():
    queries = np.array(["a", "a", "a", "b", "b", "c"])
    labels = np.array([1.0, 1.0, np.nan, 0.0, 1.0, np.nan])
    rate = query_rate(queries, labels, prior=2.0)
    share = 3 / 4
    expected = np.log(np.array([(1 + 2 * share) / 3, (1 + 2 * share) / 3, (2 + 2 * share) / 4,
                                (1 + 2 * share) / 3, (0 + 2 * share) / 3, share]) / share)
    np.testing.assert_allclose(rate, expected)
    assert rate[5] == 0.0  # a query without decisions keeps the run's share


def test_learning_from_queue_order_decisions_beats_cold_on_held_out_candidates():
    # Queries differ in how many unlabeled positives they hide (25 % vs 2 %); the cold suspicion
    # reads the signal per query, so it cannot see that. Decisions come in queue order: only the
    # most suspicious slice is decided.
    rng = np.random.default_rng(0)
    n_queries, per_query = 40, 50
    queries = np.repeat([f"q{i}" for i in range(n_queries)], per_query)
    rate = np.repeat(np.where(np.arange(n_queries) % 2 == 0, 0.25, 0.02), per_query)
    truth = (rng.random(len(queries)) < rate).astype(float)
    signal = truth + rng.normal(0.0, 1.0, len(queries))
    per_query_pct = _percentile_within(signal, queries)
    signals = np.column_stack([per_query_pct])
    cold = per_query_pct
    labels = np.full(len(queries), np.nan)
    decided = _queue_slice(cold, 200)
    labels[decided] = truth[decided]

    scores = learned_suspicion(signals, ["signal_query_pct"], cold, queries, labels)

    held = np.isnan(labels)
    cold_auc = roc_auc_score(truth[held], cold[held])
    learned_auc = roc_auc_score(truth[held], scores.probability[held])
    assert learned_auc > cold_auc + 0.05
    assert scores.features == ["signal_query_pct", QUERY_RATE]
    assert 0.0 <= scores.cv_auc <= 1.0
    assert np.all((scores.probability > 0) & (scores.probability < 1))


def test_decisions_that_teach_nothing_keep_the_cold_order():
    # One query, signals constant over the decided slice, labels independent of everything: the
    # model has nothing to correct, and the undecided candidates keep the cold suspicion's order
    # (a model fitted freely on such a slice could reorder them at will).
    rng = np.random.default_rng(1)
    n = 300
    cold = rng.random(n)
    queries = np.full(n, "q")
    labels = np.full(n, np.nan)
    decided = _queue_slice(cold, 60)
    labels[decided] = rng.integers(0, 2, len(decided)).astype(float)
    signals = np.zeros((n, 2))

    scores = learned_suspicion(signals, ["a", "b"], cold, queries, labels)

    held = np.isnan(labels)
    assert spearmanr(scores.probability[held], cold[held]).statistic > 0.999

