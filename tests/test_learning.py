"""Learning suspicion from decisions (core/false_negatives/learning.py) on synthetic decisions."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from core.false_negatives.learning import (
    QUERY_EFFECT, MonotoneLogistic, beats_chance, learned_suspicion, query_effect,
)


def _percentile_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty(len(values))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out[idx] = (np.argsort(np.argsort(values[idx])) + 0.5) / len(idx)
    return out


def _queue_slice(cold: np.ndarray, n: int) -> np.ndarray:
    """The review queue's pick: the n most suspicious candidates."""
    return np.argsort(-cold, kind="stable")[:n]


def test_query_effect_measures_surprise_against_the_cold_suspicion():
    """A query whose decisions went as the cold suspicion expected learns no effect, however many
    were false negatives; one surprised upwards (downwards) gets a positive (negative) effect that
    grows with the evidence; a query without decisions gets none; every candidate of a query
    shares its effect."""
    expected = np.log(0.8 / 0.2)  # the cold suspicion said 0.8
    queries = np.repeat(["as-expected", "surprised-up", "surprised-down", "undecided", "more-up"],
                        [5, 5, 5, 3, 20])
    offset = np.concatenate([np.full(5, expected), np.full(5, 0.0), np.full(5, expected),
                             np.zeros(3), np.zeros(20)])
    labels = np.concatenate([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0],
                             [np.nan] * 3, [1] * 20]).astype(float)
    labels[9] = np.nan  # an undecided candidate of a decided query shares the query's effect
    effect = query_effect(queries, labels, offset)
    by_query = {q: np.unique(effect[queries == q]) for q in np.unique(queries)}
    assert all(len(v) == 1 for v in by_query.values())
    e = {q: float(v[0]) for q, v in by_query.items()}
    assert abs(e["as-expected"]) < 1e-6 and e["undecided"] == 0.0
    assert e["surprised-up"] > 0.5 and e["surprised-down"] < -0.5
    assert e["more-up"] > e["surprised-up"]  # 20 surprises outweigh 4 under the same prior
    # The prior keeps a handful of decisions from swinging the effect without bound.
    assert e["surprised-up"] < 4.0


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
    assert scores.corrections and scores.features == ["signal_query_pct", QUERY_EFFECT]
    assert 0.0 <= scores.cv_auc <= 1.0
    assert np.all((scores.probability > 0) & (scores.probability < 1))


def test_what_moved_each_candidate_adds_up_to_its_learned_suspicion():
    """Undecided candidates' learned log-odds are the cold log-odds plus their query's effect plus
    the corrections against the pool's median candidate (plus one constant); the top correction
    is the signal whose term moved it most that way."""
    rng = np.random.default_rng(2)
    queries = np.repeat([f"q{i}" for i in range(20)], 30)
    truth = (rng.random(len(queries)) < np.repeat(rng.random(20) * 0.4, 30)).astype(float)
    signals = np.column_stack([truth + rng.normal(0, 1, len(queries)),
                               truth * 0.5 + rng.normal(0, 1, len(queries)),
                               rng.normal(0, 1, len(queries))])
    cold = _percentile_within(signals[:, 0], queries)
    labels = np.full(len(queries), np.nan)
    decided = _queue_slice(cold, 200)
    labels[decided] = truth[decided]

    scores = learned_suspicion(signals, ["a_query_pct", "b_global_pct", "c"], cold, queries,
                               labels)

    assert scores.corrections
    held = np.isnan(labels)
    logit = np.log(np.clip(cold, 1e-3, 1 - 1e-3) / (1 - np.clip(cold, 1e-3, 1 - 1e-3)))
    learned = np.log(scores.probability / (1 - scores.probability))
    rest = (learned - logit - scores.query_shift - scores.correction)[held]
    np.testing.assert_allclose(rest, rest[0], atol=1e-9)  # the intercept and the medians' sum
    for q in np.unique(queries):  # one effect per query
        assert np.ptp(scores.query_shift[queries == q]) == 0.0
    assert np.abs(scores.query_shift).max() > 0.2
    model_terms = scores.correction[held]
    assert (model_terms > 0).any() and (model_terms < 0).any()
    top = scores.top_correction
    assert set(np.unique(top)) <= {-1, 0, 1, 2} and (top >= 0).any()
    # the named signal's term points the corrections' way, and no other term goes further
    rows = np.flatnonzero(top >= 0)
    sign = np.sign(scores.correction[rows])
    model = MonotoneLogistic().fit(signals[~held], labels[~held],
                                   (logit + scores.query_shift)[~held])
    terms = model.contributions(signals)
    terms = (terms - np.median(terms, axis=0))[rows] * sign[:, None]
    assert (terms[np.arange(len(rows)), top[rows]] > 0).all()
    assert (terms[np.arange(len(rows)), top[rows]] >= terms.max(axis=1) - 1e-12).all()


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



def test_corrections_apply_only_when_cross_validation_beats_chance():
    """Decisions whose labels are noise show no skill in cross-validation: the signals keep their
    cold weighting and only each query's effect is learned (out of fold for decided pairs)."""
    assert beats_chance(0.70, 143, 57) and not beats_chance(0.51, 89, 111)
    assert not beats_chance(0.60, 10, 10) and beats_chance(0.60, 1000, 1000)
    assert not beats_chance(0.9, 0, 10) and not beats_chance(float("nan"), 5, 5)
    rng = np.random.default_rng(3)
    n = 400
    queries = np.repeat([f"q{i}" for i in range(8)], n // 8)
    cold = rng.random(n)
    signals = rng.random((n, 2))
    labels = np.full(n, np.nan)
    decided = _queue_slice(cold, 120)
    labels[decided] = rng.integers(0, 2, len(decided)).astype(float)

    scores = learned_suspicion(signals, ["a", "b"], cold, queries, labels)

    assert not scores.corrections and scores.features == [QUERY_EFFECT]
    assert scores.cv_auc < 0.65
    offset = np.log(np.clip(cold, 1e-3, 1 - 1e-3) / np.clip(1 - cold, 1e-3, 1))
    shifted = offset + query_effect(queries, labels, offset)
    held = np.isnan(labels)
    np.testing.assert_allclose(scores.probability[held], 1 / (1 + np.exp(-shifted[held])))
    assert np.abs(scores.probability[~held] - 1 / (1 + np.exp(-shifted[~held]))).max() > 1e-6
