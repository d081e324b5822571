"""Map: a 2-D UMAP of documents and queries, coloured by cluster, role, suspicion or decision; one
query's neighbourhood highlighted; box/lasso selection with actions."""

from __future__ import annotations

import html

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.clusters import default_cluster_count
from core.errors import WorkbenchError
from core.map_view import ROLES, label_pairs, map_points, query_focus, selection_pairs, \
    selection_table
from core.projection import EmbeddingVersion, embedding_version, project, version_runs
from app_pages import common

COLOURS = {"query": "#1f77b4", "positive": "#2ca02c", "selected negative": "#d62728",
           "candidate": "#ff7f0e", "other": "#c7c7c7", "hard_negative": "#d62728",
           "false_negative": "#2ca02c", "unsure": "#9467bd", "undecided": "#c7c7c7"}
NONE = "(none)"
PALETTE = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24

st.title("Map")
store = common.store()
run = common.pick_run(store, "map_run")
version = embedding_version(run)


@st.cache_data(show_spinner=False, max_entries=4)
def _projection(workspace: str, version: EmbeddingVersion, max_points: int, seed: int,
                runs: tuple[int, ...]):
    """UMAP coordinates, cached per embedding version, sample size, seed and runs kept."""
    return project(common.store_at(workspace), version, max_points, seed, runs)


@st.cache_data(show_spinner=False, max_entries=4)
def _points(workspace: str, run_id: int, annotations: str, settings: tuple, _projection,
            _clusters):
    """The map's frame, cached per run, decisions and suspicion version and map settings (the
    projection and clusters are named by ``settings``, not hashed)."""
    return map_points(common.store_at(workspace), run_id, _projection, _clusters)


@st.cache_data(show_spinner=False, max_entries=4)
def _figure_spec(workspace: str, run_id: int, annotations: str, settings: tuple, colour: str,
                 _points) -> dict:
    """The figure as plotly's dict (numpy arrays inside), cached like ``_points``: a rerun for
    a selection does not rebuild 100,000 points' traces."""
    return _figure(_points, colour).to_plotly_json()


def _controls() -> tuple[str, int, int, str | None]:
    dataset = store.get_dataset(dataset_id=run.dataset_id)
    cols = st.columns([2, 1, 1, 2])
    colour = cols[0].radio("Colour by", ["cluster", "role", "suspicion", "decision"],
                           horizontal=True, key="map_colour")
    n_clusters = cols[1].number_input(
        "Clusters", min_value=2, max_value=200, step=1, key="map_clusters",
        value=default_cluster_count(dataset.n_documents))
    max_points = cols[2].number_input("Max points", min_value=100, max_value=200_000, step=500,
                                      value=2000, key="map_max_points",
                                      help="above this many points the documents are sampled")
    queries = store.run_query_ids(run.run_id)
    query = cols[3].selectbox("Highlight a query", [NONE, *queries], key="map_query")
    return colour, int(n_clusters), int(max_points), None if query == NONE else query


