"""The Review page's queue: core's order narrowed by the page's filters, a map selection, skips."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pandas as pd

from core.review import QueueFilters, review_queue
from core.store import Store

_KIND_END = re.compile(r"""\s['"]|[(0-9]""")  # an opening quote, a parenthesis or a number


@dataclass(frozen=True)
class ReviewScope:
    """What the reviewer is looking at.

    Attributes:
        filters: core's queue filters (unreviewed only, query, reason, annotator, cluster queries).
        pairs: only these (query_id, doc_id) pairs (a selection sent from the map); None: all.
        skipped: pairs skipped in this session, moved to the end of the queue.
        reason_kind: only candidates with a reason of this kind (see ``reason_kind``).
    """

    filters: QueueFilters = QueueFilters()
    pairs: tuple[tuple[str, str], ...] | None = None
    skipped: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    reason_kind: str | None = None


def reason_kind(reason: str) -> str:
    """The kind of a readable reason: its words before any quote, number or parenthesis.

    "labeled positive of the similar query 'x' (cosine 0.93)" -> "labeled positive of the
    similar query"; "scores 1.02 x the positive" -> "scores".
    """
    return _KIND_END.split(reason, maxsplit=1)[0].strip()


def _kinds(value: object) -> set[str]:
    if not isinstance(value, str):
        return set()
    try:
        parsed = json.loads(value)
    except ValueError:
        return set()
    return {reason_kind(str(r)) for r in parsed} if isinstance(parsed, list) else set()


def scoped_queue(store: Store, run_id: int, scope: ReviewScope) -> pd.DataFrame:
    """The run's review queue in core's order, narrowed to ``scope``; skipped pairs go last."""
    queue = review_queue(store, run_id, scope.filters)
    if scope.reason_kind:
        queue = queue[queue["reasons"].map(lambda v: scope.reason_kind in _kinds(v))]
    keys = list(zip(queue["query_id"], queue["doc_id"]))
    if scope.pairs is not None:
        wanted = set(scope.pairs)
        queue = queue[[k in wanted for k in keys]]
        keys = list(zip(queue["query_id"], queue["doc_id"]))
    skipped = pd.Series([k in scope.skipped for k in keys], index=queue.index, dtype=bool)
    return pd.concat([queue[~skipped], queue[skipped]]).reset_index(drop=True)


def queue_reason_kinds(store: Store, run_id: int) -> list[str]:
    """The distinct kinds of suspicion reasons in a run's pool (empty until the run is scored)."""
    pool = store.run_candidates(store.get_run(run_id).run_id)
    kinds: set[str] = set()
    for value in pool["reasons"].dropna().unique():
        kinds |= _kinds(value)
    return sorted(k for k in kinds if k)


def queue_table(queue: pd.DataFrame, limit: int = 200) -> pd.DataFrame:
    """The queue's first rows, the columns a reviewer scans (texts stay on the card)."""
    columns = [c for c in ("query_id", "doc_id", "rank", "score", "pos_score", "margin",
                           "suspicion", "reasons", "would_export", "decision", "decided_by")
               if c in queue.columns]
    return queue[columns].head(limit)
