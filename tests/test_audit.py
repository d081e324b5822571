"""Audits: a seeded random sample of the exported negatives estimates the export's
false-negative rate, walked in its own order."""

from __future__ import annotations

import numpy as np
import pytest

from core.audit import audit_pairs, audit_report, draw_audit, wilson_interval
from core.cli import main
from core.errors import WorkbenchError
from core.export import planned_negatives
from core.review import decide
from core.review_filters import ReviewScope, scoped_queue
from tests.synthetic import synthetic_workspace


def _exported(store, run_id) -> set[tuple[str, str]]:
    planned = planned_negatives(store, run_id)
    return set(zip(planned["query_id"], planned["doc_id"]))


def test_a_draw_is_a_seeded_sample_of_the_exported_negatives(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    exported = _exported(store, mined.run_id)
    audit = draw_audit(store, mined.run_id, size=5, seed=11, created_by="ann")
    pairs = audit_pairs(store, audit.audit_id)
    assert len(pairs) == len(set(pairs)) == audit.size == 5
    assert set(pairs) <= exported
    assert (audit.exported, audit.exported_queries, audit.seed, audit.created_by) == (
        len(exported), 4, 11, "ann")
    again = draw_audit(store, mined.run_id, size=5, seed=11)
    assert audit_pairs(store, again.audit_id) == pairs  # same seed, same pairs, same order
    orders = {tuple(audit_pairs(store, draw_audit(store, mined.run_id, 5, seed).audit_id))
              for seed in range(8)}
    assert len(orders) > 1  # the order is random, not the export's
    census = draw_audit(store, mined.run_id, size=1000, seed=3)
    assert census.size == len(exported) and set(audit_pairs(store, census.audit_id)) == exported
    assert [a.audit_id for a in store.list_audits(mined.run_id)][0] == census.audit_id
    assert store.get_audit(run_id=mined.run_id).audit_id == census.audit_id
    assert census.num_negatives == 2


def test_an_audit_samples_the_export_of_the_k_asked_for(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    deeper = planned_negatives(store, mined.run_id, 3)
    audit = draw_audit(store, mined.run_id, size=1000, seed=1, num_negatives=3)
    assert (audit.num_negatives, audit.exported) == (3, len(deeper)) and len(deeper) > 8
    assert set(audit_pairs(store, audit.audit_id)) == set(zip(deeper["query_id"],
                                                              deeper["doc_id"]))
    assert "an export of 3 per query" in audit_report(store, audit.audit_id).text()
    with pytest.raises(WorkbenchError, match="at least one negative per query"):
        draw_audit(store, mined.run_id, size=5, num_negatives=0)


def test_an_audit_samples_the_export_that_leaves_out_broad_queries(store, tmp_path):
    """With max_false_negatives the audit samples what such an export takes: not the queries
    it leaves out, and its report says so."""
    from core.export import ExportOptions, build_export

    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    pool = store.run_candidates(mined.run_id)
    for doc_id in pool.loc[pool.query_id == "q1"].doc_id.head(2):
        decide(store, mined.run_id, "q1", doc_id, "false_negative", "ann")
    export = build_export(store, mined.run_id, ExportOptions("flag-embedding",
                                                             max_false_negatives=1))
    expected = {(q, d) for q, ids in zip(export["query_id"], export["neg_ids"]) for d in ids}
    audit = draw_audit(store, mined.run_id, size=1000, seed=2, max_false_negatives=1)
    assert set(audit_pairs(store, audit.audit_id)) == expected
    assert "q1" not in {q for q, _ in expected} and audit.exported_queries == 3
    assert audit.max_false_negatives == 1 == store.get_audit(audit.audit_id).max_false_negatives
    assert "leaving out queries with more than 1 marked false negative" in audit_report(
        store, audit.audit_id).text()
    plain = draw_audit(store, mined.run_id, size=1000, seed=2)
    assert plain.max_false_negatives is None and plain.exported_queries == 4
    with pytest.raises(WorkbenchError, match="max_false_negatives must be at least 0"):
        draw_audit(store, mined.run_id, size=5, max_false_negatives=-1)


def test_draw_refuses_bad_requests(store, tmp_path):
    with pytest.raises(WorkbenchError, match="at least one pair"):
        draw_audit(store, None, size=0)
    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    with pytest.raises(WorkbenchError, match="no audit 99"):
        audit_report(store, 99)
    with pytest.raises(WorkbenchError, match="no audit of run"):
        audit_report(store, run_id=mined.run_id)


def test_report_counts_decisions_in_the_audit_and_estimates_the_rate(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    audit = draw_audit(store, mined.run_id, size=1000, seed=5)  # all 8 exported negatives
    pairs = audit_pairs(store, audit.audit_id)
    empty = audit_report(store, audit.audit_id)
    assert (empty.decided, empty.undecided, empty.fn_rate) == (0, 8, None)
    assert "no estimate yet" in empty.text()
    labels = ["false_negative", "hard_negative", "hard_negative", None, "unsure",
              "hard_negative"]
    for (query_id, doc_id), label in zip(pairs, labels):
        if label:
            decide(store, mined.run_id, query_id, doc_id, label, "ann")
    report = audit_report(store, audit.audit_id)
    assert (report.hard_negatives, report.false_negatives, report.unsure) == (3, 1, 1)
    assert (report.undecided, report.skipped) == (3, 1)  # position 4 passed over
    assert report.fn_rate == pytest.approx(0.25)
    assert report.low <= 0.25 <= report.high
    assert report.fn_rate_if_unsure_false == pytest.approx(2 / 5)
    assert report.estimated_false_negatives()[0] == 2  # 0.25 x 8 exported
    text = report.text()
    assert "25.0%" in text and "passed over" in text and "unsure pair" in text
    # A decided false negative leaves the export; the audit keeps estimating the export as drawn.
    assert pairs[0] not in _exported(store, mined.run_id)
    assert audit_report(store, audit.audit_id).fn_rate == pytest.approx(0.25)


def test_wilson_interval_known_values_and_finite_population():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(3, 10, population=10) == (0.3, 0.3)  # a census is exact
    narrow = wilson_interval(5, 50, population=60)
    wide = wilson_interval(5, 50, population=None)
    assert wide[0] < narrow[0] < 0.1 < narrow[1] < wide[1]
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_interval_covers_the_true_rate_about_as_often_as_it_says():
    """400 seeded audits of 100 from an export of 2,000 negatives, 6 % of them false."""
    truth = np.zeros(2000, dtype=bool)
    truth[:120] = True
    covered = 0
    for seed in range(400):
        sample = np.random.default_rng(seed).choice(2000, size=100, replace=False)
        low, high = wilson_interval(int(truth[sample].sum()), 100, population=2000)
        covered += low <= 0.06 <= high
    assert 0.92 <= covered / 400 <= 0.99


def test_the_review_scope_walks_an_audit_in_its_own_order(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    audit = draw_audit(store, mined.run_id, size=6, seed=2)
    pairs = tuple(audit_pairs(store, audit.audit_id))
    walked = scoped_queue(store, mined.run_id, ReviewScope(pairs=pairs, in_given_order=True))
    assert list(zip(walked["query_id"], walked["doc_id"])) == list(pairs)
    decide(store, mined.run_id, *pairs[0], "hard_negative", "ann")
    walked = scoped_queue(store, mined.run_id, ReviewScope(pairs=pairs, in_given_order=True))
    assert list(zip(walked["query_id"], walked["doc_id"])) == list(pairs[1:])


def test_cli_draws_and_reports(store, tmp_path, capsys):
    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    path = str(store.path)
    assert main(["audit", "draw", "--workspace", path, "--size", "3", "--seed", "4",
                 "--annotator", "ann"]) == 0
    out = capsys.readouterr().out
    assert "drew 3 of the 8 negatives an export of 2 per query takes (seed 4)" in out
    lines = [line.split("\t") for line in out.splitlines() if line[:1].isdigit()]
    assert [line[0] for line in lines] == ["1", "2", "3"]
    decide(store, mined.run_id, lines[0][1], lines[0][2], "false_negative", "ann")
    assert main(["audit", "report", "--workspace", path, "--pairs"]) == 0
    out = capsys.readouterr().out
    assert "1 decided (0 hard negatives, 1 false negatives)" in out
    assert "estimated false-negative rate of the export as drawn: 100.0%" in out
    assert f"1\t{lines[0][1]}\t{lines[0][2]}\tfalse_negative" in out
    assert main(["audit", "report", "--workspace", path, "--audit", "42"]) == 1
    assert capsys.readouterr().err.strip() == "error: there is no audit 42"
    assert main(["audit", "draw", "--workspace", path, "--size", "0"]) == 1
    assert "at least one pair" in capsys.readouterr().err
    assert main(["audit", "draw", "--workspace", path, "--num-negatives", "3", "--size", "1"]) == 0
    assert "an export of 3 per query takes" in capsys.readouterr().out
    assert main(["audit", "draw", "--workspace", path, "--max-false-negatives", "0",
                 "--size", "1"]) == 0
    capsys.readouterr()
    assert main(["audit", "report", "--workspace", path]) == 0
    assert "leaving out queries with more than 0 marked" in capsys.readouterr().out


def test_an_export_manifest_records_the_newest_audit(store, tmp_path):
    import json

    from core.export import ExportOptions, export_run

    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    first = export_run(store, mined.run_id, tmp_path / "a.jsonl", ExportOptions(format="triplet"))
    assert json.loads(first.manifest_path.read_text())["audit"] is None
    audit = draw_audit(store, mined.run_id, size=4, seed=9)
    query_id, doc_id = audit_pairs(store, audit.audit_id)[0]
    decide(store, mined.run_id, query_id, doc_id, "hard_negative", "ann")
    second = export_run(store, mined.run_id, tmp_path / "b.jsonl", ExportOptions(format="triplet"))
    recorded = json.loads(second.manifest_path.read_text())["audit"]
    assert (recorded["audit_id"], recorded["sample_size"], recorded["exported_when_drawn"],
            recorded["num_negatives"]) == (audit.audit_id, 4, 8, 2)
    assert (recorded["decided"], recorded["false_negatives"], recorded["undecided"]) == (1, 0, 3)
    assert recorded["estimated_fn_rate"] == 0.0 and recorded["confidence"] == 0.95
    low, high = recorded["interval"]
    assert low == 0.0 < high < 1.0


def test_the_overview_shows_each_runs_newest_audit(store, tmp_path):
    from core.overview import workspace_summary

    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    column = "audited false negatives"
    assert workspace_summary(store.path).runs[column].tolist() == [""]
    draw_audit(store, mined.run_id, size=3, seed=1)
    assert workspace_summary(store.path).runs[column].tolist() == [
        "no estimate yet (0 of 3 decided)"]
    newest = draw_audit(store, mined.run_id, size=2, seed=2)
    for query_id, doc_id in audit_pairs(store, newest.audit_id):
        decide(store, mined.run_id, query_id, doc_id, "hard_negative", "ann")
    shown = workspace_summary(store.path).runs[column].iloc[0]
    assert shown.startswith("0.0% (0.0%-") and shown.endswith(", 2 decided)")


def test_a_pair_outside_the_dataset_stores_no_audit(store, tmp_path):
    import pandas as pd

    mined = synthetic_workspace(store, tmp_path / "tiny", k=2)
    pairs = pd.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["d2", "no-such-doc"]})
    with pytest.raises(WorkbenchError, match="1 of the audit's pairs are not queries and "
                                             "documents of its dataset"):
        store.create_audit(mined.run_id, 2, pairs, 1, 8, 4)
    assert store.list_audits() == []
