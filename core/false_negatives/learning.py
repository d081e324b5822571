"""Learn suspicion from annotators' decisions: a monotone logistic model over the detector signals,
anchored on the cold suspicion shifted by each query's own effect, learned from how its decisions
departed from what the cold suspicion expected."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import WorkbenchError
from core.false_negatives.learned_reasons import (
    CORRECTION_REASONS, QUERY_REASONS, correction_reasons, named_weights, query_effects,
    query_reasons, surprising_queries,
)
from core.store import Store
from core.store.records import utc_now

MIN_PER_LABEL = 20
# Decisions between automatic re-learning while reviewing (the Review page, the bench's review
# curve). Re-learning as decisions come in lets the queue follow what they teach: on dbpedia at
# 10 reviews per query, fn_rate 0.045 -> 0.020; every 20, 40 or 100 decisions gives about the
# same curve (bench/RESULTS.md).
RELEARN_EVERY = 50
FOLDS = 5
NOTE_PREFIX = "model learned from "
# Reasons a model wrote: learning again replaces them (a changed spelling must keep the old
# one here, or workspaces learned before keep both).
LEARNED_PREFIXES = (NOTE_PREFIX, *QUERY_REASONS, *CORRECTION_REASONS)
MAX_REASONS = 6  # the note, the two learned reasons and the cold suspicion's three
# The cold suspicion is kept in each candidate's signals under this key once a model replaces it.
COLD_KEY = "cold_suspicion"
QUERY_EFFECT = "query_effect"
# Prior variance of a query's effect on the log-odds (a normal prior centred on 0): a query's
# decisions must add up to about one unit of log-odds of surprise before they move it by half that.
QUERY_EFFECT_PRIOR_VARIANCE = 1.0
QUERY_EFFECT_STEPS = 8
# The corrections over the signals must show skill before they replace the cold suspicion's
# weighting: their cross-validated ROC-AUC on the decisions, less this many standard errors
# (Hanley-McNeil; 1.96: a one-sided 97.5 % bound), must stay above chance.
SKILL_Z = 1.96
_EPS = 1e-3


class TooFewDecisions(WorkbenchError):
    """Learning needs more decisions of a label than the run has."""


@dataclass(frozen=True)
class LearnReport:
    """What learning did. ``cv_auc``: cross-validated ROC-AUC on the decisions (higher is
    better; 0.5 is chance); ``rescored``: candidates whose suspicion was replaced;
    ``corrections``: whether the signals' corrections were applied (see ``learned_suspicion``)."""

    run_id: int
    false_negatives: int
    hard_negatives: int
    cv_auc: float
    rescored: int
    features: list[str]
    corrections: bool = True
    # The corrections' weights: log-odds per standard deviation of each signal (readable names,
    # largest first; empty without corrections), and the queries whose decisions moved their
    # effect most, up to ``learned_reasons.SURPRISING_QUERIES`` each way (log-odds; higher =
    # more false negatives than the cold suspicion expected).
    weights: dict[str, float] = field(default_factory=dict)
    query_effects: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        """What learning did, in readable sentences (the CLI and the Review page show it)."""
        lines = [f"run {self.run_id}: learned from {self.false_negatives} false-negative and "
                 f"{self.hard_negatives} hard-negative decisions; cross-validated ROC-AUC "
                 f"{self.cv_auc:.3f}; re-scored {self.rescored} candidates"]
        if not self.corrections:
            lines.append("the signals' corrections did not beat chance in cross-validation, so "
                         "the cold suspicion keeps its weighting, shifted by what each query's "
                         "decisions taught")
        elif self.weights:
            shown = {name: w for name, w in self.weights.items() if round(w, 2) != 0}
            rest = len(self.weights) - len(shown)
            lines.append("learned weights (log-odds per standard deviation): " + ", ".join(
                [f"{name} {w:.2f}" for name, w in shown.items()]
                + ([f"{'the other ' if shown else 'all '}{rest}: 0"] if rest else [])))
        if self.query_effects:
            lines.append("queries whose decisions surprised the cold suspicion most: " + ", ".join(
                f"{q} {e:+.2f}" for q, e in self.query_effects.items()))
        return "\n".join(lines)

    def summary(self) -> dict:
        """What the run keeps of the model (``RunInfo.search["learned_model"]``)."""
        return asdict(self)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class MonotoneLogistic:
    """Logistic regression whose feature weights are >= 0 (L2-regularised, L-BFGS-B), optionally
    on top of a fixed offset (a prior log-odds per row, coefficient 1).

    Every feature is evidence that grows with suspicion, so a weight below zero can only be an
    artefact of where annotators looked: the review queue shows the most suspicious candidates
    first, and an unconstrained model fit on that slice inverts signals outside it (measured on
    cranfield: held-out ROC-AUC fell to 0.3-0.5). The constraint keeps what the decisions teach
    about the signals' relative weights and nothing that contradicts their direction.
    """

    def __init__(self, l2: float = 1.0) -> None:
        self.l2 = l2

    def fit(self, x: np.ndarray, y: np.ndarray,
            offset: np.ndarray | None = None) -> "MonotoneLogistic":
        from scipy.optimize import minimize

        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - self.mean_) / self.scale_
        n, d = z.shape
        base = np.zeros(n) if offset is None else offset

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            p = _sigmoid(z @ w[:d] + w[d] + base)
            eps = 1e-9
            value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
            value += self.l2 * float(w[:d] @ w[:d]) / n
            grad = np.append(z.T @ (p - y) / n + 2 * self.l2 * w[:d] / n, np.mean(p - y))
            return value, grad

        bounds = [(0.0, None)] * d + [(None, None)]
        result = minimize(loss, np.append(np.full(d, 0.1), 0.0), jac=True, method="L-BFGS-B",
                          bounds=bounds)
        self.coef_, self.intercept_ = result.x[:d], result.x[d]
        return self

    def predict_proba(self, x: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        """Probability that each row is a false negative."""
        base = 0.0 if offset is None else offset
        return _sigmoid(self.contributions(x).sum(axis=1) + self.intercept_ + base)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each feature's term in each row's log-odds (weight x standardised value)."""
        return (x - self.mean_) / self.scale_ * self.coef_


def parsed_signals(pool: pd.DataFrame) -> list[dict]:
    """The pool's stored ``signals`` JSON, parsed (once: at a million candidates each pass costs
    seconds)."""
    if pool["signals"].isna().any():
        raise WorkbenchError("the run has candidates without suspicion signals; mine it again")
    return [json.loads(s) for s in pool["signals"]]


def feature_names(keys: list[str]) -> list[str]:
    """The signals a model learns from, of a run's sorted signal keys: every detector's global
    and per-query percentile, plus the raw values of the decisive detectors."""
    return [k for k in keys if k.endswith("_pct")] + [
        k for k in keys if k in ("positive_similarity", "cross_query", "teacher")]


def signal_matrix(pool: pd.DataFrame,
                  parsed: list[dict] | None = None) -> tuple[np.ndarray, list[str]]:
    """Evidence features from the pool's stored ``signals`` JSON (``parsed``: already parsed by
    ``parsed_signals``): every detector's global and per-query percentile, plus the raw values
    of the decisive detectors."""
    if parsed is None:
        parsed = parsed_signals(pool)
    names = feature_names(sorted(parsed[0]) if parsed else [])
    matrix = np.array([[row.get(n, 0.0) for n in names] for row in parsed], dtype=np.float64)
    return matrix, names


def cold_suspicion(pool: pd.DataFrame, parsed: list[dict] | None = None) -> np.ndarray:
    """Each candidate's suspicion before any model: kept in its signals once learning replaced it,
    else the run's stored (cold) suspicion; both the float32 the store keeps."""
    if parsed is None:
        parsed = [json.loads(s) for s in pool["signals"]]
    stored = pool["suspicion"].astype(float).to_numpy()
    return np.array([p.get(COLD_KEY, v) for p, v in zip(parsed, stored)],
                    dtype=np.float32).astype(np.float64)


