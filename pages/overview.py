"""Overview: the workspace's datasets and mining runs."""

from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.overview import workspace_summary

st.title("Hard-negative workbench")
try:
    summary = workspace_summary(st.session_state["workspace"])
except WorkbenchError as err:
    st.error(str(err))
    st.stop()

st.subheader("Datasets")
if summary.datasets.empty:
    st.info("No dataset yet: ingest one with `python -m core ingest`.")
else:
    st.dataframe(summary.datasets, hide_index=True, key="overview_datasets")
st.subheader("Mining runs")
if summary.runs.empty:
    st.info("No mining run yet: run `python -m core mine`.")
else:
    st.dataframe(summary.runs, hide_index=True, key="overview_runs")
st.subheader("Annotation progress")
st.dataframe(summary.annotators, hide_index=True, key="overview_annotators")
