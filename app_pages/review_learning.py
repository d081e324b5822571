"""The Review page's learning: how the suspicion weighs its signals (and what a learned model
added), learning and forgetting on the buttons, and re-learning in the background as the
annotator decides (``core.relearning``). Not a page itself; ``app_pages/review.py`` calls it.
"""

from __future__ import annotations

import streamlit as st

from app_pages import common
from core import relearning
from core.errors import WorkbenchError
from core.false_negatives.learning import (
    MIN_PER_LABEL, RELEARN_EVERY, forget_learning, learn_from_decisions,
)
from core.false_negatives.suspicion import weights_rows
from core.store import RunInfo, Store

# Pools up to this size re-learn every RELEARN_EVERY decisions, in the background (core.relearning:
# about 10 s at a million pairs, bench/learn_at_size.py); larger ones only on the button.
AUTO_RELEARN_MAX_PAIRS = 1_000_000


def relearns(store: Store, run: RunInfo) -> bool:
    """Whether a decision may re-learn the suspicion now (the toggle; a pool small enough)."""
    return (st.session_state.get("review_relearn", True)
            and store.pool_pair_counts(run.run_id, run.dataset_id)[0] <= AUTO_RELEARN_MAX_PAIRS)


def relearned(store: Store, run: RunInfo) -> None:
    """Say once per session when a background re-learning of the run has finished. The card
    would follow it anyway (the new scoring makes the queue cache read the queue again), but the
    page around it (the learned weights) is rerun once to show the new model."""
    said = st.session_state.pop("review_relearned", None)
    if said is not None:
        if said[0] == "error":
            common.error(said[1])
        else:
            st.success(said[1], icon=":material/model_training:")
        return
    job = relearning.last_job(store, run.run_id)
    done = job is not None and not job.running
    # The last one said, per run; one finished before this session first looked is no news.
    key = f"review_relearn_seen_{run.run_id}"
    if key not in st.session_state:
        st.session_state[key] = job.number if done else 0
    if not done or st.session_state[key] == job.number:
        return
    st.session_state[key] = job.number
    if job.error:
        st.session_state["review_relearned"] = ("error", job.error)
    elif job.report is not None:
        used = job.report.false_negatives + job.report.hard_negatives
        st.session_state["review_relearned"] = (
            "success", f"Suspicion re-learned from {used:,} decisions (cross-validated ROC-AUC "
            f"{job.report.cv_auc:.2f}); the queue follows it.")
    else:
        return  # not due after all: nothing to say
    st.rerun()  # the whole page: the weights above the card show the new model


def weights(run: RunInfo) -> None:
    """How the run's cold suspicion weighs its signals, and the measurement behind each weight."""
    report = run.search.get("suspicion_weights")
    with st.expander("How suspicion weighs its signals"):
        if not report:
            st.caption("This run was mined before signal weights were measured; mine again to "
                       "see them.")
            return
        st.caption("Each signal counts by how well it ranks the labeled positives above their "
                   "own pools; signals that cannot be read on a positive get the others' mean. "
                   "These are the weights before any decision; a model learned from decisions "
                   "adds its corrections on top.")
        st.dataframe(weights_rows(report), hide_index=True, key="review_weights")
        _learned_model(run.search.get("learned_model"))


def _learned_model(model: dict | None) -> None:
    """What the run's learned model added to the cold suspicion (``LearnReport.summary``)."""
    if not model:
        return
    decisions = model["false_negatives"] + model["hard_negatives"]
    st.caption(f"The model learned from {decisions:,} decisions (cross-validated ROC-AUC "
               f"{model['cv_auc']:.2f}) adds, on the log-odds, each signal's weight per "
               "standard deviation above the decided candidates' mean"
               + ("" if model["weights"] else " (none: the corrections did not beat chance, so "
                  "only each query's effect applies)")
               + ", and each query's effect: how far its decisions departed from what the cold "
               "suspicion expected.")
    if model["weights"]:
        st.dataframe([{"signal": n, "learned weight": w} for n, w in model["weights"].items()],
                     hide_index=True, key="review_learned_weights")
    if model["query_effects"]:
        st.dataframe([{"query": q, "effect": e, "its decisions found": (
            "more false negatives than expected" if e > 0 else "fewer false negatives than "
            "expected")} for q, e in model["query_effects"].items()],
            hide_index=True, key="review_query_effects")


def learn(store: Store, run: RunInfo) -> None:
    """Fit the suspicion to the run's decisions from the page, as ``python -m core learn``."""
    since = store.decisions_since_scored(run.run_id, run.dataset_id)
    with st.expander("Learn from decisions"):
        st.caption(f"Fit the suspicion to this run's decisions (at least {MIN_PER_LABEL} false "
                   f"negatives and {MIN_PER_LABEL} hard negatives) and re-score every candidate; "
                   "the queue then follows the learned suspicion. The signals' corrections "
                   "apply only when cross-validation on the decisions beats chance.")
        st.toggle(f"Re-learn every {RELEARN_EVERY} decisions as you review", value=True,
                  key="review_relearn",
                  help=f"in the background, on runs of up to {AUTO_RELEARN_MAX_PAIRS:,} pool pairs "
                       "(about 10 seconds a million pairs; larger runs: use the button)")
        st.caption(f"{since:,} decisions since the suspicion was last scored.")
        if st.button("Learn and re-score", key="review_learn", icon=":material/model_training:"):
            relearning.wait(store, run.run_id)  # a background re-learning finishes first
            try:
                st.session_state["review_learned"] = (
                    run.run_id, learn_from_decisions(store, run.run_id).text())
            except WorkbenchError as err:
                common.error(err)
            else:
                st.rerun()  # the card and the weights above show the new suspicion
        if "learned_model" in run.search and st.button(
                "Back to the cold suspicion", key="review_forget", icon=":material/undo:",
                help="forget the learned model and put the suspicion from before any decision "
                     "back; the decisions stay (with re-learning on, the next "
                     f"{RELEARN_EVERY} decisions learn again)"):
            relearning.wait(store, run.run_id)  # or it would write its model after this
            restored = forget_learning(store, run.run_id)
            st.session_state["review_learned"] = (
                run.run_id, f"run {run.run_id}: the cold suspicion is back on {restored:,} "
                "candidates")
            st.rerun()
        learned = st.session_state.get("review_learned")
        if learned and learned[0] == run.run_id:
            st.text(learned[1])
