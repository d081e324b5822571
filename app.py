"""Streamlit entry: navigation over the workbench's pages and the shared sidebar."""

from __future__ import annotations

import os

import streamlit as st

from app_pages import common
from core.memory import return_large_blocks

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
return_large_blocks()  # mining from the Mine page gives its activations back (see core.memory)


st.set_page_config(page_title="Hard-negative workbench", layout="wide")
# Re-assigning the sidebar's keys every run keeps their values when the user switches pages
# (Streamlit otherwise resets a widget whose page changed).
for name, default in (("workspace", common.configured_workspace()), ("annotator", "")):
    st.session_state[name] = st.session_state.get(name, default)
with st.sidebar:
    st.text_input("Workspace", key="workspace", help="the workspace's DuckDB file")
    identity = common.login_identity()  # None unless sign-in (st.login) is configured
    if identity is None:
        st.text_input("Annotator", key="annotator", help="your name; required before reviewing",
                      placeholder="your name")
    else:
        common.sign_in_box(identity)

# The pages live in app_pages/, not pages/: with a pages/ folder next to app.py, Streamlit 1.67
# serves a fresh server's first deep link (/review) as a legacy multipage app that never runs
# this file (no sidebar, no workspace).
navigation = st.navigation([
    st.Page("app_pages/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/database:"),
    st.Page("app_pages/mine.py", title="Mine", icon=":material/construction:"),
    st.Page("app_pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("app_pages/margins.py", title="Margins", icon=":material/bar_chart:"),
    st.Page("app_pages/review.py", title="Review", icon=":material/rate_review:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
])
navigation.run()
