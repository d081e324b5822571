"""Audit an export: how many of its negatives are false negatives?

The suspicion and the review queue find false negatives where they are likely; they cannot say
how many an export still holds. An audit can: it draws a seeded uniform sample of the negatives
an export of the run takes now (decisions applied; the run's k or another), in a random order,
and annotators decide it like any other pair (the Review page walks it in that order). The
share of false negatives among the decided pairs estimates the export's false-negative rate,
with a Wilson score interval (finite-population corrected: a sample of the whole export is
exact). Because the order is random, any prefix of it is itself a uniform sample, so an audit
stopped halfway still estimates without bias, as long as pairs are not skipped for being hard
to call.

Pairs decided "unsure" count neither way; the report also gives the rate were they all false
negatives. Decisions apply wherever the same texts are, so pairs decided before the audit count
with their existing decision.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from core.errors import WorkbenchError
from core.export import planned_negatives, queries_over_limit
from core.store import AuditInfo, Store

DEFAULT_AUDIT_SIZE = 100
CONFIDENCE = 0.95


def draw_audit(store: Store, run_id: int | None = None, size: int = DEFAULT_AUDIT_SIZE,
               seed: int | None = None, created_by: str | None = None,
               num_negatives: int | None = None,
               max_false_negatives: int | None = None) -> AuditInfo:
    """Draw ``size`` of the run's exported negatives at random (all of them when fewer) and
    store them, in review order, as a new audit.

    Args:
        num_negatives: negatives per query of the export to audit (default: the run's k).
        max_false_negatives: audit the export that leaves out queries with more than this many
            pairs marked false negative (``ExportOptions.max_false_negatives``).

    Raises:
        WorkbenchError: the run is not finished, exports no negatives, ``size`` < 1 or
            ``num_negatives`` < 1.
    """
    if size < 1:
        raise WorkbenchError(f"an audit needs at least one pair, got size {size}")
    if num_negatives is not None and num_negatives < 1:
        raise WorkbenchError(f"an audited export needs at least one negative per query, got "
                             f"{num_negatives}")
    if max_false_negatives is not None and max_false_negatives < 0:
        raise WorkbenchError(f"max_false_negatives must be at least 0, got {max_false_negatives}")
    run = store.get_run(run_id)
    if run.status != "done":
        raise WorkbenchError(f"run {run.run_id} is {run.status}; audit a finished run")
    k = num_negatives or run.num_negatives
    planned = planned_negatives(store, run.run_id, k)
    if max_false_negatives is not None:
        _, decided = store.export_pool_facts(run.run_id, run.dataset_id)
        planned = planned[~planned["query_id"].isin(
            queries_over_limit(decided, max_false_negatives))]
    if planned.empty:
        raise WorkbenchError(f"run {run.run_id} exports no negatives: there is nothing to audit")
    # Sorted first, so a seed draws the same pairs whatever order the export query returns.
    planned = planned.sort_values(["query_id", "doc_id"], kind="stable").reset_index(drop=True)
    seed = secrets.randbits(31) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    order = rng.choice(len(planned), size=min(size, len(planned)), replace=False)
    pairs = planned.iloc[order][["query_id", "doc_id"]]
    audit_id = store.create_audit(run.run_id, k, pairs, seed, len(planned),
                                  int(planned["query_id"].nunique()), created_by,
                                  max_false_negatives)
    return store.get_audit(audit_id)


def _left_out(audit: AuditInfo) -> str:
    """How the audited export chose its queries, when it left some out."""
    if audit.max_false_negatives is None:
        return ""
    return (f", leaving out queries with more than {audit.max_false_negatives} marked false "
            "negative")


def wilson_interval(successes: int, n: int, population: int | None = None,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion from ``successes`` of ``n`` draws without
    replacement from ``population`` items (None: an unlimited population).

    The finite-population correction shrinks the variance by (N - n) / (N - 1), applied as a
    larger effective sample; a census (n = N) gives the observed share exactly.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    if population is not None and population > 1:
        if n >= population:
            return p, p
        n_eff = n * (population - 1) / (population - n)
    else:
        n_eff = float(n)
    z = float(ndtri(1 - (1 - confidence) / 2))
    denominator = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denominator
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class AuditReport:
    """What an audit's decisions say about the export it sampled.

    Attributes:
        fn_rate, low, high: estimated false-negative rate of the export as drawn, and its
            ``CONFIDENCE`` interval (None before any pair is decided hard or false negative).
        fn_rate_if_unsure_false: the estimate were every unsure pair a false negative.
        skipped: undecided pairs before the last decided one (pairs passed over; if they were
            passed over for being hard to call, the estimate may lean).
    """

    audit: AuditInfo
    hard_negatives: int
    false_negatives: int
    unsure: int
    undecided: int
    skipped: int
    fn_rate: float | None
    low: float | None
    high: float | None
    fn_rate_if_unsure_false: float | None

    @property
    def decided(self) -> int:
        """Pairs decided hard or false negative (the estimate's sample)."""
        return self.hard_negatives + self.false_negatives

    def estimated_false_negatives(self) -> tuple[int, int, int] | None:
        """The estimate as counts of the export's negatives: (estimate, low, high)."""
        if self.fn_rate is None:
            return None
        n = self.audit.exported
        return round(self.fn_rate * n), round(self.low * n), round(self.high * n)

    def text(self) -> str:
        """The report in readable sentences."""
        a = self.audit
        lines = [f"audit {a.audit_id} of run {a.run_id}: {a.size:,} of the {a.exported:,} "
                 f"negatives an export of {a.num_negatives} per query took "
                 f"({a.exported_queries:,} queries{_left_out(a)}), seed {a.seed}; "
                 f"{self.decided:,} decided ({self.hard_negatives:,} hard negatives, "
                 f"{self.false_negatives:,} false negatives), {self.unsure:,} unsure, "
                 f"{self.undecided:,} to go"]
        if self.fn_rate is None:
            lines.append("no estimate yet: decide some of the audit's pairs (in its order)")
            return "\n".join(lines)
        count, low, high = self.estimated_false_negatives()
        lines.append(
            f"estimated false-negative rate of the export as drawn: {self.fn_rate:.1%} "
            f"({CONFIDENCE:.0%} interval {self.low:.1%} to {self.high:.1%}), about {count:,} "
            f"of its {a.exported:,} negatives ({low:,} to {high:,})")
        if self.unsure:
            lines.append(f"were every unsure pair a false negative: "
                         f"{self.fn_rate_if_unsure_false:.1%}")
        if self.skipped:
            lines.append(f"{self.skipped:,} pairs were passed over before the last decided one; "
                         "the estimate assumes they were not skipped for being hard to call")
        if self.false_negatives:
            lines.append(f"the {self.false_negatives:,} false negatives found are no longer "
                         "exported as negatives")
        return "\n".join(lines)


def audit_report(store: Store, audit_id: int | None = None,
                 run_id: int | None = None) -> AuditReport:
    """The estimate from an audit's decisions so far (the newest audit, of ``run_id`` when
    given, if ``audit_id`` is None).

    Raises:
        WorkbenchError: no such audit.
    """
    audit = store.get_audit(audit_id, run_id)
    outcomes = store.audit_outcomes(audit.audit_id)
    labels = outcomes["decision"]
    hard = int(labels.eq("hard_negative").sum())
    false = int(labels.eq("false_negative").sum())
    unsure = int(labels.eq("unsure").sum())
    decided_at = np.flatnonzero(labels.notna().to_numpy())
    skipped = int(labels.iloc[:decided_at[-1]].isna().sum()) if len(decided_at) else 0
    rate = low = high = if_unsure = None
    if hard + false:
        rate = false / (hard + false)
        low, high = wilson_interval(false, hard + false, audit.exported)
        if_unsure = (false + unsure) / (hard + false + unsure)
    return AuditReport(audit, hard, false, unsure, int(labels.isna().sum()), skipped, rate, low,
                       high, if_unsure)


def audit_pairs(store: Store, audit_id: int) -> list[tuple[str, str]]:
    """The audit's (query_id, doc_id) pairs in review order."""
    outcomes = store.audit_outcomes(store.get_audit(audit_id).audit_id)
    return list(zip(outcomes["query_id"], outcomes["doc_id"]))


def latest_audit_summary(store: Store, run_id: int) -> dict | None:
    """The run's newest audit as an export manifest records it (None when never audited): what
    was sampled, what was decided and the estimate, with what it estimates."""
    audits = store.list_audits(run_id)
    if not audits:
        return None
    report = audit_report(store, audits[0].audit_id)
    a = report.audit
    interval = None if report.fn_rate is None else [round(report.low, 4), round(report.high, 4)]
    return {
        "audit_id": a.audit_id, "drawn_at": a.created_at.isoformat(timespec="seconds"),
        "num_negatives": a.num_negatives, "max_false_negatives": a.max_false_negatives,
        "seed": a.seed, "sample_size": a.size,
        "exported_when_drawn": a.exported,
        "decided": report.decided, "false_negatives": report.false_negatives,
        "unsure": report.unsure, "undecided": report.undecided,
        "estimated_fn_rate": None if report.fn_rate is None else round(report.fn_rate, 4),
        "interval": interval, "confidence": CONFIDENCE,
        "estimates": "the false-negative rate of the run's export with num_negatives per query "
                     "(decisions applied; when max_false_negatives is set, leaving out queries "
                     "with more pairs marked false negative) as it was when the sample was drawn",
    }
