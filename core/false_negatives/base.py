"""The shared shape of false-negative detectors: one signal per candidate of a query's pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np


@dataclass
class DetectionContext:
    """Corpus-level inputs detectors read, built once per run.

    Rows of ``query_vectors`` align with ``query_ids``/``query_texts``/``positives`` (doc indices of
    each query's labeled positives); rows of ``doc_vectors`` with ``doc_texts``. ``cache`` holds
    what a detector builds once (a BM25 index, clusters, a teacher model). ``explain_depth``:
    readable reasons (and the per-candidate details they quote) are built for each pool's first
    ``explain_depth`` candidates only; None explains all. Runs of millions of candidates set it to
    keep the per-candidate Python bounded; signals and suspicion are computed for every candidate.
    ``query_hashes``/``doc_hashes`` (the texts' content hashes) key what a detector caches in the
    workspace across runs (a cross-encoder teacher's pair scores); empty lists cache nothing.
    ``progress(done, total)``: reports long detector work (a cross-encoder scoring pairs).
    """

    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray
    doc_texts: list[str]
    doc_vectors: np.ndarray
    positives: list[np.ndarray]
    seed: int = 0
    teacher: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
    explain_depth: int | None = None
    query_hashes: list[str] = field(default_factory=list)  # the texts' hashes, rows as above
    doc_hashes: list[str] = field(default_factory=list)
    progress: Callable[[int, int], None] | None = None

    def has_texts(self) -> bool:
        """False for datasets ingested as precomputed vectors without texts."""
        return any(self.doc_texts)


@dataclass(frozen=True)
class RawSignal:
    """A detector's raw values for one query's candidates (higher = more suspicious).

    ``decisive``: where set (not NaN), evidence strong enough on its own to put the suspicion at
    least this high (a near-duplicate of the positive, a positive of a near-identical query).
    ``details``: per-candidate text a reason may quote (e.g. the similar query), or None.
    ``positive``: the signal's values for the query's labeled positives, read as if they were
    candidates, or None where a positive cannot be read that way (its similarity to itself).
    The scorer weighs each signal by how well it ranks these known positives above the pool.
    """

    values: np.ndarray
    decisive: np.ndarray | None = None
    details: list[str | None] | None = None
    positive: np.ndarray | None = None


class Detector:
    """Base class. ``weight`` is the detector's prior share of the cold (unlearned) suspicion,
    which the scorer scales by the signal's measured reliability on the run's labeled positives;
    0 keeps it as evidence for reasons and for the learned model only."""

    name: ClassVar[str]
    summary: ClassVar[str]
    weight: ClassVar[float] = 1.0

    def available(self, ctx: DetectionContext) -> bool:
        return True

    def prepare(self, ctx: DetectionContext, pools: list[tuple[int, np.ndarray]]) -> None:
        """Called once with every (row, doc indices) pool before ``compute`` sees any of them,
        for work better done in bulk (a teacher encoding all pooled documents at once)."""

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        raise NotImplementedError

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        """A human-readable reason when this signal speaks for the candidate being a positive."""
        return None
