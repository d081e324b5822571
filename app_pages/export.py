"""Export: a run as training data (format, file type, options), a preview, a copy written under
data/exports/ with its manifest, a download of that file, and an audit of its false negatives."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from core.audit import DEFAULT_AUDIT_SIZE, audit_pairs, audit_report, draw_audit
from core.datapaths import export_path
from core.errors import WorkbenchError
from core.export import FILE_TYPES, FORMATS, ExportOptions, export_run, preview_export
from app_pages import common

MIME = {".jsonl": "application/jsonl", ".csv": "text/csv",
        ".parquet": "application/vnd.apache.parquet"}

st.title("Export")
store = common.store()
run = common.pick_run(store, "export_run")


def _options() -> tuple[ExportOptions, str]:
    cols = st.columns(3)
    fmt = cols[0].selectbox("Format", list(FORMATS), key="export_format",
                            index=list(FORMATS).index("triplet") if "triplet" in FORMATS else 0)
    suffix = cols[1].selectbox("File type", list(FILE_TYPES), key="export_file_type")
    k = cols[2].number_input("Negatives per query", min_value=1, value=run.num_negatives, step=1,
                             key="export_k")
    cols = st.columns(4)
    apply = cols[0].checkbox("Apply decisions", value=True, key="export_apply",
                             help="false negatives and unsure pairs are never negatives")
    promote = cols[1].checkbox("Promote false negatives", key="export_promote",
                               disabled=not apply,
                               help="each pair marked false negative becomes a positive of its "
                                    "query (RLHN's relabelling)")
    scores = cols[2].checkbox("Include scores", key="export_scores",
                              disabled=fmt == "flag-embedding",
                              help="flag-embedding always carries scores")
    reviewed = cols[3].checkbox("Only reviewed negatives", key="export_only_reviewed",
                                disabled=not apply)
    cols = st.columns([3, 1, 2], vertical_alignment="center")
    drop = cols[0].checkbox("Leave out queries with more false negatives than", key="export_drop",
                            disabled=not apply,
                            help="RLHN's treatment of broad queries: a query with more pairs "
                                 "marked false negative than this is left out (RLHN: 8)")
    limit = cols[1].number_input("False negatives per query", min_value=0, value=8, step=1,
                                 key="export_drop_limit", disabled=not (drop and apply),
                                 label_visibility="collapsed")
    options = ExportOptions(format=fmt, apply_decisions=apply,
                            promote_false_negatives=promote and apply,
                            include_scores=scores and fmt != "flag-embedding",
                            only_reviewed=reviewed and apply, num_negatives=int(k),
                            max_false_negatives=int(limit) if drop and apply else None)
    return options, suffix


@st.cache_data(show_spinner=False, max_entries=8)
def _preview_frame(workspace: str, run_id: int, options: tuple,
                   version: str) -> tuple[pd.DataFrame, dict]:
    """The preview rows and their attrs (counts, quality, partial), cached per options until a
    decision or a suspicion score changes (``version``): a run of a million candidates takes
    about a second, and every widget on the page (the audit's too) reruns it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = preview_export(common.store_at(workspace), run_id, ExportOptions(**dict(options)))
    return frame, dict(frame.attrs)


def _preview(options: ExportOptions) -> None:
    frame, attrs = _preview_frame(common.workspace_key(), run.run_id,
                                  tuple(asdict(options).items()),
                                  store.annotation_version(run.run_id))
    counts = attrs.get("counts", {})
    if attrs.get("partial"):
        st.subheader(f"Preview of the first {attrs['queries_previewed']:,} queries: "
                     f"{len(frame):,} rows")
        st.caption("The run is large, so the preview and its counts cover these queries only; "
                   "the written file and its manifest cover every query.")
    else:
        st.subheader(f"Preview: {len(frame):,} rows")
    _quality(attrs.get("quality", {}))
    left, right = st.columns([5, 2])
    left.dataframe(frame.head(100), hide_index=True, key="export_preview")
    right.dataframe([{"count": k.replace("_", " "), "value": v} for k, v in counts.items()],
                    hide_index=True, key="export_counts")


def _quality(quality: dict) -> None:
    """How hard and how suspect the negatives are (``core.export_quality.export_quality``)."""
    if not quality.get("negatives"):
        return
    cols = st.columns(4)
    cols[0].metric("Hardness", f"{quality['hardness']:.3f}",
                   help="the negatives' mean score (query-negative cosine under the run's model)")
    if quality["relative_hardness"] is not None:
        cols[1].metric(f"Of the pool's hardest {quality['k']}",
                       f"{quality['relative_hardness']:.0%}",
                       help=f"hardness over the mean score of each query's {quality['k']} "
                            f"highest-scoring candidates ({quality['pool_hardest']:.3f}): what "
                            "plain top-k would export, false negatives and all")
    if quality["mean_suspicion"] is not None:
        cols[2].metric("Mean suspicion", f"{quality['mean_suspicion']:.2f}",
                       help="how likely the negatives are unlabeled positives, on average")
    cols[3].metric(f"Above suspicion {quality['flag_threshold']:.2f}",
                   f"{quality['flagged']:,} of {quality['negatives']:,}",
                   help="unreviewed negatives curated would hold back; the Review queue shows "
                        "them first")
    if quality["unscored"]:
        st.caption(f"{quality['unscored']:,} negatives have no stored suspicion score "
                   "(a run mined by an older version); mine the run again to score them.")


def _write(options: ExportOptions, suffix: str) -> None:
    dataset = store.get_dataset(dataset_id=run.dataset_id).name
    target = export_path(common.data_dir(), dataset, run.run_id, options.format, suffix)
    result = export_run(store, run.run_id, target, options)
    st.session_state["export_result"] = {"path": str(result.path),
                                         "manifest": str(result.manifest_path),
                                         "rows": result.rows, "queries": result.queries}


def _audit(options: ExportOptions) -> None:
    """Draw a random sample of the exported negatives, send it to review, show the estimate."""
    st.subheader("Audit: how many false negatives does the export hold?")
    k = options.num_negatives or run.num_negatives
    limit = options.max_false_negatives
    left_out = ("" if limit is None else
                f", leaving out queries with more than {limit} marked false negative")
    st.caption(f"Draw a random sample of the negatives an export of {k} per query takes "
               f"(decisions applied{left_out}) and decide it on the Review page in the sample's "
               "order: the decisions estimate the whole export's false-negative rate, with an "
               "interval. "
               "Stopping early still estimates fairly; the interval is then wider.")
    # An audit samples the export with decisions applied; say so where the options above ask
    # for another one, rather than estimate an export that is not the one previewed.
    unlike = ("This export ignores decisions; an audit samples the export with decisions "
              "applied, so tick Apply decisions to audit what you export."
              if not options.apply_decisions else
              "This export takes reviewed hard negatives only: every negative in it is decided, "
              "so there is nothing to estimate." if options.only_reviewed else None)
    if unlike:
        common.info(unlike)
    cols = st.columns([1, 1, 1], vertical_alignment="bottom")
    size = cols[0].number_input("Sample size", min_value=1, value=DEFAULT_AUDIT_SIZE, step=10,
                                key="audit_size")
    if cols[1].button("Draw a sample", key="audit_draw", icon=":material/casino:",
                      disabled=unlike is not None):
        drawn = draw_audit(store, run.run_id, int(size), created_by=common.annotator() or None,
                           num_negatives=k, max_false_negatives=limit)
        st.session_state["audit_message"] = (f"Drew audit {drawn.audit_id}: {drawn.size:,} of "
                                             f"{drawn.exported:,} exported negatives.")
    audits = store.list_audits(run.run_id)
    if not audits:
        return
    message = st.session_state.pop("audit_message", None)
    if message:
        st.success(message, icon=":material/check:")
    by_id = {a.audit_id: a for a in audits}
    choice = cols[2].selectbox("Audit", [a.audit_id for a in audits], key="audit_pick",
                               format_func=lambda i: f"audit {i} (k = {by_id[i].num_negatives})")
    report = audit_report(store, int(choice))
    metrics = st.columns(3)
    metrics[0].metric("Estimated false-negative rate",
                      "–" if report.fn_rate is None else f"{report.fn_rate:.1%}",
                      help="of the export as it was when the sample was drawn")
    metrics[1].metric("Interval (95 %)", "–" if report.fn_rate is None else
                      f"{report.low:.1%} – {report.high:.1%}")
    metrics[2].metric("Decided", f"{report.decided + report.unsure:,} / {report.audit.size:,}")
    st.text(report.text())
    if st.button("Review the sample", key="audit_review", icon=":material/rate_review:",
                 disabled=not report.undecided):
        st.session_state["review_focus"] = audit_pairs(store, report.audit.audit_id)
        st.session_state["review_focus_run"] = run.run_id
        st.session_state["review_focus_audit"] = report.audit.audit_id
        st.switch_page("app_pages/review.py")


try:
    options, suffix = _options()
    _preview(options)
    if st.button("Write the export", type="primary", key="export_write",
                 icon=":material/save:"):
        _write(options, suffix)
    written = st.session_state.get("export_result")
    if written and Path(written["path"]).is_file():
        path = Path(written["path"])
        st.success(f"Wrote {written['rows']:,} rows for {written['queries']:,} queries.",
                   icon=":material/check:")
        st.text(f"File: {path}\nManifest: {written['manifest']}")
        st.download_button("Download " + common.literal(path.name), path.read_bytes(),
                           file_name=path.name, mime=MIME.get(path.suffix), key="export_download",
                           icon=":material/download:")
        with st.expander("Manifest"):
            st.json(json.loads(Path(written["manifest"]).read_text(encoding="utf-8")),
                    expanded=False)
    _audit(options)
except WorkbenchError as err:
    common.error(err)
