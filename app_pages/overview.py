"""Overview: the workspace's datasets, mining runs and annotation progress per annotator."""

from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.overview import workspace_summary
from app_pages import common

st.title("Hard-negative workbench")
st.caption("Load data, mine hard negatives, look at clusters and margins, review suspected false "
           "negatives, and export triplets you trust.")
try:
    summary = workspace_summary(common.workspace_path())
except WorkbenchError as err:
    common.error(err)
    st.page_link("app_pages/data.py", label="Import a dataset", icon=":material/database:")
    st.stop()

st.text(f"Workspace: {common.workspace_path()}")
cols = st.columns(3)
cols[0].metric("Datasets", len(summary.datasets))
cols[1].metric("Mining runs", len(summary.runs))
cols[2].metric("Decisions", int(summary.annotators["decisions"].sum())
               if not summary.annotators.empty else 0)

st.subheader("Datasets")
if summary.datasets.empty:
    common.info("No dataset yet: import one on the Data page.")
    st.page_link("app_pages/data.py", label="Go to Data", icon=":material/database:")
else:
    st.dataframe(summary.datasets, hide_index=True, key="overview_datasets")

st.subheader("Mining runs")
if summary.runs.empty:
    common.info("No mining run yet: start one on the Mine page.")
    st.page_link("app_pages/mine.py", label="Go to Mine", icon=":material/construction:")
else:
    st.dataframe(summary.runs, hide_index=True, key="overview_runs")
    links = st.columns(4)
    links[0].page_link("app_pages/map.py", label="Map", icon=":material/scatter_plot:")
    links[1].page_link("app_pages/margins.py", label="Margins", icon=":material/bar_chart:")
    links[2].page_link("app_pages/review.py", label="Review", icon=":material/rate_review:")
    links[3].page_link("app_pages/export.py", label="Export", icon=":material/download:")

st.subheader("Annotation progress")
if summary.annotators.empty:
    common.info("No decision yet: enter your name in the sidebar and open the Review page.")
else:
    st.dataframe(summary.annotators, hide_index=True, key="overview_annotators")
