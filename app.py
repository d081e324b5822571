"""Streamlit entry: navigation over the workbench's pages and the shared sidebar."""

from __future__ import annotations

import argparse
import os
import sys

import streamlit as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _default_workspace() -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace", default=os.environ.get(
        "WORKBENCH_WORKSPACE", "data/workspaces/sample.duckdb"))
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.workspace


st.set_page_config(page_title="Hard-negative workbench", layout="wide")
st.session_state.setdefault("workspace", _default_workspace())
with st.sidebar:
    st.text_input("Workspace", key="workspace", help="the workspace's DuckDB file")
    st.text_input("Annotator", key="annotator", help="your name; required before reviewing")

navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", default=True),
])
navigation.run()
