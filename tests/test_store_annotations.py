"""The store's per-annotator decisions and the version token that keys the pages' caches."""

from __future__ import annotations

from tests.synthetic import synthetic_workspace


def test_annotator_decisions_keep_each_annotators_latest_live_label(store, tmp_path):
    synthetic_workspace(store, tmp_path / "tiny")
    store.record_decision("hq", "hd", "hard_negative", "alice")
    store.record_decision("hq", "hd", "false_negative", "alice")
    store.record_decision("hq", "hd", "unsure", "bob")
    store.record_decision("hq", "hd2", "unsure", "bob")
    store.retract_last_decision("bob")
    frame = store.annotator_decisions()
    assert sorted(zip(frame["annotator"], frame["doc_hash"], frame["label"])) == [
        ("alice", "hd", "false_negative"), ("bob", "hd", "unsure")]


def test_annotation_version_changes_with_decisions_and_retractions(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    first = store.annotation_version(mined.run_id)
    store.record_decision("hq", "hd", "hard_negative", "alice")
    second = store.annotation_version(mined.run_id)
    store.retract_last_decision("alice")
    third = store.annotation_version(mined.run_id)
    assert len({first, second, third}) == 3
