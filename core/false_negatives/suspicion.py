"""Combine detector signals into one suspicion in [0, 1] per candidate, with reasons.

Cold (before any decision) each weighted signal becomes evidence: the mean of its percentile
among all of the run's candidates and among the query's own candidates. The first keeps absolute
information (a query whose neighbours all score high has many unlabeled positives), the second
adapts to each query's score scale.

How much each signal counts is measured on the run itself: the labeled positives are a sample
of the positives, so a signal's power to rank them above their query's pool estimates its power
to rank the hidden ones. ``Scorer.fit`` reads that probe (the positives' mean percentile within
their pools), turns it into the signal's separation d' = sqrt(2) * Phi^-1(probe) (the
equal-variance normal model's link between ROC-AUC and separation; below chance counts 0), and
weights the signal by d' times its prior ``weight``. Similarity to the positive is read where a
query has two or more positives (each against the others); a signal no positive can be read on
(one positive per query: its similarity to itself) gets the mean separation of those that can.
With few queries the probe is shrunk towards the signals' mean, so a handful of queries cannot
swing the weights.

Evidence combines as the weighted mean of its normal scores, mapped back through Phi (for
independent normal evidence the log-likelihood ratio is linear in z, weighted by d'), and the
suspicion is raised to any decisive signal (a near-duplicate of the positive, a positive of a
near-identical query).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from core.false_negatives import detector_names, get_detector
from core.false_negatives.base import DetectionContext, Detector, RawSignal

REASON_LIMIT = 3
# Pseudo-queries at the signals' mean probe that a signal's own probe is averaged with: at 10
# queries a signal's weight is half its own measurement, at 200 it is 95 %.
PROBE_PRIOR_QUERIES = 10.0
# Probes are capped here (d' 3.3) so a signal that ranks every positive first cannot take all
# the weight; evidence percentiles are kept this far from 0 and 1 before Phi^-1.
PROBE_CAP = 0.99
EVIDENCE_EPS = 1e-3


@dataclass(frozen=True)
class PoolSuspicion:
    """Suspicion of one query's candidates.

    ``features``: per detector, its raw value, global and per-query percentile (the learned
    model's inputs); ``reasons``: per candidate, the strongest readable reasons first.
    """

    suspicion: np.ndarray
    features: dict[str, np.ndarray]
    reasons: list[list[str]]


def _percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of values within a sorted reference (ties count half)."""
    if not len(reference):
        return np.full(len(values), 0.5, dtype=np.float32)
    lo = np.searchsorted(reference, values, side="left")
    hi = np.searchsorted(reference, values, side="right")
    return ((lo + hi) / (2.0 * len(reference))).astype(np.float32)


def _separation(probe: float) -> float:
    """d' of a signal whose ROC-AUC is ``probe`` under the equal-variance normal model
    (AUC = Phi(d' / sqrt(2))); 0 at or below chance, capped at ``PROBE_CAP``."""
    return float(np.sqrt(2.0) * ndtri(min(max(probe, 0.5), PROBE_CAP)))


def combine_evidence(weighted: list[tuple[float, np.ndarray]], n: int) -> np.ndarray:
    """The cold suspicion of ``n`` candidates from (weight, evidence in [0, 1]) pairs: the
    weighted mean of the evidence's normal scores, mapped back through Phi (module docstring);
    zeros when nothing is weighted. Decisive signals are applied by the caller."""
    total = sum(w for w, _ in weighted)
    if not total:
        return np.zeros(n)
    z = np.zeros(n, dtype=np.float64)
    for weight, evidence in weighted:
        z += weight * ndtri(np.clip(evidence, EVIDENCE_EPS, 1 - EVIDENCE_EPS).astype(np.float64))
    return ndtr(z / total)


def _key(row: int, docs: np.ndarray) -> tuple[int, int]:
    """Cache key of one query's candidate list."""
    return row, hash(np.asarray(docs, dtype=np.int64).tobytes())


class Scorer:
    """Scores candidate pools of one run, after ``fit`` saw the run's initial pools."""

    def __init__(self, ctx: DetectionContext, names: list[str] | None = None,
                 detectors: list[Detector] | None = None) -> None:
        """``names``: registered detectors to use (default all); ``detectors``: instances to use
        instead (unregistered ones, e.g. in tests). Detectors unavailable on ``ctx`` are left
        out."""
        self.ctx = ctx
        chosen = detectors if detectors is not None else [
            get_detector(n) for n in (names or detector_names())]
        self.detectors: list[Detector] = [d for d in chosen if d.available(ctx)]
        self._global: dict[str, np.ndarray] = {}
        self._per_query: dict[tuple[str, int], np.ndarray] = {}
        self._cache: dict[tuple[int, int], PoolSuspicion] = {}  # (row, hash of doc indices)
        self._raw: dict[tuple[str, tuple[int, int]], object] = {}
        # Per detector: its weight in the cold suspicion, and the probe it was measured by
        # (positives' mean percentile within their pools; None where not measurable).
        self.weights: dict[str, float] = {d.name: d.weight for d in self.detectors}
        self.probes: dict[str, float | None] = {d.name: None for d in self.detectors}

    def fit(self, pools: list[tuple[int, np.ndarray, np.ndarray, float]]) -> "Scorer":
        """Set the reference distributions from (row, doc indices, scores, pos score) pools."""
        collected: dict[str, list[np.ndarray]] = {d.name: [] for d in self.detectors}
        probes: dict[str, list[float]] = {d.name: [] for d in self.detectors}
        for det in self.detectors:
            det.prepare(self.ctx, [(row, docs) for row, docs, _, _ in pools])
        for row, docs, scores, pos in pools:
            for det in self.detectors:
                raw = det.compute(self.ctx, row, docs, scores, pos)
                self._raw[(det.name, _key(row, docs))] = raw
                values = raw.values
                collected[det.name].append(values)
                ordered = self._per_query[(det.name, row)] = np.sort(values)
                if raw.positive is not None and len(raw.positive) and len(values):
                    probes[det.name].append(float(_percentile(ordered, raw.positive).mean()))
        for name, parts in collected.items():
            self._global[name] = np.sort(np.concatenate(parts)) if parts else np.zeros(0)
        self._set_weights(probes)
        self._cache.clear()
        return self

    def _set_weights(self, probes: dict[str, list[float]]) -> None:
        """Each weighted detector's cold weight: its prior weight times its measured separation
        (module docstring); unchanged prior weights where nothing could be measured."""
        weighted = [d for d in self.detectors if d.weight > 0]
        measured = {d.name: probes[d.name] for d in weighted if probes[d.name]}
        if not measured:
            return
        mean_probe = float(np.mean([np.mean(v) for v in measured.values()]))
        separation: dict[str, float] = {}
        for name, values in measured.items():
            n = len(values)
            probe = (float(np.sum(values)) + PROBE_PRIOR_QUERIES * mean_probe) / (
                n + PROBE_PRIOR_QUERIES)
            self.probes[name] = float(np.mean(values))
            separation[name] = _separation(probe)
        if not any(separation.values()):
            return  # no signal ranks the positives above their pools: keep the prior weights
        fallback = float(np.mean(list(separation.values())))
        for det in weighted:
            self.weights[det.name] = det.weight * separation.get(det.name, fallback)

    def weight_report(self) -> dict[str, dict[str, float | None]]:
        """Per weighted detector: its cold weight and the probe that set it (the labeled
        positives' mean percentile within their pools; None where a positive cannot be read)."""
        return {d.name: {"weight": round(self.weights[d.name], 4),
                         "probe": None if self.probes[d.name] is None
                         else round(self.probes[d.name], 4)}
                for d in self.detectors if d.weight > 0}

    def forget_scored(self) -> None:
        """Drop the cached results of ``score`` (a later call computes them again); ``mine`` calls
        this once the run's rows are built, so they do not sit under the store write's peak."""
        self._cache.clear()

    def score(self, row: int, docs: np.ndarray, scores: np.ndarray, pos: float) -> PoolSuspicion:
        """Suspicion of one query's candidates (cached per query and candidate list)."""
        key = _key(row, docs)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        n = len(docs)
        weighted: list[tuple[float, np.ndarray]] = []
        floor = np.zeros(n, dtype=np.float32)
        features: dict[str, np.ndarray] = {}
        explained = n if self.ctx.explain_depth is None else min(n, self.ctx.explain_depth)
        ranked: list[list[tuple[float, str]]] = [[] for _ in range(explained)]
        for det in self.detectors:
            raw = self._raw.pop((det.name, key), None) or det.compute(
                self.ctx, row, docs, scores, pos)
            ref_q = self._per_query.get((det.name, row))
            if ref_q is None:
                ref_q = np.sort(raw.values)
            g = _percentile(self._global.get(det.name, np.zeros(0)), raw.values)
            q = _percentile(ref_q, raw.values)
            evidence = (g + q) / 2
            features[f"{det.name}"] = raw.values
            features[f"{det.name}_global_pct"] = g
            features[f"{det.name}_query_pct"] = q
            if self.weights[det.name] > 0:
                weighted.append((self.weights[det.name], evidence))
            if raw.decisive is not None:
                floor = np.fmax(floor, np.nan_to_num(raw.decisive, nan=0.0))
            _explain(det, raw, evidence, ranked)
        cold = combine_evidence(weighted, n)
        suspicion = np.clip(np.fmax(cold, floor), 0.0, 1.0).astype(np.float32)
        reasons = [[t for _, t in sorted(r, key=lambda x: -x[0])[:REASON_LIMIT]] for r in ranked]
        reasons += [[]] * (n - explained)  # one shared empty list: unexplained candidates
        result = PoolSuspicion(suspicion, features, reasons)
        self._cache[key] = result
        return result


def _explain(det: Detector, raw: RawSignal, evidence: np.ndarray,
             ranked: list[list[tuple[float, str]]]) -> None:
    """Add the detector's reasons (strength, text) for the first ``len(ranked)`` candidates;
    a decisive signal's reason ranks first (strength 2). Values go through ``tolist`` once
    (the same Python floats as indexing one at a time)."""
    m = len(ranked)
    values, strengths = raw.values[:m].tolist(), evidence[:m].tolist()
    details = raw.details or [None] * m
    decisive = ([False] * m if raw.decisive is None
                else (~np.isnan(raw.decisive[:m])).tolist())
    for i, (value, strength) in enumerate(zip(values, strengths)):
        text = det.reason(value, strength, details[i])
        if text:
            ranked[i].append((2.0 if decisive[i] else strength, text))


def weights_text(report: dict[str, dict[str, float | None]]) -> str:
    """A run's ``Scorer.weight_report`` in one readable line: each detector's cold weight and the
    measurement behind it."""
    parts = []
    for name, info in report.items():
        probe = info.get("probe")
        why = ("not measurable on a positive: the measured signals' mean" if probe is None
               else f"ranks the labeled positives above {probe:.0%} of their pools")
        parts.append(f"{name} {info['weight']:.2f} ({why})")
    return "; ".join(parts)


def weights_rows(report: dict[str, dict[str, float | None]]) -> list[dict[str, object]]:
    """A run's ``Scorer.weight_report`` as table rows: signal, its cold weight, and the share of
    their pools the labeled positives outrank on it (None where a positive cannot be read)."""
    return [{"signal": name, "weight": info["weight"],
             "labeled positives outrank (share of their pool)": info.get("probe")}
            for name, info in report.items()]


def suspicion_rows(query_id: str, doc_ids: np.ndarray, result: PoolSuspicion,
                   keep: int) -> dict[str, list]:
    """Columns for ``Store.put_suspicion`` from the first ``keep`` candidates of a pool."""
    return {
        "query_id": [query_id] * keep,
        "doc_id": list(doc_ids[:keep]),
        "suspicion": result.suspicion[:keep].tolist(),
        "reasons": [json.dumps(r) if r else "[]" for r in result.reasons[:keep]],
        "signals": signal_texts(result.features, keep),
    }


def signal_texts(features: dict[str, np.ndarray], keep: int) -> list[str]:
    """Each of the first ``keep`` candidates' features as a JSON object, values rounded to 5
    decimals: the text ``json.dumps({name: round(value, 5)})`` gives, built a pool at a time
    (``np.round`` of the float32 features matches ``round`` on them; repr is JSON's number)."""
    names = list(features)
    columns = [np.round(np.asarray(features[n][:keep], dtype=np.float64), 5) for n in names]
    if not names:
        return ["{}"] * keep
    if not all(np.isfinite(c).all() for c in columns):  # NaN and infinities: JSON's spelling
        return [json.dumps({n: round(float(c[i]), 5) for n, c in zip(names, columns)})
                for i in range(keep)]
    template = "{" + ", ".join(f"{json.dumps(n)}: %r" for n in names) + "}"
    return [template % row for row in zip(*(c.tolist() for c in columns))]