def query_effect(queries: np.ndarray, labels: np.ndarray, offset: np.ndarray,
                 prior_variance: float = QUERY_EFFECT_PRIOR_VARIANCE) -> np.ndarray:
    """Per candidate: its query's effect on the log-odds, from how the query's decided candidates
    departed from ``offset`` (the cold suspicion's log-odds). 0 for a query without decisions.

    Queries differ in how many unlabeled positives they hide (one asks for a list of entities,
    another for one fact), which per-query evidence cannot see. A query whose reviewed candidates
    turned out false negatives more often than their cold suspicion expected has more of them
    among its unreviewed ones too; one whose candidates were as suspicious as expected learns
    nothing, however many of them were false negatives (the queue shows the most suspicious
    first, so a raw share would mostly echo the cold suspicion). The effect is the maximum a
    posteriori random intercept of a logistic model with the offset fixed and a normal prior
    (a few Newton steps; the problem is concave and separates by query).

    Args:
        queries: query id per candidate.
        labels: 1 (false negative), 0 (hard negative) or NaN (undecided) per candidate.
        offset: the cold log-odds per candidate.
    """
    codes, uniques = pd.factorize(pd.Series(queries))
    known = ~np.isnan(labels)
    y = np.where(known, labels, 0.0)
    effect = np.zeros(len(uniques))
    for _ in range(QUERY_EFFECT_STEPS):
        p = _sigmoid(offset + effect[codes])
        gradient = np.bincount(codes, np.where(known, y - p, 0.0), len(uniques))
        curvature = np.bincount(codes, np.where(known, p * (1 - p), 0.0), len(uniques))
        effect += (gradient - effect / prior_variance) / (curvature + 1.0 / prior_variance)
    return effect[codes]


