"""Review: core's queue with filters; a card per candidate with shortcut-driven decisions, undo
and a note; progress per annotator and agreement between annotators. Its learning sections
(signal weights, learning, background re-learning) are ``app_pages/review_learning.py``."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core import relearning
from core.annotation import agreement, current_progress
from core.audit import audit_report
from core.clusters import default_cluster_count
from core.decisions import import_decisions, import_summary
from core.errors import WorkbenchError
from core.highlight import shared_terms, text_block
from core.judging import queue_jsonl, queue_records
from core.projection import embedding_version
from core.review import QueueFilters, review_card
from core.review_filters import ReviewScope, queue_head, queue_reason_kinds, queue_table
from core.review_prefetch import cached_head, record_decision
from app_pages import common, review_learning

ACTIONS = (("Hard negative", "hard_negative", "H", "primary"),
           ("False negative", "false_negative", "F", "secondary"),
           ("Unsure", "unsure", "U", "secondary"))
ANY = "(any)"

st.title("Review")
store = common.store()
annotator = common.annotator()
if not annotator:
    common.error("Log in (sidebar) before reviewing." if common.login_identity() == "" else
                 "Enter your name in the sidebar (Annotator) before reviewing.")
    st.stop()
run = common.pick_run(store, "review_run")
st.session_state.setdefault("review_skipped", set())


def _cluster_queries() -> dict[str, tuple[str, ...]]:
    """Cluster name -> its queries, from the clusters the Map page shows by default."""
    dataset = store.get_dataset(dataset_id=run.dataset_id)
    found = common.clusters(common.workspace_key(), embedding_version(run),
                            default_cluster_count(dataset.n_documents), run.seed)
    queries = found.assignments[found.assignments["kind"].eq("query")]
    return {name: tuple(group["id"]) for name, group in queries.groupby("cluster_name")}


def _scope() -> ReviewScope:
    """The filters, a map selection sent here, and this session's skips."""
    cols = st.columns([1, 1, 1, 1, 1])
    unreviewed = cols[0].toggle("Unreviewed only", value=True, key="review_unreviewed")
    queries = store.run_query_ids(run.run_id)
    query = cols[4].selectbox("Query", [ANY, *queries], key="review_query")
    try:
        clusters = _cluster_queries()
    except WorkbenchError:
        clusters = {}
    cluster = cols[1].selectbox("Cluster", [ANY, *clusters], key="review_cluster")
    reasons = queue_reason_kinds(store, run.run_id)
    reason = cols[2].selectbox("Reason", [ANY, *reasons], key="review_reason",
                               disabled=not reasons,
                               help=None if reasons else "this run has no suspicion scores yet")
    annotators = sorted(store.annotator_decisions()["annotator"].unique())
    decided_by = cols[3].selectbox("Decided by", [ANY, *annotators], key="review_decided_by",
                                   help="show pairs this annotator decided (reviewed included)")
    pairs = None
    focus = st.session_state.get("review_focus")
    audit = st.session_state.get("review_focus_audit")
    if focus and st.session_state.get("review_focus_run") == run.run_id:
        left, right = st.columns([3, 1])
        left.info(f"Showing the {len(focus)} pairs of audit {audit} in its random order: "
                  "decide them in turn (a skipped pair may lean the estimate)." if audit else
                  f"Showing the {len(focus)} pairs sent from the map.", icon=":material/info:")
        if right.button("Show the whole queue", key="review_clear_focus"):
            st.session_state.pop("review_focus", None)
            st.session_state.pop("review_focus_audit", None)
            st.rerun()
        pairs = tuple(map(tuple, focus))
    filters = QueueFilters(
        unreviewed_only=unreviewed, decided_by=None if decided_by == ANY else decided_by,
        query_id=None if query == ANY else query,
        query_ids=None if cluster == ANY else clusters[cluster])
    return ReviewScope(filters, pairs, frozenset(st.session_state["review_skipped"]),
                       None if reason == ANY else reason,
                       in_given_order=pairs is not None and audit is not None)


def _decide(query_id: str, doc_id: str, label: str) -> None:
    """Button callback: record the decision (the queue and progress kept in this session advance
    past it), clear the note, say what happened."""
    try:
        recorded = record_decision(
            store, run.run_id, query_id, doc_id, label, annotator,
            st.session_state.get("review_note") or None,
            st.session_state.get("review_queue_cache"), st.session_state.get("review_progress"))
        st.session_state["review_queue_cache"] = recorded.queue
        st.session_state["review_progress"] = recorded.progress
        text = f"{query_id} / {doc_id}: {label.replace('_', ' ')}"
        if (review_learning.relearns(store, run)
                and relearning.relearn_in_background(store, run.run_id) is not None):
            text += "; re-learning the suspicion from the decisions meanwhile"
        st.session_state["review_message"] = ("success", text)
    except WorkbenchError as err:
        st.session_state["review_message"] = ("error", str(err))
    st.session_state["review_note"] = ""


