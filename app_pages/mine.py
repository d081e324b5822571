"""Mine: model, strategy and parameters from the registry (with the papers' presets), a run with a
progress bar per phase, the runs table, and the comparison of two runs."""

from __future__ import annotations

import warnings

import pandas as pd
import plotly.express as px
import streamlit as st

from core.errors import WorkbenchError
from core.backends import DEFAULT_BACKEND, backend_names, get_backend
from core.false_negatives.suspicion import weights_text
from core.false_negatives.teacher import TEACHER_KINDS
from core.mine import DEFAULT_POOL_DEPTH, MineRequest, mine
from core.mining import strategy_names
from core.params_form import param_specs, strategy_presets, strategy_summary
from core.runs import compare_runs, exports_quality, finished_runs, run_label, runs_frame
from app_pages import common

PHASES = ("encode queries", "encode documents", "search", "mine")
DEFAULTS = "(defaults)"

st.title("Mine")
store = common.store()
datasets = store.list_datasets()
if not datasets:
    common.info("No dataset yet: import one on the Data page.")
    st.stop()


def _param_key(strategy: str, name: str) -> str:
    return f"mine_param_{strategy}_{name}"


def _apply_preset(strategy: str) -> None:
    """Put a preset's values (others back to their defaults) into the parameter widgets."""
    preset = st.session_state.get(f"mine_preset_{strategy}")
    values = strategy_presets(strategy).get(preset, {})
    for spec in param_specs(strategy):
        value = values.get(spec.name, spec.default)
        if spec.optional:
            value = "" if value is None else str(value)
        elif spec.kind == "float":
            value = float(value)
        st.session_state[_param_key(strategy, spec.name)] = value


def _param_widgets(strategy: str) -> dict:
    """One widget per field of the strategy's Params; returns the values to pass."""
    values = {}
    specs = param_specs(strategy)
    cols = st.columns(max(1, len(specs))) if specs else []
    for col, spec in zip(cols, specs):
        key = _param_key(strategy, spec.name)
        with col:
            if spec.optional:
                st.session_state.setdefault(key, "" if spec.default is None else str(spec.default))
                raw = st.text_input(spec.name, key=key, help=spec.help + " Blank: the default.")
                if raw.strip():
                    values[spec.name] = raw.strip()
                continue
            st.session_state.setdefault(key, spec.default)
            if spec.kind == "bool":
                values[spec.name] = st.checkbox(spec.name, key=key, help=spec.help)
            elif spec.kind == "int":
                values[spec.name] = st.number_input(spec.name, step=1, key=key, help=spec.help)
            elif spec.kind == "float":
                values[spec.name] = st.number_input(spec.name, step=0.05, format="%.4f", key=key,
                                                    help=spec.help)
            else:
                values[spec.name] = st.text_input(spec.name, key=key, help=spec.help)
    if not specs:
        st.caption("This strategy has no parameters.")
    return values


def _request() -> MineRequest:
    """Everything the form says, as a MineRequest."""
    names = [d.name for d in datasets]
    dataset = st.selectbox("Dataset", names, key="mine_dataset")
    left, right = st.columns(2)
    source = left.radio("Model", ["Bundled all-MiniLM-L6-v2", "Another model"], key="mine_model",
                        horizontal=True)
    model = None
    if source == "Another model":
        model = right.text_input("Model path or Hugging Face id", key="mine_model_name",
                                 placeholder="e.g. /models/e5-small-v2 or intfloat/e5-small-v2")
        if not model.strip():
            raise WorkbenchError("give a model path or hub id, or choose the bundled model")
    backend = st.selectbox(
        "Encode backend", backend_names(), key="mine_backend",
        index=backend_names().index(DEFAULT_BACKEND),
        help="\n".join(f"- **{name}**: {get_backend(name).summary}" for name in backend_names())
        + "\n\nBuilt models are kept beside the workspace; vectors are cached per backend.")
    with st.expander("Prompts, seed, pool depth and teacher"):
        cols = st.columns(4)
        query_prompt = cols[0].text_input("Query prompt", key="mine_query_prompt",
                                          placeholder='e.g. "query: " for e5')
        doc_prompt = cols[1].text_input("Document prompt", key="mine_doc_prompt",
                                        placeholder='e.g. "passage: " for e5')
        seed = cols[2].number_input("Seed", value=0, step=1, key="mine_seed")
        depth = cols[3].number_input("Pool depth", value=DEFAULT_POOL_DEPTH, min_value=1, step=10,
                                     key="mine_pool_depth",
                                     help="candidates stored per query for margins and review")
        cols = st.columns([3, 1])
        teacher = cols[0].text_input(
            "Teacher model for suspicion (optional)", key="mine_teacher",
            help="a path or hub id of a cross-encoder or bi-encoder that scores the candidates "
                 "as one more false-negative signal; blank: none")
        teacher_kind = cols[1].selectbox("Teacher kind", TEACHER_KINDS, key="mine_teacher_kind",
                                         index=TEACHER_KINDS.index("cross-encoder"))
    strategy = st.selectbox("Strategy", strategy_names(), key="mine_strategy")
    st.caption(strategy_summary(strategy))
    cols = st.columns([2, 1])
    cols[0].selectbox("Preset", [DEFAULTS, *strategy_presets(strategy)],
                      key=f"mine_preset_{strategy}", on_change=_apply_preset, args=(strategy,))
    k = cols[1].number_input("Negatives per query", value=5, min_value=1, step=1, key="mine_k")
    params = _param_widgets(strategy)
    return MineRequest(strategy=strategy, num_negatives=int(k), params=params, dataset=dataset,
                       model=model, query_prompt=query_prompt, doc_prompt=doc_prompt,
                       seed=int(seed), pool_depth=int(depth), teacher=teacher.strip() or None,
                       teacher_kind=teacher_kind, backend=backend)


