"""What a user does in the app, end to end through AppTest: import, mine, review, undo, export."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.judging import queue_jsonl, queue_records
from core.review import review_head
from core.store import Store
from tests.pages.conftest import open_page, seed_workspace, write_topical


def _messages(at) -> list[str]:
    return [e.value for e in at.error]


def _metric(at, label: str) -> str:
    """The value of the metric labelled ``label`` (st.metric takes no key)."""
    return next(m.value for m in at.metric if m.label == label)


def _frame(at, column: str):
    """The first table with ``column`` (AppTest does not expose st.dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_import_a_dataset_from_the_data_folder(data_dir):
    write_topical(data_dir)
    workspace = data_dir / "workspaces" / "import.duckdb"
    at = open_page(workspace, "data")
    at.text_input(key="data_path").input("topical").run()
    assert not at.exception and not _messages(at)
    assert at.selectbox(key="data_split_choice").value == "train"
    report = _frame(at, "measure")
    assert dict(zip(report["measure"], report["value"]))["queries"] == 12
    at.button(key="data_import").click().run()
    assert not at.exception and not _messages(at)
    info = Store(workspace).get_dataset()
    assert (info.name, info.n_queries, info.n_documents) == ("topical", 12, 60)
    assert dict(zip(*_frame(at, "measure").T.values))["queries"] == 12


@pytest.mark.parametrize("typed, expected", [
    ("../outside", "contains '..'"),
    ("/etc", "outside the data folder"),
    ("not-there", "nothing found"),
])
def test_paths_outside_the_data_folder_are_one_error_sentence(data_dir, typed, expected):
    at = open_page(data_dir / "workspaces" / "paths.duckdb", "data")
    at.text_input(key="data_path").input(typed).run()
    assert not at.exception
    assert len(at.error) == 1
    assert expected.replace("'", "\\'").replace(".", "\\.") in at.error[0].value


def test_upload_a_pairs_file(data_dir):
    workspace = data_dir / "workspaces" / "upload.duckdb"
    at = open_page(workspace, "data")
    at.radio(key="data_source").set_value("Upload a file").run()
    lines = [{"anchor": f"question {i}", "positive": f"answer number {i}"} for i in range(5)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    at.file_uploader(key="data_upload").upload("my pairs.jsonl", data, "application/jsonl").run()
    assert not at.exception and not _messages(at)
    at.button(key="data_import").click().run()
    assert Store(workspace).get_dataset().n_queries == 5
    assert list((data_dir / "uploads").glob("my_pairs-*.jsonl"))


def test_mine_with_a_preset_and_see_the_run(seeded):
    at = open_page(seeded, "mine")
    at.selectbox(key="mine_strategy").set_value("rank_window").run()
    at.selectbox(key="mine_preset_rank_window").set_value("RAGatouille 10-110").run()
    assert at.number_input(key="mine_param_rank_window_hi").value == 110
    at.selectbox(key="mine_strategy").set_value("positive_aware").run()
    at.selectbox(key="mine_preset_positive_aware").set_value(
        "NV-Retriever TopK-MarginPos 0.05").run()
    assert at.text_input(key="mine_param_positive_aware_threshold").value == "0.05"
    at.number_input(key="mine_k").set_value(2).run()
    before = len(Store(seeded).list_runs())
    at.button(key="mine_run").click().run()
    assert not at.exception and not _messages(at)
    runs = Store(seeded).list_runs()
    assert len(runs) == before + 1
    newest = runs[0]
    assert (newest.strategy, newest.num_negatives, newest.params) == (
        "positive_aware", 2, {"mode": "margin", "threshold": 0.05})
    assert newest.run_id in _frame(at, "run")["run"].tolist()
    assert any(c.value.startswith("Suspicion weights: relative_score") for c in at.caption)
    assert "mean Jaccard per query" in _frame(at, "measure")["measure"].tolist()
    # the two runs' exports side by side: how hard, how suspect
    quality = _frame(at, "of the pool's hardest k")
    assert len(quality) == 2 and quality["hardness"].notna().all()


def test_mine_curated_for_a_hardness_and_see_its_threshold(seeded):
    at = open_page(seeded, "mine")
    at.selectbox(key="mine_strategy").set_value("curated").run()
    at.selectbox(key="mine_preset_curated").set_value("Curated, 90 % of top-k's hardness").run()
    assert at.text_input(key="mine_param_curated_min_relative_hardness").value == "0.9"
    at.button(key="mine_run").click().run()
    assert not at.exception and not _messages(at)
    newest = Store(seeded).list_runs()[0]
    assert newest.params["min_relative_hardness"] == 0.9
    choice = newest.search["strategy_choice"]
    assert any(c.value == f"Curated {choice['text']}." for c in at.caption)


def test_mine_with_another_encode_backend(seeded):
    at = open_page(seeded, "mine")
    assert at.selectbox(key="mine_backend").value == "torch"
    assert "openvino-int8" in at.selectbox(key="mine_backend").options
    at.selectbox(key="mine_backend").set_value("torch-bf16").run()
    at.selectbox(key="mine_strategy").set_value("top_k").run()
    at.button(key="mine_run").click().run()
    assert not at.exception and not _messages(at)
    newest = Store(seeded).list_runs()[0]
    assert newest.model.endswith("(torch-bf16)") and newest.strategy == "top_k"


def test_mine_errors_are_one_sentence(seeded):
    at = open_page(seeded, "mine")
    at.radio(key="mine_model").set_value("Another model").run()
    at.text_input(key="mine_model_name").input("/no/such/model").run()
    at.button(key="mine_run").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "could not be loaded" in at.error[0].value.replace("\\", "")


def test_review_decide_undo_and_note(data_dir):
    workspace = data_dir / "workspaces" / "review.duckdb"
    seed_workspace(workspace, data_dir)
    store = Store(workspace)
    at = open_page(workspace, "review", annotator="alice")
    at.text_input(key="review_note").input("looks relevant").run()
    at.button(key="review_false_negative").click().run()
    at.button(key="review_hard_negative").click().run()
    at.button(key="review_unsure").click().run()
    assert not at.exception and not _messages(at)
    live = store.latest_decisions()
    assert [d.label for d in live] == ["false_negative", "hard_negative", "unsure"]
    assert live[0].note == "looks relevant" and live[1].note is None
    assert {d.annotator for d in live} == {"alice"}
    at.button(key="review_undo").click().run()
    assert [d.label for d in store.latest_decisions()] == ["false_negative", "hard_negative"]
    at.toggle(key="review_show_next").set_value(True).run()  # the queue's next rows, shown
    shown = tuple(_frame(at, "would_export")[["query_id", "doc_id"]].iloc[0])
    at.button(key="review_skip").click().run()
    assert not at.exception
    assert len(store.latest_decisions()) == 2  # a skip records nothing
    queue = _frame(at, "would_export")
    assert tuple(queue[["query_id", "doc_id"]].iloc[0]) != shown


def test_review_filters_by_query_and_shows_progress(seeded):
    at = open_page(seeded, "review", annotator="bob")
    at.selectbox(key="review_query").set_value("q-music-1").run()
    assert not at.exception
    assert at.caption[1].value.replace("\\", "") == "Query q-music-1"
    assert at.metric[0].value == "0"


def test_review_shows_how_suspicion_weighs_its_signals(seeded):
    """The run's measured signal weights, as the scorer recorded them."""
    at = open_page(seeded, "review", annotator="bob")
    assert not at.exception
    weights = _frame(at, "signal").set_index("signal")
    recorded = Store(seeded).get_run().search["suspicion_weights"]
    assert set(weights.index) == set(recorded) >= {"relative_score", "positive_similarity"}
    share = weights["labeled positives outrank (share of their pool)"]
    for name, info in recorded.items():
        assert weights.loc[name, "weight"] == pytest.approx(info["weight"])
        if info["probe"] is None:
            assert pd.isna(share[name])
        else:
            assert share[name] == pytest.approx(info["probe"])
    assert share["relative_score"] > 0.5


def test_export_writes_a_file_and_its_manifest(data_dir):
    workspace = data_dir / "workspaces" / "export.duckdb"
    run_id = seed_workspace(workspace, data_dir)
    at = open_page(workspace, "export")
    preview = _frame(at, "anchor")
    at.button(key="export_write").click().run()
    assert not at.exception and not _messages(at)
    written = data_dir / "exports" / f"topical-run{run_id}-triplet.jsonl"
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(rows) == 12 * 2 * 3  # 12 queries x 2 positives x 3 negatives
    assert set(rows[0]) == {"anchor", "positive", "negative"}
    assert rows[0]["anchor"] == preview["anchor"].iloc[0]
    manifest = json.loads((written.parent / (written.name + ".manifest.json")).read_text())
    assert manifest["run_id"] == run_id and manifest["counts"]["rows"] == len(rows)
    assert at.get("download_button")
    # the preview says how hard and how suspect the negatives are, as the manifest records
    quality = manifest["quality"]
    assert _metric(at, "Hardness") == f"{quality['hardness']:.3f}"
    assert _metric(at, "Of the pool's hardest 3") == f"{quality['relative_hardness']:.0%}"
    assert _metric(at, "Above suspicion 0.65") == f"{quality['flagged']} of 36"
    # RLHN's drop-the-query treatment: one pair marked false negative, at most 0 allowed
    store = Store(workspace)
    pair = store.run_candidates(run_id).query("selected").iloc[0]
    store.record_decision(pair.query_hash, pair.doc_hash, "false_negative", "ann")
    at.checkbox(key="export_drop").check().run()
    at.number_input(key="export_drop_limit").set_value(0).run()
    counts = _frame(at, "count").set_index("count")["value"]
    assert not at.exception and counts["queries dropped for false negatives"] == 1
    assert counts["queries"] == 12 and len(_frame(at, "anchor")) == 11 * 2 * 3
    # an audit drawn here samples that export
    assert any("leaving out queries with more than 0 marked false negative" in c.value
               for c in at.caption)
    at.button(key="audit_draw").click().run()
    assert store.get_audit(run_id=run_id).max_false_negatives == 0


def test_margins_what_if_counts_react(seeded):
    at = open_page(seeded, "margins")
    assert at.metric[0].value.startswith("0 / ")
    at.toggle(key="margins_on_max_score").set_value(True).run()
    at.slider(key="margins_max_score").set_value(-1.0).run()
    assert not at.exception
    dropped, selected = at.metric[0].value.split(" / ")
    assert dropped == selected != "0"
    assert at.metric[4].value == "–"  # nothing left to refill from
    at.slider(key="margins_max_score").set_value(0.5).run()
    hardness = at.metric[4]
    assert float(hardness.value) <= 0.5 and hardness.delta.startswith("-")


def test_map_highlights_a_query(seeded):
    at = open_page(seeded, "map")
    at.selectbox(key="map_query").set_value("q-astronomy-0").run()
    at.radio(key="map_colour").set_value("role").run()
    assert not at.exception and not _messages(at)


def test_export_audit_draws_a_sample_reviews_it_in_order_and_estimates(data_dir):
    """Export page: draw an audit; Review walks its pairs in the audit's order; the estimate
    follows the decisions."""
    from core.audit import audit_pairs

    workspace = data_dir / "workspaces" / "audit.duckdb"
    run_id = seed_workspace(workspace, data_dir)
    store = Store(workspace)
    at = open_page(workspace, "export", annotator="carol")
    assert "an export of 3 per query" in " ".join(c.value for c in at.caption)
    at.number_input(key="audit_size").set_value(6).run()
    at.button(key="audit_draw").click().run()
    assert not at.exception and not _messages(at)
    audit = store.get_audit(run_id=run_id)
    assert (audit.size, audit.exported, audit.created_by) == (6, 36, "carol")
    assert _metric(at, "Decided") == "0 / 6"
    pairs = audit_pairs(store, audit.audit_id)
    at.button(key="audit_review").click().run()
    assert not at.exception
    assert any(f"audit {audit.audit_id}" in i.value for i in at.info)
    at.switch_page("app_pages/review.py")  # AppTest reruns the page it was told, not st's
    at.toggle(key="review_show_next").set_value(True).run()
    shown = _frame(at, "would_export")
    assert list(zip(shown["query_id"], shown["doc_id"])) == pairs
    at.button(key="review_false_negative").click().run()
    at.button(key="review_hard_negative").click().run()
    at.button(key="review_hard_negative").click().run()
    assert not at.exception and not _messages(at)
    assert any(c.value.startswith(f"Audit {audit.audit_id}: 3 of 6 decided; false-negative "
                                  "rate so far 33.3%") for c in at.caption)
    decided = {(d.query_id, d.doc_id): d.label for d in store.latest_decisions()}
    assert [decided.get(p) for p in pairs[:3]] == [
        "false_negative", "hard_negative", "hard_negative"]
    at.switch_page("app_pages/export.py").run()
    assert not at.exception
    assert _metric(at, "Estimated false-negative rate") == "33.3%"
    assert _metric(at, "Decided") == "3 / 6"


def test_review_learns_from_decisions_and_rescores(data_dir):
    """The Review page's Learn button: one error sentence with too few decisions; with enough,
    the run is re-scored by the learned model and the page says what it did."""
    workspace = data_dir / "workspaces" / "learn.duckdb"
    run_id = seed_workspace(workspace, data_dir)
    store = Store(workspace)
    at = open_page(workspace, "review", annotator="dana")
    at.button(key="review_learn").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "learning needs at least 20" in at.error[0].value
    pool = store.run_candidates(run_id).drop_duplicates(["query_id", "doc_id"])
    same_topic = [q.split("-")[1] == d.split("-")[0]
                  for q, d in zip(pool["query_id"], pool["doc_id"])]
    pairs = list(zip(pool["query_hash"], pool["doc_hash"]))
    wrong = [p for p, relevant in zip(pairs, same_topic) if relevant]
    right = [p for p, relevant in zip(pairs, same_topic) if not relevant][:30]
    assert len(wrong) >= 20
    for label, chosen in (("false_negative", wrong), ("hard_negative", right)):
        for query_hash, doc_hash in chosen:
            store.record_decision(query_hash, doc_hash, label, "dana")
    at.button(key="review_learn").click().run()
    assert not at.exception and not _messages(at)
    assert any("learned from" in t.value for t in at.text)
    assert (store.run_candidates(run_id)["scorer"] == "learned").all()
    # What the model added is shown beside the cold weights, as the run keeps it.
    model = store.get_run(run_id).search["learned_model"]
    assert (model["false_negatives"], model["hard_negatives"]) == (len(wrong), 30)
    decisions = len(wrong) + 30
    assert any(c.value.startswith(f"The model learned from {decisions} decisions")
               for c in at.caption)
    if model["weights"]:
        assert list(_frame(at, "learned weight")["signal"]) == list(model["weights"])
    if model["query_effects"]:
        assert list(_frame(at, "effect")["query"]) == list(model["query_effects"])
    assert model["weights"] or model["query_effects"]
    # The card's suspicion says how far learning moved it from the cold one.
    card = next(m for m in at.metric if m.label == "Suspicion")
    shown = review_head(store, run_id, 1).iloc[0]
    signals = json.loads(store.candidate_explanation(run_id, shown["query_id"],
                                                     shown["doc_id"])[2])
    assert card.value == f"{shown['suspicion']:.2f}"
    assert card.delta == f"{shown['suspicion'] - signals['cold_suspicion']:+.2f} learned"
    # ... and the learned model can be forgotten from the page
    at.button(key="review_forget").click().run()
    assert not at.exception and not _messages(at)
    assert (store.run_candidates(run_id)["scorer"] == "cold").all()
    assert any("the cold suspicion is back on" in t.value for t in at.text)
    assert not any(c.value.startswith("The model learned from") for c in at.caption)
    assert not next(m for m in at.metric if m.label == "Suspicion").delta
    assert not [b for b in at.button if b.key == "review_forget"]


def test_review_filters_the_queue_by_a_reason_kind(data_dir):
    """Review's Reason filter narrows the queue to candidates with a reason of that kind, in the
    queue's order (answered in SQL, as the whole pool read would), and a decision moves on within
    it."""
    from core.review import QueueFilters
    from core.review_filters import ReviewScope, reason_kind, scoped_queue

    workspace = data_dir / "workspaces" / "reasons.duckdb"
    run_id = seed_workspace(workspace, data_dir)
    store = Store(workspace)
    kinds = store.reason_kinds(run_id)
    sizes = {k: len(scoped_queue(store, run_id, ReviewScope(reason_kind=k))) for k in kinds}
    kind = min((k for k in kinds if sizes[k] >= 3), key=sizes.get)  # a narrowed queue
    assert sizes[kind] < len(scoped_queue(store, run_id, ReviewScope()))
    expected = scoped_queue(store, run_id, ReviewScope(reason_kind=kind))
    at = open_page(workspace, "review", annotator="gus")
    assert at.selectbox(key="review_reason").options == ["(any)", *kinds]
    at.selectbox(key="review_reason").select(kind).run()
    assert not at.exception and not _messages(at)
    assert f"{len(expected):,} in the queue" in [c.value for c in at.caption]
    at.toggle(key="review_show_next").set_value(True).run()
    shown = _frame(at, "would_export")
    assert list(zip(shown["query_id"], shown["doc_id"])) == list(
        zip(expected["query_id"], expected["doc_id"]))[:len(shown)]
    assert shown["reasons"].map(
        lambda v: kind in {reason_kind(r) for r in v.split("; ")}).all()  # readable, not JSON
    at.button(key="review_hard_negative").click().run()
    assert not at.exception
    decided = {(d.query_id, d.doc_id): d.label for d in store.latest_decisions()}
    first = (expected["query_id"].iloc[0], expected["doc_id"].iloc[0])
    assert decided == {first: "hard_negative"}
    assert f"{len(expected) - 1:,} in the queue" in [c.value for c in at.caption]
    # the next decisions stay within the kind's queue (now served from the page's cache)
    for label in ("false_negative", "unsure"):
        fresh = scoped_queue(store, run_id, ReviewScope(reason_kind=kind))
        at.button(key=f"review_{label}").click().run()
        assert not at.exception
        decided = {(d.query_id, d.doc_id): d.label for d in store.latest_decisions()}
        assert decided[(fresh["query_id"].iloc[0], fresh["doc_id"].iloc[0])] == label
    fresh = scoped_queue(store, run_id, ReviewScope(reason_kind=kind))
    assert f"{len(fresh):,} in the queue" in [c.value for c in at.caption]
    shown = _frame(at, "would_export")
    assert list(zip(shown["query_id"], shown["doc_id"])) == list(
        zip(fresh["query_id"], fresh["doc_id"]))[:len(shown)]
    # reviewed pairs too: the three decided ones come back, with their decisions
    at.toggle(key="review_unreviewed").set_value(False).run()
    assert not at.exception and not _messages(at)
    every = scoped_queue(store, run_id, ReviewScope(QueueFilters(unreviewed_only=False),
                                                    reason_kind=kind))
    assert f"{len(every):,} in the queue" in [c.value for c in at.caption]
    assert len(every) == len(fresh) + 3
    shown = _frame(at, "would_export")
    assert list(zip(shown["query_id"], shown["doc_id"])) == list(
        zip(every["query_id"], every["doc_id"]))[:len(shown)]


def test_review_imports_a_judged_queue_file(data_dir):
    """Review's "Judge outside the app": a judged queue file comes back as decisions (lines
    without an annotator under the page's, lines without a label skipped) and the card and
    progress follow; a bad file is one error sentence naming the file, line and field, and writes
    nothing. (The download itself runs in the browser test: AppTest cannot click it.)"""
    workspace = data_dir / "workspaces" / "judge.duckdb"
    run_id = seed_workspace(workspace, data_dir)
    store = Store(workspace)
    lines = queue_records(store, run_id, review_head(store, run_id, 4))
    lines[0]["label"] = "relevant"
    at = open_page(workspace, "review", annotator="erin")
    upload = at.file_uploader(key="review_judge_upload")
    upload.upload("judged.jsonl", queue_jsonl(lines), "application/jsonl").run()
    at.button(key="review_judge_import").click().run()
    assert not at.exception
    assert len(at.error) == 1
    assert "judged.jsonl line 1: field 'label' is 'relevant'" in at.error[0].value.replace("\\", "")
    assert store.decision_records().empty
    lines[0]["label"], lines[1]["label"] = "false_negative", "hard_negative"
    upload = at.file_uploader(key="review_judge_upload").clear()
    upload.upload("judged.jsonl", queue_jsonl(lines), "application/jsonl").run()
    at.button(key="review_judge_import").click().run()
    assert not at.exception and not _messages(at)
    assert [m.value.replace("\\", "") for m in at.success] == [
        "Read 2 decisions from judged.jsonl (2 lines without a label skipped): 2 added, 0 already "
        "present, 0 retractions applied."]
    assert sorted((d.query_id, d.doc_id, d.label, d.annotator)
                  for d in store.latest_decisions()) == sorted(
        (x["query_id"], x["doc_id"], x["label"], "erin") for x in lines[:2])
    assert _metric(at, "You decided") == "2"
    pairs = store.pool_pair_counts(run_id, store.get_run(run_id).dataset_id)[0]
    assert _metric(at, "Everyone, of the pool's pairs") == f"2 / {pairs:,}"


def test_review_relearns_every_fifty_decisions_unless_turned_off(data_dir):
    """A decision that brings the run to RELEARN_EVERY decisions since its last scoring (with
    each label's minimum) re-learns the suspicion in the background, says it started, and once
    done the page says what it learned; with the toggle off it does not."""
    from core import relearning
    from core.false_negatives.learning import RELEARN_EVERY

    workspace = data_dir / "workspaces" / "relearn.duckdb"
    run_id = seed_workspace(workspace, data_dir)
    store = Store(workspace)
    pool = store.run_candidates(run_id).drop_duplicates(["query_id", "doc_id"])
    same_topic = [q.split("-")[1] == d.split("-")[0]
                  for q, d in zip(pool["query_id"], pool["doc_id"])]
    pairs = list(zip(pool["query_hash"], pool["doc_hash"], same_topic))
    wrong = [p for p in pairs if p[2]][:25]
    right = [p for p in pairs if not p[2]][:RELEARN_EVERY - 1 - len(wrong)]
    for query_hash, doc_hash, relevant in [*wrong, *right]:
        store.record_decision(query_hash, doc_hash,
                              "false_negative" if relevant else "hard_negative", "gus")
    at = open_page(workspace, "review", annotator="gus")
    at.toggle(key="review_relearn").set_value(False).run()
    at.button(key="review_hard_negative").click().run()  # the 49th + 1, but turned off
    assert not at.exception and not _messages(at)
    assert relearning.last_job(store, run_id) is None
    assert (store.run_candidates(run_id)["scorer"] == "cold").all()
    at.button(key="review_undo").click().run()
    at.toggle(key="review_relearn").set_value(True).run()
    at.button(key="review_hard_negative").click().run()
    assert not at.exception and not _messages(at)
    assert any("re-learning the suspicion from the decisions meanwhile"
               in m.value.replace("\\", "") for m in at.success)
    relearning.wait(store, run_id, timeout=120)
    job = relearning.last_job(store, run_id)
    assert job is not None and not job.running and job.error is None
    assert (store.run_candidates(run_id)["scorer"] == "learned").all()
    assert not any(c.value.startswith("The model learned from") for c in at.caption)
    at.run()  # the next render says it, once, and the page shows the new model's weights
    assert not at.exception and not _messages(at)
    said = [m.value for m in at.success if "Suspicion re-learned from" in m.value]
    assert len(said) == 1 and f"from {RELEARN_EVERY} decisions" in said[0]
    assert any(c.value.startswith(f"The model learned from {RELEARN_EVERY} decisions")
               for c in at.caption)
    at.run()
    assert not [m for m in at.success if "Suspicion re-learned from" in m.value]


def test_export_audit_refuses_an_export_it_would_not_sample(seeded):
    """The audit samples the export with decisions applied: with Apply decisions off, or an
    export of reviewed negatives only (nothing undecided to estimate), the page says so and the
    draw button is off."""
    at = open_page(seeded, "export", annotator="hal")
    assert not at.button(key="audit_draw").disabled
    at.checkbox(key="export_apply").uncheck().run()
    assert not at.exception and at.button(key="audit_draw").disabled
    assert any("tick Apply decisions" in i.value for i in at.info)
    at.checkbox(key="export_apply").check().run()
    at.checkbox(key="export_only_reviewed").check().run()
    assert not at.exception and at.button(key="audit_draw").disabled
    assert any("nothing to estimate" in i.value for i in at.info)
