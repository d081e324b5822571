"""The runs table and the comparison of two runs."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import WorkbenchError
from core.runs import compare_runs, finished_runs, run_label, runs_frame
from tests.synthetic import add_run, synthetic_workspace


def test_runs_frame_flattens_timings_and_filter_counts(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    frame = runs_frame(store)
    row = frame.iloc[0]
    assert row["run"] == mined.run_id and row["strategy"] == "top_k"
    assert row["total (s)"] == 0.5 and row["selected"] == 8
    assert run_label(finished_runs(store)[0]) == f"#{mined.run_id} top_k k=2"


def test_compare_counts_shared_negatives(store, tmp_path):
    first = synthetic_workspace(store, tmp_path / "tiny")
    chosen = first.candidates[first.candidates["selected"]]
    # the second run keeps only the first negative of each query and adds its third-ranked one
    keep = chosen.groupby("query_id").head(1)
    third = first.candidates[first.candidates["rank"].eq(3)]
    second = add_run(store, first.dataset_id, selected=pd.concat([keep, third]))
    result = compare_runs(store, first.run_id, second.run_id)
    assert result.overlap["in both"].tolist() == [1, 1, 1, 1]
    assert result.overlap["jaccard"].round(3).tolist() == [0.333] * 4
    summary = dict(zip(result.summary["measure"], result.summary["value"]))
    assert summary["negatives in both"] == 4
    assert set(result.margins["run"]) == {run_label(r) for r in finished_runs(store)}


def test_compare_refuses_the_same_run_twice(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    with pytest.raises(WorkbenchError, match="two different runs"):
        compare_runs(store, mined.run_id, mined.run_id)