@st.cache_data(show_spinner=False, max_entries=8)
def _exports_quality(workspace: str, run_ids: tuple[int, ...], versions: tuple) -> pd.DataFrame:
    """The runs' export quality, cached until a decision or a suspicion score changes
    (``versions``): about a second per run of a million candidates."""
    return exports_quality(common.store_at(workspace), list(run_ids))


def _run(request: MineRequest) -> None:
    """Mine with one progress bar per phase; errors and ignored-parameter warnings are shown."""
    with st.status("Mining...", expanded=True) as status:
        st.text("Loading the model (the first run takes a few seconds).")
        phases = PHASES[:3] + ("teacher",) + PHASES[3:] if request.teacher else PHASES
        bars = {phase: st.progress(0.0, text=f"{phase}: waiting") for phase in phases}

        def progress(phase: str, done: int, total: int) -> None:
            bar = bars.get(phase)
            if bar is not None:
                bar.progress(done / total if total else 1.0,
                             text=f"{phase}: {done:,} / {total:,}" if total else f"{phase}: cached")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = mine(store, request, progress=progress)
        status.update(label=f"Run {run.run_id} done in {run.timings.get('total', 0):.1f} s",
                      state="complete", expanded=False)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            st.warning(common.literal(warning.message), icon=":material/warning:")
    st.success(f"Run {run.run_id}: {run.filter_counts.get('selected', 0)} negatives for "
               f"{run.n_queries} queries, {len(run.short_queries)} queries short.",
               icon=":material/check:")
    if run.search.get("strategy_choice"):
        st.caption(f"{run.strategy.capitalize()} {run.search['strategy_choice']['text']}.")
    if run.search.get("suspicion_weights"):
        st.caption("Suspicion weights: " + weights_text(run.search["suspicion_weights"]))


st.subheader("New run")
try:
    request = _request()
    if st.button("Mine", type="primary", key="mine_run", icon=":material/play_arrow:"):
        _run(request)
except WorkbenchError as err:
    common.error(err)

st.subheader("Runs")
runs = runs_frame(store)
if runs.empty:
    common.info("No run yet.")
    st.stop()
st.dataframe(runs, hide_index=True, key="mine_runs_table")

st.subheader("Compare two runs")
done = finished_runs(store)
if len(done) < 2:
    common.info("Two finished runs are needed to compare.")
    st.stop()
by_id = {r.run_id: r for r in done}
cols = st.columns(2)
run_a = cols[0].selectbox("Run A", list(by_id), index=1, key="mine_compare_a",
                          format_func=lambda i: run_label(by_id[i]))
run_b = cols[1].selectbox("Run B", list(by_id), index=0, key="mine_compare_b",
                          format_func=lambda i: run_label(by_id[i]))
try:
    comparison = compare_runs(store, run_a, run_b)
except WorkbenchError as err:
    common.error(err)
    st.stop()
left, right = st.columns([1, 2])
left.dataframe(comparison.summary, hide_index=True, key="mine_compare_summary")
right.plotly_chart(
    px.histogram(comparison.margins, x="margin", color="run", barmode="overlay", nbins=40,
                 color_discrete_sequence=["#1f77b4", "#d62728"],
                 title="Margins of the selected negatives (positive score - negative score)"),
    key="mine_compare_margins")
st.caption("Their exports now (decisions applied, each run's k): how hard the negatives are, "
           "as a share of the mean score of each query's hardest k candidates (what plain top-k "
           "takes), and how suspect.")
st.dataframe(_exports_quality(common.workspace_key(), (run_a, run_b),
                              tuple(store.annotation_version(r) for r in (run_a, run_b))),
             hide_index=True, key="mine_compare_quality")
st.dataframe(comparison.overlap, hide_index=True, key="mine_compare_overlap")