def _trace(frame, name: str, colour) -> list[go.Scattergl]:
    """WebGL traces of one legend entry: documents as circles, queries as diamonds (a symbol per
    trace: per-point symbols cost plotly a check per point). customdata is each point's row in the
    map's frame, so 100,000 points travel as typed arrays; the hover label is the escaped id."""
    traces = []
    for kind, symbol in (("document", "circle"), ("query", "diamond")):
        part = frame["kind"].eq(kind).to_numpy()
        if not part.any():
            continue
        rows = frame[part]
        colours = colour[part] if hasattr(colour, "__len__") and not isinstance(colour, str) \
            else colour
        traces.append(go.Scattergl(
            x=rows["x"].to_numpy(), y=rows["y"].to_numpy(), mode="markers", name=name,
            legendgroup=name, showlegend=not traces, customdata=rows.index.to_numpy(np.int32),
            hovertext=(kind + " " + rows["id"].map(html.escape)).to_numpy(object),
            marker={"color": colours, "size": 6, "symbol": symbol, "opacity": 0.8},
            hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>"))
    return traces


def _figure(points, colour: str) -> go.Figure:
    fig = go.Figure()
    if colour == "suspicion":
        scored = points["suspicion"].notna()
        if scored.any():
            fig.add_traces(_trace(points[scored], "suspicion",
                                  points.loc[scored, "suspicion"].to_numpy()))
            lo, hi = points.loc[scored, "suspicion"].min(), points.loc[scored, "suspicion"].max()
            for i, trace in enumerate(fig.data):
                trace.marker.update(colorscale="Reds", showscale=i == 0, cmin=lo, cmax=hi,
                                    colorbar={"title": "suspicion"} if i == 0 else None)
        fig.add_traces(_trace(points[~scored], "not scored", "#c7c7c7"))
    else:
        column = "cluster_name" if colour == "cluster" else colour
        if colour == "role":
            order = list(ROLES)
        elif colour == "cluster":
            order = points.sort_values("cluster")["cluster_name"].dropna().unique().tolist()
        else:
            order = sorted(points[column].dropna().unique(), key=str)
        for i, value in enumerate(order):
            group = points[points[column].eq(value)]
            if len(group):
                fig.add_traces(_trace(group, str(value), COLOURS.get(str(value),
                                                                     PALETTE[i % len(PALETTE)])))
    fig.update_layout(height=650, dragmode="select", legend={"itemsizing": "constant"},
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _highlight(fig: go.Figure, points, query: str) -> None:
    """Join the query to its positives (green) and selected negatives (red) with lines."""
    focus = query_focus(store, run.run_id, query)
    at = points.set_index(["kind", "id"])[["x", "y"]]
    if ("query", query) not in at.index:
        return
    qx, qy = at.loc[("query", query)]
    missing = 0
    for ids, colour, name in ((focus.positives, "#2ca02c", "positives"),
                              (focus.negatives["doc_id"].tolist(), "#d62728", "negatives")):
        xs, ys = [], []
        for doc in ids:
            if ("document", doc) not in at.index:
                missing += 1
                continue
            x, y = at.loc[("document", doc)]
            xs += [qx, x, None]
            ys += [qy, y, None]
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines+markers", name=f"query {name}",
                                   line={"color": colour, "width": 2}, hoverinfo="skip",
                                   marker={"size": 11, "color": colour}))
    if missing:
        st.caption(f"{missing} of this query's documents are outside the sample.")


def _picked(points, selected: list[dict]) -> list[tuple[str, str]]:
    """(kind, id) of the selected points: each carries its row in ``points`` as customdata."""
    rows = [int(p["customdata"]) for p in selected
            if isinstance(p.get("customdata"), (int, float)) and 0 <= p["customdata"] < len(points)]
    chosen = points.iloc[sorted(set(rows))]
    return list(zip(chosen["kind"], chosen["id"]))


def _selection_actions(points, picked: list[tuple[str, str]], query: str | None) -> None:
    table = selection_table(store, run.run_id, points, picked)
    st.subheader(f"Selection: {len(table)} points")
    st.dataframe(table, hide_index=True, key="map_selection_table")
    pairs = selection_pairs(store, run.run_id, picked, query)
    scope = (f"paired with query {common.literal(query)}" if query else
             "where the run selected them as negatives")
    st.caption(f"{len(pairs)} candidate pairs of this run: the selected documents {scope}, and "
               "the selected queries' negatives.")
    cols = st.columns(3)
    if cols[0].button("Send to review", key="map_send_review", disabled=pairs.empty):
        st.session_state["review_focus"] = list(zip(pairs["query_id"], pairs["doc_id"]))
        st.session_state["review_focus_run"] = run.run_id
        st.session_state.pop("review_focus_audit", None)
        st.switch_page("app_pages/review.py")
    for col, label, key in ((cols[1], "hard_negative", "map_label_hard"),
                            (cols[2], "false_negative", "map_label_false")):
        if col.button(f"Label all as {label.replace('_', ' ')}", key=key, disabled=pairs.empty):
            n = label_pairs(store, run.run_id, pairs, label, common.annotator())
            st.success(f"Recorded {n} decisions as {label.replace('_', ' ')}.",
                       icon=":material/check:")


try:
    colour, n_clusters, max_points, query = _controls()
    with st.spinner("Projecting with UMAP (cached once done)..."):
        projection = _projection(common.workspace_key(), version, max_points, run.seed,
                                 version_runs(store, version))
    clusters = common.clusters(common.workspace_key(), version, n_clusters, run.seed)
    settings = (version, max_points, run.seed, n_clusters)
    annotations = store.annotation_version(run.run_id)
    points = _points(common.workspace_key(), run.run_id, annotations, settings, projection,
                     clusters)
    if projection.sampled:
        common.info(f"Showing a sample of {len(points):,} of {projection.total:,} points: every "
                    "query, positive and selected negative, plus random documents. Raise Max "
                    "points to see more.")
    fig = _figure_spec(common.workspace_key(), run.run_id, annotations, settings, colour, points)
    if query:
        fig = go.Figure(fig)
        _highlight(fig, points, query)
    event = st.plotly_chart(fig, key="map_chart", on_select="rerun",
                            selection_mode=("box", "lasso", "points"))
    picked = _picked(points, event.selection.points)
    if picked:
        _selection_actions(points, picked, query)
    else:
        st.caption("Draw a box or lasso around points to list them and act on them.")
    with st.expander("Clusters"):
        st.dataframe(clusters.sizes, hide_index=True, key="map_cluster_table")
except WorkbenchError as err:
    common.error(err)
