"""Annotation progress per annotator and agreement between annotators on the same pairs.

Decisions are keyed by the texts' content hashes; each annotator's latest live decision per pair
counts (a retracted decision does not). "Overall" counts a pair once, by its latest decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import pandas as pd

from core.store import LABELS, Store


@dataclass(frozen=True)
class Progress:
    """How far the review of one run is.

    Attributes:
        table: annotator (or "overall"), decided (pairs of the run's pool), of selected (of the
            run's selected negatives), then one column per label.
        pool_pairs: distinct pairs in the run's pool; selected_pairs: the run's selected negatives.
        run_id: the run; version: the decisions version counted (``Store.decisions_version``,
            read before counting, so a decision recorded meanwhile makes it look stale).
    """

    table: pd.DataFrame
    pool_pairs: int
    selected_pairs: int
    run_id: int | None = None
    version: tuple[int, int] | None = None


def _row(name: str, decided: pd.DataFrame, selected: set[tuple[str, str]]) -> dict[str, object]:
    pairs = set(zip(decided["query_hash"], decided["doc_hash"]))
    row: dict[str, object] = {"annotator": name, "decided": len(pairs),
                              "of selected": len(pairs & selected)}
    for label in LABELS:
        row[label] = int(decided["label"].eq(label).sum())
    return row


def review_progress(store: Store, run_id: int) -> Progress:
    """Decisions on the run's candidate pairs, per annotator and overall.

    Starts from the decisions (few) and asks the store which of them are in the pool, so a pool
    of millions of pairs is never read whole.
    """
    run = store.get_run(run_id)
    version = store.decisions_version()
    pool_pairs, selected_pairs = store.pool_pair_counts(run.run_id, run.dataset_id)
    decisions = store.annotator_decisions()
    keys = ["query_hash", "doc_hash"]
    in_pool = store.pool_pairs_of(run.run_id, run.dataset_id, decisions[keys])
    selected = set(zip(in_pool.loc[in_pool["selected"].astype(bool), "query_hash"],
                       in_pool.loc[in_pool["selected"].astype(bool), "doc_hash"]))
    mine = decisions.merge(in_pool[keys], on=keys)
    rows = [_row(name, group, selected) for name, group in mine.groupby("annotator")]
    latest = pd.DataFrame([(d.query_hash, d.doc_hash, d.label) for d in store.latest_decisions()],
                          columns=[*keys, "label"])
    rows.append(_row("overall", latest.merge(in_pool[keys], on=keys), selected))
    columns = ["annotator", "decided", "of selected", *LABELS]
    return Progress(pd.DataFrame(rows, columns=columns), pool_pairs, selected_pairs, run.run_id,
                    version)


def current_progress(store: Store, run_id: int, known: Progress | None) -> Progress:
    """``known`` while it counts the run's current decisions, else ``review_progress``."""
    if (known is not None and known.run_id == run_id
            and known.version == store.decisions_version()):
        return known
    return review_progress(store, run_id)


def progress_with(progress: Progress, annotator: str, label: str, selected: bool,
                  version: tuple[int, int]) -> Progress:
    """The progress after one more decision, counted without reading the decisions again.

    For a decision on a pool pair that had no live decision (an unreviewed pair of the queue),
    recorded right after ``progress.version``: the annotator's and the overall counts each gain
    one pair (of the run's selection when ``selected``) with ``label``; ``version`` is the
    decisions version after it.

    Raises:
        ValueError: unknown label.
    """
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not one of {', '.join(LABELS)}")
    columns = list(progress.table.columns)
    rows = {r["annotator"]: r for r in progress.table.to_dict("records")}
    for name in (annotator.strip(), "overall"):
        row = rows.setdefault(name, {"annotator": name, **{c: 0 for c in columns[1:]}})
        row["decided"] += 1
        row[label] += 1
        row["of selected"] += int(selected)
    names = sorted(n for n in rows if n != "overall")
    table = pd.DataFrame([rows[n] for n in [*names, "overall"]], columns=columns)
    return Progress(table, progress.pool_pairs, progress.selected_pairs, progress.run_id, version)


@dataclass(frozen=True)
class Agreement:
    """Agreement between annotators who labeled the same pairs.

    Attributes:
        pairs: annotator a, annotator b, shared (pairs both labeled), agreed, agreement (fraction),
            kappa (Cohen's kappa; NaN when undefined: a single label throughout).
        disagreements: query_id, doc_id, and each annotator's label, for pairs labeled differently.
    """

    pairs: pd.DataFrame
    disagreements: pd.DataFrame


def _kappa(a: pd.Series, b: pd.Series) -> float:
    observed = float((a.to_numpy() == b.to_numpy()).mean())
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    expected = float(sum(pa.get(label, 0.0) * pb.get(label, 0.0) for label in LABELS))
    return float("nan") if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def agreement(store: Store) -> Agreement:
    """Pairwise agreement (fraction and Cohen's kappa) over pairs labeled by both annotators."""
    decisions = store.annotator_decisions()
    wide = decisions.pivot_table(index=["query_hash", "doc_hash"], columns="annotator",
                                 values="label", aggfunc="first")
    ids = decisions.drop_duplicates(["query_hash", "doc_hash"]).set_index(
        ["query_hash", "doc_hash"])[["query_id", "doc_id"]]
    rows = []
    for a, b in combinations(sorted(wide.columns), 2):
        both = wide[[a, b]].dropna()
        if both.empty:
            continue
        agreed = int((both[a] == both[b]).sum())
        rows.append({"annotator a": a, "annotator b": b, "shared": len(both), "agreed": agreed,
                     "agreement": agreed / len(both), "kappa": _kappa(both[a], both[b])})
    pairs = pd.DataFrame(rows, columns=["annotator a", "annotator b", "shared", "agreed",
                                        "agreement", "kappa"])
    labeled = wide.notna().sum(axis=1) > 1
    differing = wide[labeled].apply(lambda r: r.dropna().nunique() > 1, axis=1) if labeled.any() \
        else pd.Series(dtype=bool)
    disagreements = wide[labeled][differing.astype(bool)] if len(differing) else wide.iloc[0:0]
    disagreements = ids.join(disagreements, how="inner").reset_index(drop=True)
    return Agreement(pairs, disagreements)
