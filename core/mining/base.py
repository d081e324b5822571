"""The shared shape of mining strategies: a query's candidate pool in, a selection out."""

from __future__ import annotations

import dataclasses
import typing
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from core.errors import WorkbenchError


@dataclass(frozen=True)
class QueryPool:
    """One query's candidates, best first, with every positive already removed.

    ``scores`` are dense cosines (query . document); ``lexical_scores`` are set for lexical pools,
    which are ranked by them instead. ``exhausted`` means every non-positive document is in the pool,
    so widening cannot help.
    """

    query_id: str
    doc_indices: np.ndarray
    scores: np.ndarray
    pos_score: float
    exhausted: bool
    lexical_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.doc_indices.shape[0])


@dataclass(frozen=True)
class Selection:
    """What a strategy made of one pool.

    Attributes:
        eligible: per pool entry, whether it passed the strategy's filters.
        selected: pool positions chosen as negatives, most preferred first.
        removed: candidates removed per rule (rule name -> count).
    """

    eligible: np.ndarray
    selected: np.ndarray
    removed: dict[str, int]


@dataclass(frozen=True)
class MiningContext:
    """Corpus-level inputs a strategy may prepare from (clusters, indexes).

    Rows of ``query_vectors`` align with ``query_ids`` and ``positives`` (doc indices); rows of
    ``doc_vectors`` with ``doc_ids``. ``suspicion`` is the run's fitted
    ``core.false_negatives.suspicion.Scorer``; ``decisions`` maps (query row, doc index) to the
    pair's latest annotator label.
    """

    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray
    doc_ids: list[str]
    doc_texts: list[str]
    doc_vectors: np.ndarray
    seed: int
    positives: list[np.ndarray] = dataclasses.field(default_factory=list)
    suspicion: Any = None
    decisions: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)


class Strategy:
    """Base class: subclasses set the class attributes and implement ``select``.

    ``min_depth`` is how deep the pool must be for the strategy to see all it may choose from;
    ``widens`` says whether a deeper pool can help a query left short (False for fixed rank
    windows); ``prepare`` computes corpus-level state once per run.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type]
    pool_source: ClassVar[str] = "dense"
    widens: ClassVar[bool] = True
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def min_depth(self, params: Any, num_negatives: int) -> int:
        return num_negatives

    def prepare(self, ctx: MiningContext, params: Any) -> Any:
        return None

    def survey(self, pools: list[QueryPool], k: int, params: Any, state: Any) -> Any:
        """Called once with every query's initial pool before any ``select``, for a choice made
        over the whole run (curated's threshold for a hardness target); returns the state
        ``select`` then receives."""
        return state

    def describe(self, state: Any) -> dict[str, Any]:
        """What the strategy chose for this run (after ``survey``), stored with the run's search
        info under "strategy_choice"; empty when it chose nothing."""
        return {}

    def select(
        self, pool: QueryPool, k: int, params: Any, state: Any, rng: np.random.Generator
    ) -> Selection:
        raise NotImplementedError


def top_selection(eligible: np.ndarray, k: int, removed: dict[str, int]) -> Selection:
    """Select the first k eligible pool entries (pools are ordered best first)."""
    positions = np.flatnonzero(eligible)[:k]
    return Selection(eligible, positions, removed)


def sample_selection(
    eligible: np.ndarray, k: int, removed: dict[str, int], rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> Selection:
    """Sample k eligible entries without replacement (uniform, or by ``weights``)."""
    positions = np.flatnonzero(eligible)
    if len(positions) <= k:
        return Selection(eligible, positions, removed)
    p = None
    if weights is not None:
        w = weights[positions].astype(np.float64)
        total = w.sum()
        p = w / total if total > 0 and np.isfinite(total) else None
    chosen = rng.choice(positions, size=k, replace=False, p=p)
    return Selection(eligible, np.sort(chosen), removed)


def _field_kind(params_type: type, name: str) -> type:
    """The plain type (int, float, str, bool) of a params field; Optional[X] gives X."""
    hint = typing.get_type_hints(params_type)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _coerce(kind: type, name: str, raw: Any, strategy: str) -> Any:
    if raw is None or (isinstance(raw, kind) and not (kind is int and isinstance(raw, bool))):
        return raw
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    text = str(raw).strip()
    try:
        if kind is bool:
            truth = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
            return truth[text.lower()]
        if kind is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        return kind(text)
    except (KeyError, ValueError) as err:
        raise WorkbenchError(
            f"parameter {name!r} of strategy {strategy!r} must be {kind.__name__}, got {raw!r}"
        ) from err


def parse_params(strategy: Strategy, values: Mapping[str, Any]) -> Any:
    """Build a strategy's params dataclass from user values (strings from the CLI are converted).

    Raises:
        WorkbenchError: unknown parameter name, wrong type, or a value the strategy rejects.
    """
    fields = {f.name: f for f in dataclasses.fields(strategy.Params)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "none"
        raise WorkbenchError(
            f"strategy {strategy.name!r} has no parameter {unknown[0]!r} (its parameters: {valid})"
        )
    kwargs = {
        k: _coerce(_field_kind(strategy.Params, k), k, v, strategy.name) for k, v in values.items()
    }
    params = strategy.Params(**kwargs)
    check = getattr(params, "validate", None)
    if check is not None:
        check()
    return params


def params_dict(params: Any) -> dict[str, Any]:
    """Return a params dataclass as a plain dict (for storage and display)."""
    return dataclasses.asdict(params)


def warn_ignored(strategy: str, name: str, reason: str) -> None:
    """Warn that a given parameter has no effect (STYLE rule 8: ignored parameters warn)."""
    warnings.warn(f"strategy {strategy!r} ignores {name}: {reason}", stacklevel=3)
