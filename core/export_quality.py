"""How hard and how suspect an export's negatives are: the trade a user chooses between.

Hardness is read against what plain top-k would take from the same pools, and suspicion against
curated's default threshold, so a run of any strategy (and any model's score scale) reads the
same way on the Export page, in the manifest, on the command line and in the Mine page's
comparison.
"""

from __future__ import annotations

import pandas as pd

from core.mining.curated import DEFAULT_MAX_SUSPICION
from core.store import RunInfo, Store

QUALITY_KEYS = ("k", "negatives", "hardness", "pool_hardest", "relative_hardness", "mean_suspicion",
                "flagged", "flag_threshold", "unscored")


def export_quality(store: Store, run: RunInfo, negatives: pd.DataFrame,
                   k: int) -> dict[str, float | int | None]:
    """How hard and how suspect an export's negatives are, from the run's stored scores.

    ``negatives``: the export's (query_id, doc_id, score, tier) rows. Keys (``QUALITY_KEYS``):
        k: negatives per query the export asks for.
        negatives: exported negatives.
        hardness: their mean score (the run model's query-negative cosine; the hidden-positive
            benchmark's hardness when the model is the bundled one).
        pool_hardest: the mean score of the k highest-scoring non-positive candidates of the same
            queries' pools, what plain top-k would export (``Store.pool_hardest``).
        relative_hardness: hardness / pool_hardest (1.0: as hard as top-k).
        mean_suspicion: the exported negatives' mean false-negative suspicion (the run's current
            scorer: cold, or learned after ``learn``).
        flagged: exported negatives above curated's default suspicion threshold
            (``flag_threshold``) that no annotator confirmed as hard negatives: what to review.
        unscored: exported negatives without a stored suspicion.
    Figures are None where there is nothing to average.
    """
    quality: dict[str, float | int | None] = dict.fromkeys(QUALITY_KEYS)
    quality.update(k=k, negatives=len(negatives), flagged=0, unscored=0,
                   flag_threshold=DEFAULT_MAX_SUSPICION)
    if negatives.empty:
        return quality
    queries = sorted(negatives["query_id"].unique())
    hardest = store.pool_hardest(run.run_id, run.dataset_id, k, queries)
    suspicion = store.pair_suspicion(run.run_id, negatives).drop_duplicates(
        ["query_id", "doc_id"])
    scored = negatives.merge(suspicion[["query_id", "doc_id", "suspicion"]],
                             on=["query_id", "doc_id"], how="left")
    values = scored["suspicion"].astype(float)
    hardness = float(negatives["score"].astype(float).mean())
    n_top = int(hardest["n"].sum())
    top = float((hardest["hardest"] * hardest["n"]).sum() / n_top) if n_top else None
    quality.update(
        hardness=round(hardness, 4),
        pool_hardest=None if top is None else round(top, 4),
        relative_hardness=round(hardness / top, 4) if top else None,
        mean_suspicion=round(float(values.mean()), 4) if values.notna().any() else None,
        flagged=int(((values > DEFAULT_MAX_SUSPICION) & (scored["tier"] != 0)).sum()),
        unscored=int(values.isna().sum()),
    )
    return quality


def quality_text(quality: dict[str, float | int | None]) -> str:
    """``export_quality`` in one readable line (the CLI's and the Export page's)."""
    if not quality.get("negatives"):
        return "no negatives"
    parts = [f"hardness {quality['hardness']:.3f}"]
    if quality.get("relative_hardness") is not None:
        parts[0] += (f" ({quality['relative_hardness']:.2f} x the pool's hardest {quality['k']}, "
                     f"{quality['pool_hardest']:.3f})")
    if quality.get("mean_suspicion") is not None:
        parts.append(f"mean suspicion {quality['mean_suspicion']:.2f}")
    parts.append(f"{quality['flagged']:,} of {quality['negatives']:,} unreviewed above suspicion "
                 f"{quality['flag_threshold']:.2f} (curated's default threshold)")
    if quality.get("unscored"):
        parts.append(f"{quality['unscored']:,} without a suspicion score")
    return "; ".join(parts)