def _skip(query_id: str, doc_id: str) -> None:
    st.session_state["review_skipped"].add((query_id, doc_id))
    st.session_state["review_message"] = ("info", f"{query_id} / {doc_id}: skipped")


def _undo() -> None:
    undone = store.retract_last_decision(annotator)
    st.session_state["review_message"] = (
        ("info", f"Undid {undone.label.replace('_', ' ')} on {undone.query_id} / {undone.doc_id}")
        if undone else ("info", "Nothing to undo: you have no live decision."))


def _current_progress():
    """The run's progress, counted again only when decisions changed other than by this
    session's decisions (which advance it, see ``_decide``)."""
    progress = current_progress(store, run.run_id, st.session_state.get("review_progress"))
    st.session_state["review_progress"] = progress
    return progress


def _progress() -> None:
    progress = _current_progress()
    table = progress.table.set_index("annotator")
    mine = int(table["decided"].get(annotator, 0))
    overall = int(table.loc["overall", "decided"])
    cols = st.columns(3)
    cols[0].metric("You decided", f"{mine:,}")
    cols[1].metric("Everyone, of the pool's pairs", f"{overall:,} / {progress.pool_pairs:,}",
                   help="decided pairs (by anyone) of all the run's candidate pairs")
    cols[2].metric("Selected negatives reviewed",
                   f"{int(table.loc['overall', 'of selected']):,} / {progress.selected_pairs:,}")
    st.progress(min(1.0, overall / progress.pool_pairs) if progress.pool_pairs else 0.0)


def _texts(card) -> None:
    st.caption("Query " + common.literal(card.query_id))
    st.html(text_block(card.query_text, shared_terms(card.query_text, card.doc_text)))
    left, right = st.columns(2)
    with left:
        st.caption(f"Labeled positive{'s' if len(card.positives) != 1 else ''}")
        for doc_id, text in card.positives:
            with st.container(border=True):
                st.text(doc_id)
                st.html(text_block(text, shared_terms(card.query_text, text)))
    with right:
        st.caption("Candidate")
        with st.container(border=True):
            st.text(card.doc_id)
            st.html(text_block(card.doc_text, shared_terms(card.query_text, card.doc_text)))


def _facts(card, row) -> None:
    cols = st.columns(6)
    cols[0].metric("Score", f"{card.score:.3f}")
    cols[1].metric("Positive score", f"{card.pos_score:.3f}")
    cols[2].metric("Margin", f"{card.margin:+.3f}")
    cols[3].metric("Rank", "given" if card.rank is None else card.rank)
    learned = card.suspicion is not None and card.cold_suspicion is not None
    cols[4].metric("Suspicion", "–" if card.suspicion is None else f"{card.suspicion:.2f}",
                   delta=f"{card.suspicion - card.cold_suspicion:+.2f} learned" if learned
                   else None, delta_color="off",
                   help="not scored yet" if card.suspicion is None else (
                       f"learned from decisions; {card.cold_suspicion:.2f} before (cold)"
                       if learned else None))
    cols[5].metric("Would export", "yes" if card.would_export else "no",
                   help="whether a default export of this run takes this pair now; reviewed "
                        "hard negatives come first, so a pair held back (for its suspicion, or "
                        "below the k hardest) is exported once marked hard negative (k per "
                        "query at most)")
    if card.reasons:
        st.caption("Why it may be a false negative")
        st.text("\n".join(f"- {r}" for r in card.reasons))
    if card.decision:
        st.text(f"Current decision: {card.decision.replace('_', ' ')} by {row['decided_by']}")


def _buttons(card) -> None:
    st.text_input("Note (saved with the decision)", key="review_note")
    cols = st.columns(len(ACTIONS) + 2)
    for col, (label, value, shortcut, kind) in zip(cols, ACTIONS):
        col.button(label, key=f"review_{value}", shortcut=shortcut, type=kind,
                   on_click=_decide, args=(card.query_id, card.doc_id, value),
                   width="stretch")
    cols[-2].button("Skip", key="review_skip", shortcut="S", on_click=_skip,
                    args=(card.query_id, card.doc_id), width="stretch")
    cols[-1].button("Undo", key="review_undo", shortcut="Z", on_click=_undo,
                    icon=":material/undo:", width="stretch")