@dataclass(frozen=True)
class LearnedScores:
    """``probability`` per candidate (out-of-fold for decided ones; higher = more likely a false
    negative), ``cv_auc`` on the decisions, the model's feature names, and whether the signals'
    corrections were applied (else the cold suspicion shifted by each query's effect)."""

    probability: np.ndarray
    cv_auc: float
    features: list[str]
    corrections: bool = True
    # What moved each candidate's log-odds from the cold suspicion (the final model's terms; the
    # decided candidates' out-of-fold scores come from other fits): its query's effect; the
    # corrections' sum against the pool's median candidate's (each signal's term less its median;
    # None without corrections), and the index in ``features`` of the signal whose term moved it
    # most that way (-1: none did).
    query_shift: np.ndarray | None = None
    correction: np.ndarray | None = None
    top_correction: np.ndarray | None = None
    weights: np.ndarray | None = None  # the corrections' (log-odds per standard deviation)


def beats_chance(auc: float, positives: int, negatives: int, z: float = SKILL_Z) -> bool:
    """Whether a ROC-AUC measured on ``positives`` + ``negatives`` examples is above 0.5 by more
    than ``z`` standard errors (Hanley and McNeil, Radiology 1982)."""
    if positives < 1 or negatives < 1 or not np.isfinite(auc):
        return False
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return bool(auc - z * np.sqrt(max(variance, 0.0)) > 0.5)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def learned_suspicion(signals: np.ndarray, names: list[str], cold: np.ndarray,
                      queries: np.ndarray, labels: np.ndarray) -> LearnedScores:
    """Fit the model on the decided candidates (``labels`` not NaN) and score every candidate.

    The cold suspicion enters as a fixed offset (its log-odds, coefficient 1): the review queue
    picks decisions by that very suspicion, so within the decided slice it barely varies and a
    weight fitted on it is not identified (on cranfield's first 200 queue decisions it fits to
    zero, and a model without the anchor scored held-out candidates at ROC-AUC 0.70 where the
    cold suspicion scores 0.79). Each query's effect (``query_effect``) shifts that offset, and
    the decisions teach monotone corrections on top from the signals' percentiles. Decided
    candidates get out-of-fold predictions whose query effects use the training folds' labels
    only.

    The corrections are applied only when the model's cross-validated ROC-AUC on the decisions
    beats chance (``beats_chance``); otherwise the decisions have shown no skill at telling the
    decided pairs apart, and the cold suspicion keeps its weighting, shifted by each query's
    effect. Replayed on the benchmark's queue-order decisions, the corrections cost cranfield
    0.03 of held-out ROC-AUC where their cross-validated ROC-AUC was 0.48-0.51, and gave dbpedia
    0.06 where it was 0.70 (bench/RESULTS.md, "Learning from decisions").
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    decided = np.flatnonzero(~np.isnan(labels))
    y = labels[decided]
    offset = _logit(cold)
    n_fn, n_hn = int(y.sum()), int(len(y) - y.sum())
    out_of_fold = np.empty(len(y), dtype=np.float64)
    effect_only = np.empty(len(y), dtype=np.float64)  # the fallback's out-of-fold scores
    folds = StratifiedKFold(n_splits=min(FOLDS, n_fn, n_hn), shuffle=True, random_state=0)
    for train, test in folds.split(decided, y):
        seen = np.full(len(labels), np.nan)
        seen[decided[train]] = y[train]
        shifted = offset + query_effect(queries, seen, offset)
        model = MonotoneLogistic().fit(signals[decided[train]], y[train], shifted[decided[train]])
        out_of_fold[test] = model.predict_proba(signals[decided[test]], shifted[decided[test]])
        effect_only[test] = _sigmoid(shifted[decided[test]])
    cv_auc = float(roc_auc_score(y, out_of_fold))
    shift = query_effect(queries, labels, offset)
    shifted = offset + shift
    if not beats_chance(cv_auc, n_fn, n_hn):
        probability = _sigmoid(shifted)
        probability[decided] = effect_only
        return LearnedScores(probability, cv_auc, [QUERY_EFFECT], corrections=False,
                             query_shift=shift)
    model = MonotoneLogistic().fit(signals[decided], y, shifted[decided])
    terms = model.contributions(signals)
    probability = _sigmoid(shifted + terms.sum(axis=1) + model.intercept_)
    probability[decided] = out_of_fold
    # Against the pool's median candidate, not the decided slice's mean (which the queue's most
    # suspicious candidates set, so nearly every other candidate would read "lower").
    if len(names):
        terms -= np.median(terms, axis=0)
    correction = terms.sum(axis=1)
    top = np.full(len(labels), -1)
    if len(names):  # the signal whose term moved the candidate most the corrections' way
        toward = terms * np.where(correction < 0, -1.0, 1.0)[:, None]
        top = np.argmax(toward, axis=1)
        top[np.take_along_axis(toward, top[:, None], axis=1)[:, 0] <= 0] = -1
    return LearnedScores(probability, cv_auc, [*names, QUERY_EFFECT], query_shift=shift,
                         correction=correction, top_correction=top, weights=model.coef_)


def learn_from_decisions(store: Store, run_id: int | None = None,
                         min_per_label: int = MIN_PER_LABEL) -> LearnReport:
    """Learn suspicion from the run's decided candidates and re-score every candidate
    (``learned_suspicion``); a model never scores a candidate it was trained on. Unsure
    decisions are ignored.

    Raises:
        TooFewDecisions: fewer than ``min_per_label`` decisions of either label.
    """
    run = store.get_run(run_id)
    names = feature_names(store.signal_keys(run.run_id))
    read_at = utc_now()  # decisions recorded from here on count towards the next learning
    pool = store.scored_pool(run.run_id, names, COLD_KEY)
    labels = pool.column("decision").to_pandas().map({"false_negative": 1, "hard_negative": 0})
    n_fn = int((labels == 1).sum())
    n_hn = int((labels == 0).sum())
    if min(n_fn, n_hn) < min_per_label:
        raise TooFewDecisions(
            f"learning needs at least {min_per_label} false-negative and {min_per_label} "
            f"hard-negative decisions on run {run.run_id}; it has {n_fn} and {n_hn}")
    x = pool.column("x").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    x = x.astype(np.float64).reshape(pool.num_rows, len(names))
    cold = pool.column("cold").to_numpy()
    scores = learned_suspicion(x, names, cold, pool.column("query_id").to_numpy(),
                               labels.to_numpy(dtype=float))
    note = (f"model learned from {n_fn + n_hn} decisions "
            f"(cross-validated ROC-AUC {scores.cv_auc:.2f}"
            f"{'' if scores.corrections else '; per-query effects only'})")
    # A previous model's reasons (and its stale p) are replaced, not stacked under the new ones;
    # the cold suspicion stays in the signals, so learning again anchors on it.
    queries = pool.column("query_id").to_pandas()
    undecided = labels.isna().to_numpy()
    per_query = query_effects(scores.query_shift, queries)
    report = LearnReport(run.run_id, n_fn, n_hn, scores.cv_auc, pool.num_rows, scores.features,
                         scores.corrections, named_weights(scores.weights, names),
                         surprising_queries(per_query))
    store.put_learned_suspicion(run.run_id, pa.table({
        "query_id": pool.column("query_id"), "doc_id": pool.column("doc_id"),
        "suspicion": scores.probability, "cold": cold,
        "query_reason": query_reasons(per_query, queries, undecided),
        "correction_reason": correction_reasons(scores.correction, scores.top_correction, names,
                                                undecided),
    }), note, LEARNED_PREFIXES, ["query_reason", "correction_reason"], COLD_KEY, MAX_REASONS,
        model=report.summary(), as_of=read_at)
    return report


def forget_learning(store: Store, run_id: int | None = None) -> int:
    """Put the run's cold suspicion back where a learned model replaced it (its scores, reasons
    and scorer), and forget the model; the decisions stay. Returns how many candidates were
    restored (0 when the run's suspicion was not learned)."""
    run = store.get_run(run_id)
    return store.restore_cold_suspicion(run.run_id, LEARNED_PREFIXES, COLD_KEY)


def relearn_if_due(store: Store, run_id: int | None = None,
                   every: int = RELEARN_EVERY) -> LearnReport | None:
    """``learn_from_decisions`` when ``every`` decisions or more were recorded on the run's
    dataset since its suspicion was last scored and each label has its minimum; else None."""
    run = store.get_run(run_id)
    if every < 1 or store.review_version(run.run_id)[2] == 0:  # never scored: nothing to learn
        return None
    if store.decisions_since_scored(run.run_id, run.dataset_id) < every:
        return None
    try:
        return learn_from_decisions(store, run.run_id)
    except TooFewDecisions:  # the next decisions may bring them
        return None
