"""Margins: score distributions per run, positive vs negative scores, and live what-if filters."""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.errors import WorkbenchError
from core.margins import WhatIf, margin_frame, positive_scores, what_if
from core.mining.curated import DEFAULT_MAX_SUSPICION
from core.runs import finished_runs, run_label
from app_pages import common

st.title("Margins")
store = common.store()
runs = finished_runs(store)
if not runs:
    common.info("No finished mining run yet: mine one on the Mine page.")
    st.stop()
by_id = {r.run_id: r for r in runs}


@st.cache_data(show_spinner=False, max_entries=16)
def _margins(workspace: str, run_id: int, selected_only: bool, version: str) -> pd.DataFrame:
    """A run's margins, cached until a decision or a suspicion score changes (``version``)."""
    return margin_frame(common.store_at(workspace), run_id, selected_only)


def _frames(run_ids: list[int], selected_only: bool) -> pd.DataFrame:
    parts = [_margins(common.workspace_key(), r, selected_only, store.annotation_version(r))
             .assign(run=run_label(by_id[r])) for r in run_ids]
    return pd.concat(parts, ignore_index=True)


def _distributions(frame: pd.DataFrame) -> None:
    cols = st.columns(3)
    pos = positive_scores(frame, by=("run", "query_id"))
    for col, data, x, title, key in (
        (cols[0], pos, "pos_score", "Positive score (one per query)", "margins_pos_hist"),
        (cols[1], frame, "score", "Negative score", "margins_neg_hist"),
        (cols[2], frame, "margin", "Margin (positive - negative)", "margins_margin_hist"),
    ):
        fig = px.histogram(data, x=x, color="run", barmode="overlay", nbins=40, title=title)
        fig.update_layout(showlegend=frame["run"].nunique() > 1, legend={"orientation": "h"})
        col.plotly_chart(fig, key=key)


def _scatter(frame: pd.DataFrame, colour: str) -> go.Figure:
    shown = frame.assign(decision=frame["decision"].fillna("undecided"),
                         query=frame["query_id"].map(html.escape),
                         doc=frame["doc_id"].map(html.escape))
    if colour == "suspicion" and shown["suspicion"].isna().all():
        st.caption("This run has no suspicion scores yet; points are coloured by decision.")
        colour = "decision"
    fig = px.scatter(shown, x="pos_score", y="score", color=colour, render_mode="webgl",
                     custom_data=["query", "doc"], opacity=0.7,
                     labels={"pos_score": "positive score", "score": "negative score"},
                     title="Negative vs positive score")
    fig.update_traces(hovertemplate="query %{customdata[0]}<br>document %{customdata[1]}<br>"
                                    "positive %{x:.3f}, negative %{y:.3f}<extra></extra>")
    low = float(min(shown["pos_score"].min(), shown["score"].min()))
    high = float(max(shown["pos_score"].max(), shown["score"].max()))
    for slope, name, dash in ((1.0, "y = x", "solid"), (0.95, "y = 0.95x", "dash")):
        fig.add_trace(go.Scattergl(x=[low, high], y=[slope * low, slope * high], mode="lines",
                                   name=name, line={"color": "black", "dash": dash, "width": 1}))
    # the lines' legend above the plot: on the right it would cover the suspicion colour bar
    fig.update_layout(height=520, legend={"orientation": "h", "yanchor": "bottom", "y": 1.02,
                                          "xanchor": "right", "x": 1})
    return fig


def _what_if_controls(frame: pd.DataFrame) -> WhatIf:
    st.subheader("What if")
    cols = st.columns(4)
    values = {}
    for col, (field, label, default, lo, hi, step) in zip(cols, (
        ("absolute_margin", "Minimum margin", 0.05, -0.5, 0.5, 0.01),
        ("relative_margin", "Max score / positive", 0.95, 0.5, 1.2, 0.01),
        ("max_score", "Max score", 0.9, -1.0, 1.0, 0.01),
        ("suspicion_threshold", "Max suspicion", DEFAULT_MAX_SUSPICION, 0.0, 1.0, 0.05),
    )):
        with col:
            on = st.toggle(label, key=f"margins_on_{field}")
            value = st.slider(label, lo, hi, default, step, key=f"margins_{field}",
                              label_visibility="collapsed", disabled=not on)
            values[field] = value if on else None
    return WhatIf(**values)


run_ids = st.multiselect("Runs", list(by_id), default=[runs[0].run_id], key="margins_runs",
                         format_func=lambda i: run_label(by_id[i]))
pool = st.toggle("Whole candidate pool (not only the selected negatives)", key="margins_pool")
if not run_ids:
    common.info("Pick at least one run.")
    st.stop()
try:
    frame = _frames(run_ids, not pool)
    _distributions(frame)
    colour = st.radio("Colour the scatter by", ["suspicion", "decision", "run"],
                      horizontal=True, key="margins_colour")
    st.plotly_chart(_scatter(frame, colour), key="margins_scatter")
    filters = _what_if_controls(frame)
    target = st.selectbox("Apply to run", run_ids, key="margins_what_if_run",
                          format_func=lambda i: run_label(by_id[i]))
    result = what_if(store, target, filters)
    cols = st.columns(5)
    cols[0].metric("Selected negatives dropped", f"{result.selected_dropped} / {result.selected}")
    cols[1].metric("Pool candidates dropped", f"{result.pool_dropped} / {result.pool}")
    cols[2].metric("Queries losing a negative", f"{result.queries_affected} / {result.queries}")
    cols[3].metric(f"Queries left short of {result.k}",
                   f"{result.queries_short} / {result.queries}",
                   help="even refilling from the rest of the stored pool")
    refilled = not math.isnan(result.hardness_after)
    cols[4].metric("Hardness after refilling",
                   f"{result.hardness_after:.3f}" if refilled else "–",
                   delta=f"{result.hardness_after - result.hardness:+.3f}" if refilled else None,
                   help="mean score of each query's reviewed hard negatives, then its "
                        "highest-scoring candidates the filters keep and no annotator rejected, "
                        f"k in all; against the run's selected negatives ({result.hardness:.3f})")
    if refilled and result.pool_hardest > 0:
        cols[4].caption(f"{result.hardness_after / result.pool_hardest:.0%} of the pool's "
                        f"hardest {result.k} ({result.pool_hardest:.3f})")
    if not result.rules.empty:
        st.dataframe(result.rules, hide_index=True, key="margins_rules")
except WorkbenchError as err:
    common.error(err)