def _audit_progress(audit_id: int | None) -> None:
    """The audit being walked: how far it is, and the estimate so far."""
    if audit_id is None:
        return
    report = audit_report(store, audit_id)
    done = report.decided + report.unsure
    estimate = ("no estimate yet" if report.fn_rate is None else
                f"false-negative rate so far {report.fn_rate:.1%} (95 % interval "
                f"{report.low:.1%} to {report.high:.1%})")
    st.caption(f"Audit {audit_id}: {done:,} of {report.audit.size:,} decided; {estimate}.")


@st.fragment
def review_card_fragment(scope: ReviewScope) -> None:
    """The card: a decision reruns only this fragment."""
    message = st.session_state.pop("review_message", None)
    if message:
        kind, text = message
        {"success": st.success, "error": st.error, "info": st.info}[kind](common.literal(text))
    review_learning.relearned(store, run)
    _progress()
    if scope.in_given_order:
        _audit_progress(st.session_state.get("review_focus_audit"))
    scope = replace(scope, skipped=frozenset(st.session_state["review_skipped"]))
    # The queue's head is read a few dozen rows at a time and kept in the session (see
    # core.review_prefetch): a decision usually reads only its own query's rows again.
    show_next = st.session_state.get("review_show_next", False)
    head, st.session_state["review_queue_cache"] = cached_head(
        store, run.run_id, scope, st.session_state.get("review_queue_cache"),
        limit=20 if show_next else 1)
    if head.rows.empty:
        common.info("Nothing left to review with these filters.")
        st.button("Undo", key="review_undo", shortcut="Z", on_click=_undo, icon=":material/undo:")
        return
    row = head.rows.iloc[0]
    card = review_card(store, run.run_id, row)
    st.caption(f"{head.total:,} in the queue")
    _texts(card)
    _facts(card, row)
    _buttons(card)
    if st.toggle("Show the next in the queue", key="review_show_next"):
        st.dataframe(queue_table(head.rows, 20), hide_index=True, key="review_queue_table")


def _judge_elsewhere(scope: ReviewScope) -> None:
    """Download the queue's next candidates for a judge outside the app; upload the judged file
    (or any decisions file) back (``core.judging``, ``core.decisions``)."""
    with st.expander("Judge outside the app"):
        st.caption("Download the next candidates of this queue (with the filters above) and their "
                   "texts as JSONL for another tool, a vendor or an LLM judge (as RLHN does). "
                   "Fill each line's label (hard_negative, false_negative or unsure) and upload "
                   "the file: lines without a label are skipped, lines without an annotator are "
                   "recorded under your name. A file from `decisions export` imports the same "
                   "way, so other annotators' work merges here (when you are signed in, only "
                   "your own).")
        cols = st.columns([1, 1, 2], vertical_alignment="bottom")
        size = int(cols[0].number_input("Candidates", min_value=1, max_value=10_000, value=100,
                                        step=50, key="review_judge_size"))

        def data() -> bytes:  # read on the click, not on every rerun of the page
            rows = queue_head(store, run.run_id, scope, size).rows
            return queue_jsonl(queue_records(store, run.run_id, rows))

        cols[1].download_button("Download", data, file_name=f"queue-run{run.run_id}.jsonl",
                                mime="application/jsonl", key="review_judge_download",
                                icon=":material/download:", on_click="ignore")
        upload = st.file_uploader("Judged file (.jsonl)", type=["jsonl"], key="review_judge_upload")
        if upload is not None and st.button("Import decisions", key="review_judge_import",
                                            icon=":material/upload:"):
            try:
                # Signed in, an upload carries only your own decisions: nobody decides under
                # another's name (other annotators' files merge on the command line).
                only = annotator if common.login_identity() is not None else None
                with common.uploaded_file(upload) as path:
                    merged = import_decisions(store, path, annotator, only)
            except WorkbenchError as err:  # nothing was written
                common.error(err)
                return
            st.session_state["review_queue_cache"] = None  # the queue changed under the session
            summary = import_summary(merged)
            st.session_state["review_judge_message"] = summary[0].upper() + summary[1:] + "."
            st.rerun()  # the card and the progress above show the imported decisions
        message = st.session_state.pop("review_judge_message", None)
        if message:
            st.success(common.literal(message), icon=":material/check:")


try:
    scope = _scope()
    review_card_fragment(scope)
    review_learning.weights(run)
    review_learning.learn(store, run)
    _judge_elsewhere(scope)
    with st.expander("Agreement between annotators"):
        report = agreement(store)
        if report.pairs.empty:
            st.caption("No pair has been labeled by two annotators yet.")
        else:
            st.dataframe(report.pairs, hide_index=True, key="review_agreement")
            st.dataframe(report.disagreements, hide_index=True, key="review_disagreements")
        st.dataframe(_current_progress().table, hide_index=True,
                     key="review_progress_table")
except WorkbenchError as err:
    common.error(err)
