"""The runs table and the comparison of two runs."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import WorkbenchError
from core.runs import compare_runs, exports_quality, finished_runs, run_label, runs_frame
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


def test_exports_quality_puts_runs_side_by_side(store, tmp_path):
    first = synthetic_workspace(store, tmp_path / "tiny")
    pool = first.candidates
    # the second run takes each query's two lowest-scoring candidates instead of the top two
    easy = pool.sort_values("score").groupby("query_id").head(2)
    second = add_run(store, first.dataset_id, selected=easy)
    frame = exports_quality(store, [first.run_id, second.run_id]).set_index("run")
    top, low = frame.iloc[0], frame.iloc[1]
    assert top["negatives"] == low["negatives"] == 8
    hardest = pool.sort_values("score", ascending=False).groupby("query_id").head(2)
    assert top["hardness"] == pytest.approx(hardest["score"].mean(), abs=1e-4)
    assert top["of the pool's hardest k"] == 1.0
    assert low["hardness"] == pytest.approx(easy["score"].mean(), abs=1e-4)
    assert low["of the pool's hardest k"] < 1.0


def test_compare_refuses_the_same_run_twice(store, tmp_path):
    mined = synthetic_workspace(store, tmp_path / "tiny")
    with pytest.raises(WorkbenchError, match="two different runs"):
        compare_runs(store, mined.run_id, mined.run_id)
