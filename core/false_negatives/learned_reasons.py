"""What a model learned from decisions changed, in words: the reasons learning writes beside its
note (``learning.learn_from_decisions``) and the summary the run keeps of the model.

A learned part gets its own reason (after the note, before the cold reasons) when it moves a
candidate's log-odds by at least ``EXPLAIN_MIN_LOG_ODDS`` (5 points of probability near 0.5):
the query's effect, and the learned corrections with the signal that moved them most. Each
reason's first word tells it apart from its opposite (the Review page's Reason filter shows the
start of each kind).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

QUERY_REASONS = ("more false negatives than expected in its query",
                 "fewer false negatives than expected in its query")
CORRECTION_REASONS = ("ranked higher by the learned weights", "ranked lower by the learned weights")
EXPLAIN_MIN_LOG_ODDS = 0.2
SURPRISING_QUERIES = 5  # the queries a run keeps of its model, each way


def query_effects(query_shift: np.ndarray, queries: pd.Series) -> pd.Series:
    """Each query's effect, by query id, from ``query_shift`` (per candidate, the same for every
    candidate of a query)."""
    return pd.Series(query_shift).groupby(queries.to_numpy()).first()


def query_reasons(per_query: pd.Series, queries: pd.Series, undecided: np.ndarray) -> pa.Array:
    """Each undecided candidate's reason for its query's effect (``per_query``, from
    ``query_effects``), when it moved the log-odds by ``EXPLAIN_MIN_LOG_ODDS`` or more ("more
    false negatives than expected in its query (+0.62 log-odds)": its decisions found more);
    else null. Written once per query."""
    texts = {q: f"{QUERY_REASONS[bool(v < 0)]} ({v:+.2f} log-odds)"
             for q, v in per_query.items() if abs(v) >= EXPLAIN_MIN_LOG_ODDS}
    reasons = queries.map(texts).where(undecided, None)
    return pa.array(reasons.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def correction_reasons(correction: np.ndarray | None, top_correction: np.ndarray | None,
                       names: list[str], undecided: np.ndarray) -> pa.Array:
    """Each undecided candidate's reason for the learned corrections (``correction``: their sum
    against the pool's median candidate; ``top_correction``: the index in ``names`` of the
    signal that moved it most, -1 for none), when they set it apart by ``EXPLAIN_MIN_LOG_ODDS``
    or more: "ranked higher by the learned weights (+0.41 log-odds; most: lexical within its
    query)"; else null (and for every candidate when no correction applied)."""
    texts = np.full(len(undecided), None, dtype=object)
    if correction is not None and top_correction is not None and names:
        labels = [signal_label(n) for n in names]
        shown = np.flatnonzero(undecided & (np.abs(correction) >= EXPLAIN_MIN_LOG_ODDS))
        texts[shown] = [
            f"{CORRECTION_REASONS[v < 0]} ({v:+.2f} log-odds"
            f"{f'; most: {labels[t]}' if t >= 0 else ''})"
            for v, t in zip(correction[shown].tolist(), top_correction[shown].tolist())]
    return pa.array(texts, type=pa.string())


def signal_label(name: str) -> str:
    """A feature's readable name: "lexical_query_pct" -> "lexical within its query"."""
    for suffix, where in (("_query_pct", " within its query"), ("_global_pct", " across the run")):
        if name.endswith(suffix):
            return name[:-len(suffix)].replace("_", " ") + where
    return name.replace("_", " ")


def named_weights(weights: np.ndarray | None, names: list[str]) -> dict[str, float]:
    """The corrections' weights under the signals' readable names, largest first (empty when no
    correction applied)."""
    if weights is None:
        return {}
    pairs = sorted(zip(names, weights.tolist()), key=lambda p: -p[1])
    return {signal_label(n): round(w, 4) for n, w in pairs}


def surprising_queries(per_query: pd.Series) -> dict[str, float]:
    """The queries with the largest effects each way (``SURPRISING_QUERIES`` of each, from
    ``query_effects``), at least ``EXPLAIN_MIN_LOG_ODDS`` from zero, largest first."""
    effect = per_query[per_query.abs() >= EXPLAIN_MIN_LOG_ODDS].sort_values(ascending=False)
    chosen = pd.concat([effect[effect > 0].head(SURPRISING_QUERIES),
                        effect[effect < 0].tail(SURPRISING_QUERIES)])
    return {str(q): round(float(e), 4) for q, e in chosen.items()}
