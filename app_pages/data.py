"""Data: import a dataset from the data folder or an upload (checked and previewed first);
its statistics."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.datapaths import (
    beir_splits, dataset_candidates, modified_stamp, resolve_data_path, save_upload,
)
from core.datastats import dataset_stats
from core.errors import WorkbenchError
from core.ingest import FORMATS, detect_format, read_dataset
from app_pages import common

MAX_UPLOAD_MB = 200  # .streamlit/config.toml server.maxUploadSize says the same

st.title("Data")
store = common.store(create=True)
data_dir = common.data_dir()


@st.cache_data(show_spinner=False, max_entries=8)
def _stats(workspace: str, dataset_id: int):
    """Dataset stats, cached per dataset version (a dataset id never changes content)."""
    return dataset_stats(common.store_at(workspace), dataset_id)


@st.cache_data(show_spinner=False, max_entries=2)
def _read(path: str, modified: float, options: tuple):
    """Read and validate a dataset, cached until the file or the options change."""
    return read_dataset(path, **dict(options))


def _source_path():
    """The path to read: from the data folder, or a saved upload; None until one is given."""
    source = st.radio("Source", ["From the data folder", "Upload a file"], horizontal=True,
                      key="data_source")
    if source == "From the data folder":
        found = dataset_candidates(data_dir)
        st.text_input("Path inside the data folder", key="data_path",
                      placeholder=found[0] if found else "sample/dbpedia-entity-5k",
                      help=f"relative to {data_dir}")
        if found:
            with st.expander(f"{len(found)} dataset{'s' if len(found) != 1 else ''} found in "
                             "the data folder"):
                st.code("\n".join(found), language=None)
        if not st.session_state.get("data_path"):
            return None
        return resolve_data_path(data_dir, st.session_state["data_path"])
    upload = st.file_uploader("Dataset file (.jsonl, .csv, .parquet, or a BEIR folder as .zip)",
                              type=["jsonl", "csv", "parquet", "zip"], key="data_upload",
                              max_upload_size=MAX_UPLOAD_MB)
    if upload is None:
        return None
    return save_upload(data_dir, upload.name, upload.getvalue(), MAX_UPLOAD_MB * 1024 * 1024)


def _read_options(path) -> dict:
    """Format, split, name and column options from the widgets."""
    detected = detect_format(path)
    formats = ["auto-detect", *sorted(FORMATS)]
    cols = st.columns(3)
    fmt = cols[0].selectbox("Format", formats, key="data_format",
                            help=f"auto-detect reads this path as {detected!r}")
    fmt = detected if fmt == "auto-detect" else fmt
    splits = beir_splits(path) if fmt == "beir" else []
    if splits:
        split = cols[1].selectbox("Split (qrels file)", splits, key="data_split_choice")
    else:
        split = cols[1].text_input("Split", key="data_split", help="Hugging Face split, if any")
    name = cols[2].text_input("Dataset name", key="data_name", placeholder=path.name)
    options = {"format": fmt, "split": split or None, "name": name.strip() or None}
    if fmt == "pairs":
        with st.expander("Columns (auto-detected when blank)"):
            query = st.text_input("Query column", key="data_query_column")
            positive = st.text_input("Positive column", key="data_positive_column")
            negatives = st.text_input("Negative columns, comma-separated", key="data_neg_columns")
        if query:
            options["query_column"] = query
        if positive:
            options["positive_column"] = positive
        if negatives:
            options["negative_columns"] = [c.strip() for c in negatives.split(",") if c.strip()]
    return options


def _show_report(content, report) -> None:
    st.success(f"Read {common.literal(report.source)} as {report.format}: ready to import.",
               icon=":material/check:")
    counts = {k: v for k, v in vars(report.counts).items()}
    st.dataframe([{"measure": k.replace("_", " "), "value": v} for k, v in counts.items()],
                 hide_index=True, key="data_report")
    for warning in report.warnings:
        st.warning(common.literal(warning), icon=":material/warning:")
    tabs = st.tabs(["Queries", "Documents", "Positives"])
    for tab, frame in zip(tabs, (content.queries, content.documents, content.positives)):
        tab.dataframe(frame.drop(columns="text_hash", errors="ignore").head(50), hide_index=True)


st.subheader("Import a dataset")
try:
    path = _source_path()
    if path is None:
        common.info("Give a path inside the data folder or upload a file to check it.")
    else:
        options = _read_options(path)
        with st.spinner("Reading and validating..."):
            content, report = _read(str(path), modified_stamp(path), tuple(
                (k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
        _show_report(content, report)
        if st.button("Import into the workspace", type="primary", key="data_import"):
            with st.spinner("Writing the dataset..."):
                info = store.add_dataset(content)
            st.success(f"Imported dataset {common.literal(info.name)} (id {info.dataset_id}): "
                       f"{info.n_queries} queries, {info.n_documents} documents.",
                       icon=":material/check:")
except WorkbenchError as err:
    common.error(err)

st.subheader("Dataset statistics")
datasets = store.list_datasets()
if not datasets:
    common.info("No dataset in this workspace yet.")
    st.stop()
by_id = {d.dataset_id: d for d in datasets}
dataset_id = st.selectbox("Dataset", list(by_id), key="data_stats_dataset",
                          format_func=lambda i: f"#{i} {by_id[i].name}")
stats = _stats(common.workspace_key(), dataset_id)
left, right = st.columns([1, 2])
left.dataframe(stats.counts, hide_index=True, key="data_counts")
per_query = stats.positives_per_query["positives"].value_counts().sort_index()
right.plotly_chart(
    px.bar(x=per_query.index.astype(str), y=per_query.to_numpy(), title="Positives per query",
           labels={"x": "positives", "y": "queries"}),
    key="data_positives_chart")
cols = st.columns(2)
for col, kind in zip(cols, ("query", "document")):
    col.plotly_chart(
        px.histogram(stats.lengths[stats.lengths["kind"].eq(kind)], x="words", nbins=50,
                     title=f"{kind.title()} length (words)"),
        key=f"data_{kind}_lengths_chart")
if not stats.duplicates.empty:
    st.caption("Texts stored more than once under different ids")
    st.dataframe(stats.duplicates, hide_index=True, key="data_duplicates")
