"""Re-learning in the background (core.relearning): started when due, one at a time per run,
failures reported, and decisions recorded while a model is fit count towards the next one."""

from __future__ import annotations

import threading

import pytest

from core import relearning
from core.errors import WorkbenchError
from core.false_negatives.learning import learn_from_decisions
from tests.test_false_negatives import _open_copy, _same_topic, topical_ws  # noqa: F401


def _decide(store, run_id, false_negatives=25, hard_negatives=25):
    """Record decisions on the run's candidates (topical truth), in a fixed order."""
    pool = store.run_candidates(run_id).reset_index(drop=True)
    truth = _same_topic(pool)
    for frame, n, label in ((pool[truth], false_negatives, "false_negative"),
                            (pool[~truth], hard_negatives, "hard_negative")):
        for q, d in zip(frame.query_hash[:n], frame.doc_hash[:n]):
            store.record_decision(q, d, label, "bot")
    return pool


def test_a_due_run_relearns_in_a_thread_and_only_when_due(topical_ws, tmp_path):  # noqa: F811
    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        _decide(store, run_id, 20, 20)
        assert relearning.relearn_in_background(store, run_id, every=50) is None  # 40 < 50
        assert relearning.last_job(store, run_id) is None
        _decide(store, run_id, 25, 25)  # the 40 again and 10 more: 90 decisions
        job = relearning.relearn_in_background(store, run_id, every=50)
        assert job is not None and job.run_id == run_id
        relearning.wait(store, run_id, timeout=120)
        assert not job.running and job.error is None and not relearning.running(store, run_id)
        assert (job.report.false_negatives, job.report.hard_negatives) == (25, 25)
        assert (store.run_candidates(run_id).scorer == "learned").all()
        assert relearning.relearn_in_background(store, run_id, every=50) is None  # not due again
        assert relearning.last_job(store, run_id) is job


def test_one_relearning_at_a_time_per_run(topical_ws, tmp_path, monkeypatch):  # noqa: F811
    """A decision while the run is being re-learned starts nothing (the running one reads the
    decisions anyway, or the next one will); once it is done, the next due one starts."""
    path, run_id = topical_ws
    release, started = threading.Event(), threading.Event()
    real = relearning.relearn_if_due

    def slow(store, run, every):
        started.set()
        assert release.wait(60)
        return real(store, run, every)

    monkeypatch.setattr(relearning, "relearn_if_due", slow)
    with _open_copy(path, tmp_path) as store:
        _decide(store, run_id)
        first = relearning.relearn_in_background(store, run_id, every=50)
        assert first is not None and started.wait(60)
        assert relearning.running(store, run_id)
        assert relearning.relearn_in_background(store, run_id, every=50) is None
        release.set()
        relearning.wait(store, run_id, timeout=120)
        assert first.report is not None and not relearning.running(store, run_id)


@pytest.mark.parametrize("failure", [WorkbenchError("run 1 has no suspicion for 3 pairs"),
                                     MemoryError("out of memory")])
def test_a_failed_relearning_says_why(topical_ws, tmp_path, monkeypatch, failure):  # noqa: F811
    """A failure in the thread is kept as one sentence for the page, and the scores stay."""
    path, run_id = topical_ws

    def fail(store, run, every):
        raise failure

    monkeypatch.setattr(relearning, "relearn_if_due", fail)
    with _open_copy(path, tmp_path) as store:
        _decide(store, run_id)
        job = relearning.relearn_in_background(store, run_id, every=50)
        relearning.wait(store, run_id, timeout=60)
        assert job.report is None
        assert job.error == (str(failure) if isinstance(failure, WorkbenchError) else
                             f"re-learning run {run_id} failed (MemoryError: out of memory)")
        assert (store.run_candidates(run_id).scorer == "cold").all()


def test_decisions_recorded_while_a_model_is_fit_count_towards_the_next(topical_ws,
                                                                       tmp_path):  # noqa: F811
    """The learned scores are dated when learning read the decisions: one recorded after that
    read (here, right after it) is not in the model and still counts as new."""
    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        pool = _decide(store, run_id)
        late = pool[~_same_topic(pool)].iloc[-1]
        read = store.scored_pool

        def read_then_decide(*args, **kwargs):
            table = read(*args, **kwargs)
            store.record_decision(late.query_hash, late.doc_hash, "hard_negative", "other")
            return table

        store.scored_pool = read_then_decide
        report = learn_from_decisions(store, run_id)
        assert report.hard_negatives == 25  # the late decision was not read
        assert store.decisions_since_scored(run_id, store.get_run(run_id).dataset_id) == 1


def test_a_scoring_that_lands_while_the_model_is_prepared_is_kept(topical_ws,
                                                                   tmp_path):  # noqa: F811
    """The learned texts are built before the write transaction (writers wait only for the
    write); a scoring written in between is not overwritten: learning refuses, writing nothing."""
    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        _decide(store, run_id)
        build = store._learned_rows

        def build_then_rescore(*args, **kwargs):
            rows = build(*args, **kwargs)
            pool = store.run_candidates(run_id)
            store.put_suspicion(run_id, pool[["query_id", "doc_id", "reasons", "signals"]].assign(
                suspicion=0.5), "elsewhere")
            return rows

        store._learned_rows = build_then_rescore
        with pytest.raises(WorkbenchError, match="scored again while its learned suspicion"):
            learn_from_decisions(store, run_id)
        after = store.run_candidates(run_id)
        assert (after.scorer == "elsewhere").all() and (after.suspicion == 0.5).all()
        assert "learned_model" not in store.get_run(run_id).search
