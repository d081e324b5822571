"""Export a finished mining run as training data, with annotators' decisions applied.

Negatives per query come from the run's candidate pool (``ExportOptions``; chosen in SQL by
``Store.export_negatives``), are laid out in one of the FORMATS and written atomically as JSONL,
Parquet or CSV, followed by ``<out>.manifest.json`` (run, options, counts, the negatives' quality,
the data file's SHA-256, the run's newest audit).

Formats use sentence-transformers' names: its dataset formats
(https://sbert.net/docs/sentence_transformer/training_overview.html#dataset-format) and the
``output_format`` of ``util.mine_hard_negatives``
(https://sbert.net/docs/package_reference/util.html#sentence_transformers.util.mine_hard_negatives),
plus FlagEmbedding's fine-tuning JSONL ({"query", "pos", "neg", "pos_scores", "neg_scores",
"prompt"}; https://github.com/FlagOpen/FlagEmbedding, examples/finetune).

Scores are the run model's query-document similarity: higher means closer to the query. The store
keeps no score per (query, positive): a positive's score is the candidate rows' ``pos_score`` of its
query (the score of the query's lowest-scoring positive), or None for a query without candidates; a
promoted false negative keeps its own candidate score.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import WorkbenchError
from core.export_quality import export_quality
from core.files import atomic_write
from core.store import RunInfo, Store


@dataclass(frozen=True)
class ExportOptions:
    """How a run becomes training rows.

    Attributes:
        format: one of FORMATS.
        apply_decisions: honour annotators' latest labels: pairs marked false negative or unsure
            are never negatives; reviewed hard negatives come first, then the run's selection,
            then eligible candidates refill up to ``num_negatives``. False: the run's selection
            only.
        promote_false_negatives: RLHN-style relabelling: pairs marked false negative become extra
            positives of their query (needs apply_decisions).
        include_scores: add score columns (flag-embedding always carries scores).
        only_reviewed: negatives only from reviewed hard negatives (needs apply_decisions).
        num_negatives: negatives per query; None takes the run's num_negatives.
        max_false_negatives: RLHN's other treatment: leave out every query with more than this
            many of its pool's pairs marked false negative (RLHN drops queries with more than 8;
            broad queries with many unlabeled positives teach little). None keeps every query
            (needs apply_decisions).
    """

    format: str
    apply_decisions: bool = True
    promote_false_negatives: bool = False
    include_scores: bool = False
    only_reviewed: bool = False
    num_negatives: int | None = None
    max_false_negatives: int | None = None


@dataclass(frozen=True)
class ExportResult:
    """A written export: ``queries`` counts the queries present in the file; ``counts`` says what
    each rule kept or removed (see ``COUNT_KEYS``); ``quality`` how hard and how suspect its
    negatives are (see ``export_quality``)."""

    path: Path
    manifest_path: Path
    rows: int
    queries: int
    counts: dict[str, int]
    quality: dict[str, float | int | None]


@dataclass(frozen=True)
class ExportPlan:
    """The chosen texts in long form. ``queries``: query_id, text, pos_score, q_order (export
    order); ``positives``/``negatives``: query_id, q_order, doc_id, text, score, idx (1-based;
    positives: the dataset's by doc_id, then promoted false negatives; negatives: choice order)."""

    queries: pd.DataFrame
    positives: pd.DataFrame
    negatives: pd.DataFrame
    num_negatives: int
    prompt: str


@dataclass(frozen=True)
class FormatRows:
    """One format's rows: ``dropped`` rows could not be formed; ``queries`` appear in ``frame``."""

    frame: pd.DataFrame
    dropped: int
    queries: int


# queries: the run's queries (those with a positive); queries_dropped_for_false_negatives: left
# out by max_false_negatives; queries_short: fewer than k negatives;
# *_excluded: distinct pool pairs removed (dataset positives are never negatives); rows_dropped:
# rows a format could not form (n-tuple: short queries; lists: queries without negatives).
COUNT_KEYS = (
    "queries", "queries_dropped_for_false_negatives", "queries_short",
    "false_negatives_excluded", "unsure_excluded", "positives_excluded",
    "reviewed_hard_negatives_used", "refilled", "promoted_positives", "rows", "rows_dropped",
)
# Decisions that keep a pair out of the negatives, and the count that reports them.
_EXCLUDED = {"false_negative": "false_negatives_excluded", "unsure": "unsure_excluded"}


# -- choosing ------------------------------------------------------------------------------------
def _mode(options: ExportOptions) -> str:
    """The store's choice rule for these options (see ``Store.export_negatives``)."""
    if not options.apply_decisions:
        return "selection"
    return "only_reviewed" if options.only_reviewed else "decisions"


def _choose_positives(positives: pd.DataFrame, promoted: pd.DataFrame, queries: pd.DataFrame,
                      promote: bool, counts: dict[str, int]) -> pd.DataFrame:
    """The dataset's positives of the run's queries, plus promoted false negatives when asked."""
    pos = positives[["query_id", "doc_id"]].drop_duplicates().merge(
        queries[["query_id", "q_order", "pos_score"]], on="query_id"
    ).rename(columns={"pos_score": "score"}).assign(tier=0)
    if promote:
        promoted = promoted.merge(queries[["query_id", "q_order"]], on="query_id").sort_values(
            ["q_order", "score", "doc_id"], ascending=[True, False, True], kind="stable")
        counts["promoted_positives"] = len(promoted)
        pos = pd.concat([pos, promoted[["query_id", "doc_id", "q_order", "score"]].assign(tier=1)])
    pos = pos.sort_values(["q_order", "tier"], kind="stable")
    pos["idx"] = pos.groupby("query_id", sort=False).cumcount() + 1
    return pos[["query_id", "q_order", "doc_id", "score", "idx"]]


def queries_over_limit(decided: pd.DataFrame, limit: int) -> set[str]:
    """The queries with more than ``limit`` of ``decided``'s pairs (query_id, label; the pool's
    decided pairs, ``Store.export_pool_facts``) marked false negative: what
    ``max_false_negatives`` leaves out."""
    marked = decided[decided["label"].eq("false_negative")].groupby("query_id").size()
    return set(marked[marked > limit].index)


def _drop_broad_queries(queries: pd.DataFrame, negatives: pd.DataFrame, decided: pd.DataFrame,
                        limit: int, counts: dict[str, int]) -> tuple[pd.DataFrame, ...]:
    """Leave out the queries with more than ``limit`` pool pairs marked false negative."""
    dropped = queries_over_limit(decided, limit)
    counts["queries_dropped_for_false_negatives"] = len(dropped)
    return tuple(frame[~frame["query_id"].isin(dropped)] for frame in (queries, negatives, decided))


def _plan(store: Store, run: RunInfo, options: ExportOptions,
          max_queries: int | None = None) -> tuple[ExportPlan, dict, dict]:
    """Choose positives and negatives for every query of the run (queries with a positive), or
    for the first ``max_queries`` of them. The choice is the store's, in SQL, so a run of
    millions of candidates is never read whole; only the chosen pairs and their texts come back."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    k = options.num_negatives or run.num_negatives
    mode = _mode(options)
    queries = store.export_queries(run.run_id, run.dataset_id, max_queries)
    queries = queries.assign(q_order=np.arange(len(queries)),
                             pos_score=queries["pos_score"].astype(float))
    wanted = None if max_queries is None else queries["query_id"].tolist()
    short = run.short_queries if k <= run.num_negatives and mode == "decisions" else None
    negatives = store.export_negatives(run.run_id, run.dataset_id, k, wanted, short_queries=short,
                                       mode=mode)
    negatives = negatives.merge(queries[["query_id", "q_order"]], on="query_id")
    negatives = negatives.astype({"score": float}).sort_values(["q_order", "idx"], kind="stable")
    n_positive, decided = store.export_pool_facts(run.run_id, run.dataset_id, wanted)
    decided = decided[decided["query_id"].isin(queries["query_id"])].astype({"score": float})
    counts["queries"] = len(queries)
    if options.max_false_negatives is not None:
        queries, negatives, decided = _drop_broad_queries(
            queries, negatives, decided, options.max_false_negatives, counts)
    counts["positives_excluded"] = n_positive
    if options.apply_decisions:
        for label, key in _EXCLUDED.items():
            counts[key] = int(decided["label"].eq(label).sum())
    counts["reviewed_hard_negatives_used"] = int((negatives["tier"] == 0).sum())
    counts["refilled"] = int((negatives["tier"] == 2).sum())
    positives = store.dataset_frame(run.dataset_id, "positives")
    positives = positives[positives["query_id"].isin(queries["query_id"])]
    promoted = decided.loc[decided["label"].eq("false_negative"), ["query_id", "doc_id", "score"]]
    pos = _choose_positives(positives, promoted, queries, options.promote_false_negatives, counts)
    pos_text = store.lookup_texts(run.dataset_id, "documents", pos["doc_id"])
    pos = pos.assign(text=pos["doc_id"].map(pos_text))
    quality = export_quality(store, run, negatives, k)
    negatives = negatives[["query_id", "q_order", "doc_id", "score", "idx", "text"]]
    per_query = negatives.groupby("query_id").size().reindex(queries["query_id"], fill_value=0)
    counts["queries_short"] = int((per_query < k).sum())
    queries = queries[["query_id", "text", "pos_score", "q_order"]]
    plan = ExportPlan(queries, pos, negatives.reset_index(drop=True), k, run.query_prompt)
    return plan, counts, quality


# -- formats -------------------------------------------------------------------------------------
def _anchor(plan: ExportPlan, query_ids: pd.Series) -> np.ndarray:
    return query_ids.map(plan.queries.set_index("query_id")["text"]).to_numpy()


def _score_list(scores: pd.Series) -> list[float | None]:
    return [None if pd.isna(s) else float(s) for s in scores]


def _triplet(plan: ExportPlan, include_scores: bool) -> FormatRows:
    """anchor, positive, negative: one row per (query, positive, negative)."""
    t = plan.positives.merge(plan.negatives, on=["query_id", "q_order"], suffixes=("_pos", "_neg"))
    t = t.sort_values(["q_order", "idx_pos", "idx_neg"], kind="stable")
    out = pd.DataFrame({"anchor": _anchor(plan, t["query_id"]),
                        "positive": t["text_pos"].to_numpy(), "negative": t["text_neg"].to_numpy()})
    if include_scores:
        out["positive_score"] = t["score_pos"].to_numpy(dtype=float)
        out["negative_score"] = t["score_neg"].to_numpy(dtype=float)
    return FormatRows(out, 0, t["query_id"].nunique())


def _n_tuple(plan: ExportPlan, include_scores: bool) -> FormatRows:
    """anchor, positive, negative_1..negative_n: one row per (query, positive); queries with fewer
    than n negatives are dropped, as sentence-transformers does."""
    neg = plan.negatives
    counts = neg.groupby("query_id").size()
    full = counts[counts >= plan.num_negatives].index
    kept = plan.positives[plan.positives["query_id"].isin(full)]
    out = pd.DataFrame({"anchor": _anchor(plan, kept["query_id"]),
                        "positive": kept["text"].to_numpy()})
    columns = [("text", "")] + ([("score", "_score")] if include_scores else [])
    for field, suffix in columns:
        for i in range(1, plan.num_negatives + 1):
            at_i = neg[neg["idx"] == i].set_index("query_id")[field]
            out[f"negative_{i}{suffix}"] = kept["query_id"].map(at_i).to_numpy()
    return FormatRows(out, len(plan.positives) - len(kept), kept["query_id"].nunique())


def _labeled_long(plan: ExportPlan) -> pd.DataFrame:
    both = pd.concat([plan.positives.assign(label=1), plan.negatives.assign(label=0)])
    return both.sort_values(["q_order", "label", "idx"], ascending=[True, False, True],
                            kind="stable")


def _labeled_pair(plan: ExportPlan, include_scores: bool) -> FormatRows:
    """anchor, positive, label (1 positive, 0 negative): one row per (query, document)."""
    t = _labeled_long(plan)
    out = pd.DataFrame({"anchor": _anchor(plan, t["query_id"]), "positive": t["text"].to_numpy(),
                        "label": t["label"].to_numpy(dtype=np.int64)})
    if include_scores:
        out["score"] = t["score"].to_numpy(dtype=float)
    return FormatRows(out, 0, t["query_id"].nunique())


def _labeled_list(plan: ExportPlan, include_scores: bool) -> FormatRows:
    """anchor, positive (texts: positives then negatives), labels: one row per query; a query
    without negatives has nothing to contrast and is dropped."""
    t = _labeled_long(plan)
    t = t[t["query_id"].isin(plan.negatives["query_id"])]
    g = t.groupby("q_order", sort=True)
    out = pd.DataFrame({"anchor": _anchor(plan, g["query_id"].first()),
                        "positive": g["text"].agg(list).to_numpy(),
                        "labels": g["label"].agg(list).to_numpy()})
    if include_scores:
        out["scores"] = g["score"].agg(_score_list).to_numpy()
    return FormatRows(out, len(plan.queries) - len(out), len(out))


def _flag_embedding(plan: ExportPlan, include_scores: bool) -> FormatRows:
    """query, pos, neg, pos_scores, neg_scores, query_id, pos_ids, neg_ids (+ prompt): one row
    per query; a query without negatives is dropped (FlagEmbedding samples from ``neg``)."""
    pos = plan.positives[plan.positives["query_id"].isin(plan.negatives["query_id"])]
    gp = pos.groupby("q_order", sort=True)
    gn = plan.negatives.groupby("q_order", sort=True)
    query_ids = gp["query_id"].first()
    out = pd.DataFrame({
        "query": _anchor(plan, query_ids), "pos": gp["text"].agg(list).to_numpy(),
        "neg": gn["text"].agg(list).to_numpy(),
        "pos_scores": gp["score"].agg(_score_list).to_numpy(),
        "neg_scores": gn["score"].agg(_score_list).to_numpy(), "query_id": query_ids.to_numpy(),
        "pos_ids": gp["doc_id"].agg(list).to_numpy(), "neg_ids": gn["doc_id"].agg(list).to_numpy(),
    })
    if plan.prompt:
        out["prompt"] = plan.prompt
    return FormatRows(out, len(plan.queries) - len(out), len(out))


FORMATS: dict[str, Callable[[ExportPlan, bool], FormatRows]] = {
    "triplet": _triplet, "n-tuple": _n_tuple, "labeled-pair": _labeled_pair,
    "labeled-list": _labeled_list, "flag-embedding": _flag_embedding,
}


# -- files ---------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars and arrays unboxed, NaN as None."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is pd.NA or isinstance(value, float) and math.isnan(value) else value


def _write_jsonl(frame: pd.DataFrame, handle: BinaryIO) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept as is."""
    for record in frame.to_dict(orient="records"):
        line = json.dumps({k: _plain(v) for k, v in record.items()}, ensure_ascii=False,
                          allow_nan=False)
        handle.write(line.encode("utf-8") + b"\n")


def _write_parquet(frame: pd.DataFrame, handle: BinaryIO) -> None:
    """Parquet via pyarrow; list cells become list columns."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), handle)


def _write_csv(frame: pd.DataFrame, handle: BinaryIO) -> None:
    """CSV with a header; list cells are JSON-encoded."""
    encoded = frame.copy()
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, list)).any():
            encoded[column] = frame[column].map(
                lambda v: json.dumps(_plain(v), ensure_ascii=False, allow_nan=False))
    handle.write(encoded.to_csv(index=False, lineterminator="\n").encode("utf-8"))


FILE_TYPES: dict[str, Callable[[pd.DataFrame, BinaryIO], None]] = {
    ".jsonl": _write_jsonl, ".parquet": _write_parquet, ".csv": _write_csv,
}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# -- public --------------------------------------------------------------------------------------
def _check_options(options: ExportOptions) -> None:
    if options.format not in FORMATS:
        raise WorkbenchError(
            f"unknown export format {options.format!r}; expected one of {', '.join(FORMATS)}")
    k = options.num_negatives
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise WorkbenchError(f"num_negatives must be a whole number of at least 1, not {k!r}")
    limit = options.max_false_negatives
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise WorkbenchError(
            f"max_false_negatives must be a whole number of at least 0, not {limit!r}")
    if not options.apply_decisions and (options.promote_false_negatives or options.only_reviewed
                                         or limit is not None):
        raise WorkbenchError("promote_false_negatives, only_reviewed and max_false_negatives use "
                             "annotators' decisions; they need apply_decisions=True")
    if options.include_scores and options.format == "flag-embedding":
        warnings.warn("include_scores is ignored by flag-embedding, which always carries scores",
                      stacklevel=4)


def _build(
    store: Store, run_id: int | None, options: ExportOptions, max_queries: int | None = None
) -> tuple[FormatRows, dict[str, int], dict[str, float | int | None], RunInfo]:
    """Check the options and the run, then choose and lay out the rows."""
    _check_options(options)
    run = store.get_run(run_id)
    if run.status != "done":
        raise WorkbenchError(
            f"run {run.run_id} is {run.status}, not finished; only finished runs can be exported")
    plan, counts, quality = _plan(store, run, options, max_queries)
    rows = FORMATS[options.format](plan, options.include_scores)
    counts["rows"] = len(rows.frame)
    counts["rows_dropped"] = rows.dropped
    return rows, counts, quality, run


PREVIEW_QUERIES = 200
"""A preview of a run larger than ``PREVIEW_FULL_ROWS`` candidates covers this many queries."""
PREVIEW_FULL_ROWS = 1_000_000
"""Runs up to this many candidate rows are previewed whole (counts for every query)."""


def build_export(store: Store, run_id: int | None, options: ExportOptions,
                 max_queries: int | None = None) -> pd.DataFrame:
    """Return the rows an export would write (for previews), counts in ``frame.attrs["counts"]``.

    Args:
        run_id: the run, or None for the newest finished run.
        max_queries: only the first this many queries (by id), e.g. to preview a huge run; the
            counts then describe those queries. ``frame.attrs["queries_previewed"]`` says how many.

    Raises:
        WorkbenchError: unknown format, contradictory options, no such or unfinished run.
    """
    rows, counts, quality, _ = _build(store, run_id, options, max_queries)
    frame = rows.frame
    frame.attrs["counts"] = counts
    frame.attrs["quality"] = quality
    frame.attrs["queries_previewed"] = counts["queries"]
    return frame


def preview_export(store: Store, run_id: int | None, options: ExportOptions) -> pd.DataFrame:
    """``build_export`` for a preview: the whole run up to ``PREVIEW_FULL_ROWS`` candidates, else
    its first ``PREVIEW_QUERIES`` queries (``frame.attrs["partial"]`` is then True), so the page
    answers in well under a second on a run of millions of candidates."""
    run = store.get_run(run_id)
    partial = store.count_candidates(run.run_id) > PREVIEW_FULL_ROWS
    frame = build_export(store, run.run_id, options, PREVIEW_QUERIES if partial else None)
    frame.attrs["partial"] = partial
    return frame


def _suspicion_provenance(store: Store, run: RunInfo) -> dict:
    """Which suspicion chose and held back the negatives: None (the run is not scored), the
    cold one, or a model learned from decisions (how many, its cross-validated ROC-AUC, whether
    its corrections applied, its weights)."""
    model = run.search.get("learned_model")
    if model:
        return {"scorer": "learned", "decisions": model["false_negatives"]
                + model["hard_negatives"], "cv_auc": model["cv_auc"],
                "corrections": model["corrections"], "weights": model["weights"]}
    return {"scorer": "cold" if store.review_version(run.run_id)[2] else None}


def export_run(
    store: Store, run_id: int | None, out_path: str | Path, options: ExportOptions
) -> ExportResult:
    """Write a run's training rows to ``out_path`` (.jsonl, .parquet or .csv) and its manifest.

    Both are written atomically: the data file first, then ``<out_path>.manifest.json``.

    Args:
        run_id: the run, or None for the newest finished run.

    Raises:
        WorkbenchError: unknown format or file type, missing folder, contradictory options, no such
            or unfinished run, or an export without any row.
    """
    path = Path(out_path)
    writer = FILE_TYPES.get(path.suffix.lower())
    if writer is None:
        raise WorkbenchError(f"cannot export to {path}: the file name must end in one of "
                             f"{', '.join(FILE_TYPES)}, not {path.suffix or 'no extension'!r}")
    if path.is_dir():
        raise WorkbenchError(f"cannot export to {path}: it is a folder; give a file name")
    if not path.parent.is_dir():
        raise WorkbenchError(f"cannot export to {path}: folder {path.parent} does not exist")
    rows, counts, quality, run = _build(store, run_id, options)
    if rows.frame.empty:
        raise WorkbenchError(
            f"run {run.run_id} gives no {options.format} rows with these options (counts: "
            f"{', '.join(f'{k} {v}' for k, v in counts.items())}); nothing was written")
    from core.audit import latest_audit_summary  # here: core.audit samples through this module

    atomic_write(path, lambda handle: writer(rows.frame, handle))
    manifest = {
        "run_id": run.run_id, "dataset": store.get_dataset(dataset_id=run.dataset_id).name,
        "strategy": run.strategy, "params": run.params, "model": run.model, "seed": run.seed,
        "num_negatives": options.num_negatives or run.num_negatives, "format": options.format,
        "options": asdict(options), "counts": counts, "quality": quality,
        "path": str(path.resolve()),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sha256": _sha256(path),
        "audit": latest_audit_summary(store, run.run_id),
        "suspicion": _suspicion_provenance(store, run),
    }
    manifest_path = path.with_name(path.name + ".manifest.json")
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    atomic_write(manifest_path, lambda handle: handle.write(text.encode("utf-8")))
    return ExportResult(path, manifest_path, len(rows.frame), rows.queries, counts, quality)


def planned_negatives(store: Store, run_id: int, num_negatives: int | None = None,
                      query_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The (query_id, doc_id, idx) negatives a default export of the run would write now (of
    ``query_ids`` only, when given).

    Decisions apply, as in an export; the review queue puts these pairs first. Chosen in SQL
    (``Store.export_negatives``, the rule an export applies), so it stays fast on runs of
    millions of candidates.
    """
    run = store.get_run(run_id)
    frame = _default_negatives(store, run, num_negatives or run.num_negatives, query_ids)
    return frame[["query_id", "doc_id", "idx"]].astype({"idx": "int64"}).reset_index(drop=True)


def run_quality(store: Store, run_id: int,
                num_negatives: int | None = None) -> dict[str, float | int | None]:
    """``export_quality`` of a default export of the run (decisions applied, ``num_negatives``
    per query or the run's k), without reading any text."""
    run = store.get_run(run_id)
    k = num_negatives or run.num_negatives
    return export_quality(store, run, _default_negatives(store, run, k), k)


def _default_negatives(store: Store, run: RunInfo, k: int,
                       query_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """A default export's negatives (query_id, doc_id, score, tier, idx), without their texts."""
    short = run.short_queries if k <= run.num_negatives else None  # else every query refills
    return store.export_negatives(run.run_id, run.dataset_id, k, query_ids, short_queries=short,
                                  with_text=False)
