"""Tests for core/export.py: negative choice with decisions, every format x file type, atomicity."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import export
from core.errors import WorkbenchError
from core.export import ExportOptions, build_export, export_run
from core.store import DatasetContent, Store
from core.text import text_hash

QUERIES = {
    "q1": "capital of France",
    "q2": "capital of Germany",
    "q3": "a query without positives",
}
DOCS = {
    "d1": "Paris is the capital of France.",
    "d2": "Paris — la capitale de la France, « Ville Lumière ».",
    "d3": "Lyon is a large city in France.",
    "d4": "Marseille is a port city in France.",
    "d5": "Berlin is the capital of Germany.",
    "d6": "Munich is the capital of Bavaria.",
    "d7": "Zürich is the largest city of Switzerland.",
    "d8": "Hamburg is a port city.",
    "d9": "Unrelated text.",
}
POSITIVES = [("q1", "d1"), ("q1", "d2"), ("q2", "d5")]
POS_SCORE = {"q1": 0.9375, "q2": 0.875, "q3": 0.5}
# query, doc, rank, score, eligible, selected -- scores are exact in float32.
CANDIDATES = [
    ("q1", "d3", 1, 0.875, True, True),
    ("q1", "d4", 2, 0.75, True, True),
    ("q1", "d6", 3, 0.625, True, False),
    ("q1", "d7", 4, 0.5, False, False),
    ("q2", "d6", 1, 0.8125, True, True),
    ("q2", "d8", 2, 0.6875, False, False),
    ("q3", "d9", 1, 0.25, True, True),  # q3 has no positive: never exported
]
Q, D = QUERIES, DOCS


def candidate_frame(rows=CANDIDATES) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["query_id", "doc_id", "rank", "score", "eligible",
                                        "selected"])
    frame["rank"] = frame["rank"].astype("Int64")
    frame["pos_score"] = frame["query_id"].map(POS_SCORE)
    frame["lexical_score"] = None
    frame["source"] = "search"
    return frame


def add_dataset(store: Store) -> int:
    queries = pd.DataFrame({"query_id": list(QUERIES), "text": list(QUERIES.values())})
    queries["text_hash"] = queries["text"].map(text_hash)
    documents = pd.DataFrame({"doc_id": list(DOCS), "title": "", "text": list(DOCS.values())})
    documents["text_hash"] = documents["text"].map(text_hash)
    positives = pd.DataFrame(POSITIVES, columns=["query_id", "doc_id"]).assign(grade=1,
                                                                                source="qrels")
    given = pd.DataFrame({"query_id": [], "doc_id": [], "source": []}, dtype=str)
    content = DatasetContent("tiny", "beir", "/tmp/tiny", "train", queries, documents, positives,
                             given)
    return store.add_dataset(content).dataset_id


def add_run(store: Store, dataset_id: int, rows=CANDIDATES, prompt: str = "",
            finish: bool = True) -> int:
    run_id = store.create_run(dataset_id, "top_k", {"k": 2}, "tiny-model", "fp", prompt, "", 7,
                              2, 10)
    if finish:
        store.finish_run(run_id, candidate_frame(rows), {}, {}, 2, [])
    return run_id


@pytest.fixture
def mined(store: Store) -> tuple[Store, int]:
    """A store with the tiny dataset and one finished run (num_negatives=2)."""
    return store, add_run(store, add_dataset(store))


def decide(store: Store, query_id: str, doc_id: str, label: str) -> None:
    store.record_decision(text_hash(Q[query_id]), text_hash(D[doc_id]), label, "tester")


def chosen(store: Store, run_id: int | None, **options) -> dict[str, tuple[list, list]]:
    """query_id -> (positive ids, negative ids), via the flag-embedding rows."""
    frame = build_export(store, run_id, ExportOptions("flag-embedding", **options))
    return {r.query_id: (r.pos_ids, r.neg_ids) for r in frame.itertuples()}


# Expected rows of the mined run with default options: q1 negatives d3, d4; q2 only d6.
EXPECTED = {
    "triplet": [
        {"anchor": Q["q1"], "positive": D["d1"], "negative": D["d3"]},
        {"anchor": Q["q1"], "positive": D["d1"], "negative": D["d4"]},
        {"anchor": Q["q1"], "positive": D["d2"], "negative": D["d3"]},
        {"anchor": Q["q1"], "positive": D["d2"], "negative": D["d4"]},
        {"anchor": Q["q2"], "positive": D["d5"], "negative": D["d6"]},
    ],
    "n-tuple": [
        {"anchor": Q["q1"], "positive": D["d1"], "negative_1": D["d3"], "negative_2": D["d4"]},
        {"anchor": Q["q1"], "positive": D["d2"], "negative_1": D["d3"], "negative_2": D["d4"]},
    ],
    "labeled-pair": [
        {"anchor": Q["q1"], "positive": D["d1"], "label": 1},
        {"anchor": Q["q1"], "positive": D["d2"], "label": 1},
        {"anchor": Q["q1"], "positive": D["d3"], "label": 0},
        {"anchor": Q["q1"], "positive": D["d4"], "label": 0},
        {"anchor": Q["q2"], "positive": D["d5"], "label": 1},
        {"anchor": Q["q2"], "positive": D["d6"], "label": 0},
    ],
    "labeled-list": [
        {"anchor": Q["q1"], "positive": [D["d1"], D["d2"], D["d3"], D["d4"]],
         "labels": [1, 1, 0, 0]},
        {"anchor": Q["q2"], "positive": [D["d5"], D["d6"]], "labels": [1, 0]},
    ],
    "flag-embedding": [
        {"query": Q["q1"], "pos": [D["d1"], D["d2"]], "neg": [D["d3"], D["d4"]],
         "pos_scores": [0.9375, 0.9375], "neg_scores": [0.875, 0.75], "query_id": "q1",
         "pos_ids": ["d1", "d2"], "neg_ids": ["d3", "d4"]},
        {"query": Q["q2"], "pos": [D["d5"]], "neg": [D["d6"]], "pos_scores": [0.875],
         "neg_scores": [0.8125], "query_id": "q2", "pos_ids": ["d5"], "neg_ids": ["d6"]},
    ],
}


def plain(value):
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_back(path: Path) -> list[dict]:
    """The file's rows as plain Python records (lists decoded from CSV cells)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return [{k: plain(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
    frame = pd.read_csv(path, keep_default_na=False)
    return [{k: json.loads(v) if isinstance(v, str) and v.startswith("[") else plain(v)
             for k, v in r.items()} for r in frame.to_dict(orient="records")]


def frame_records(frame: pd.DataFrame) -> list[dict]:
    return [{k: plain(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


# -- formats x file types ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", sorted(export.FILE_TYPES))
@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_every_format_round_trips_through_every_file_type(mined, tmp_path, fmt, suffix):
    store, run_id = mined
    out = tmp_path / f"train{suffix}"
    result = export_run(store, run_id, out, ExportOptions(fmt))
    assert read_back(out) == EXPECTED[fmt]
    assert frame_records(build_export(store, run_id, ExportOptions(fmt))) == EXPECTED[fmt]
    assert result.rows == len(EXPECTED[fmt]) == result.counts["rows"]
    assert result.queries == (1 if fmt == "n-tuple" else 2)
    assert result.path == out and result.manifest_path == tmp_path / f"train{suffix}.manifest.json"


def test_jsonl_keeps_non_ascii_text(mined, tmp_path):
    store, run_id = mined
    export_run(store, run_id, tmp_path / "t.jsonl", ExportOptions("triplet"))
    assert "« Ville Lumière »" in (tmp_path / "t.jsonl").read_text(encoding="utf-8")


def test_include_scores_adds_score_columns(mined):
    store, run_id = mined
    frames = {f: build_export(store, run_id, ExportOptions(f, include_scores=True))
              for f in ("triplet", "n-tuple", "labeled-pair", "labeled-list")}
    assert frames["triplet"]["positive_score"].tolist() == [0.9375] * 4 + [0.875]
    assert frames["triplet"]["negative_score"].tolist() == [0.875, 0.75, 0.875, 0.75, 0.8125]
    assert list(frames["n-tuple"].columns) == ["anchor", "positive", "negative_1", "negative_2",
                                               "negative_1_score", "negative_2_score"]
    assert frames["n-tuple"]["negative_2_score"].tolist() == [0.75, 0.75]
    assert frames["labeled-pair"]["score"].tolist() == [0.9375, 0.9375, 0.875, 0.75, 0.875,
                                                        0.8125]
    assert frames["labeled-list"]["scores"].tolist() == [[0.9375, 0.9375, 0.875, 0.75],
                                                         [0.875, 0.8125]]


def test_flag_embedding_warns_that_include_scores_is_ignored(mined):
    store, run_id = mined
    with pytest.warns(UserWarning, match="include_scores"):
        build_export(store, run_id, ExportOptions("flag-embedding", include_scores=True))


def test_flag_embedding_carries_the_runs_query_prompt(store):
    run_id = add_run(store, add_dataset(store), prompt="query: ")
    frame = build_export(store, run_id, ExportOptions("flag-embedding"))
    assert frame["prompt"].tolist() == ["query: ", "query: "]


def test_n_tuple_drops_short_queries_and_counts_them(mined):
    store, run_id = mined
    frame = build_export(store, run_id, ExportOptions("n-tuple"))
    counts = frame.attrs["counts"]
    assert counts["rows_dropped"] == 1 and counts["queries_short"] == 1 and counts["rows"] == 2
    frame = build_export(store, run_id, ExportOptions("n-tuple", num_negatives=1))
    assert frame.attrs["counts"]["rows_dropped"] == 0 and len(frame) == 3


# -- choosing negatives --------------------------------------------------------------------------
def test_default_choice_and_counts(mined):
    store, run_id = mined
    assert chosen(store, run_id) == {"q1": (["d1", "d2"], ["d3", "d4"]), "q2": (["d5"], ["d6"])}
    counts = build_export(store, run_id, ExportOptions("triplet")).attrs["counts"]
    assert counts == {"queries": 2, "queries_dropped_for_false_negatives": 0,
                      "queries_short": 1, "false_negatives_excluded": 0,
                      "unsure_excluded": 0, "positives_excluded": 0,
                      "reviewed_hard_negatives_used": 0, "refilled": 0, "promoted_positives": 0,
                      "rows": 5, "rows_dropped": 0}


def test_a_large_runs_preview_covers_its_first_queries_and_says_so(mined, monkeypatch):
    store, run_id = mined
    decide(store, "q2", "d6", "false_negative")
    whole = export.preview_export(store, run_id, ExportOptions("flag-embedding"))
    assert not whole.attrs["partial"] and whole.attrs["queries_previewed"] == 2
    assert whole["query_id"].tolist() == ["q1"]  # q2's only negative is a false negative
    # A run above the threshold is previewed on its first queries; counts describe those only.
    monkeypatch.setattr(export, "PREVIEW_FULL_ROWS", 3)
    monkeypatch.setattr(export, "PREVIEW_QUERIES", 1)
    part = export.preview_export(store, run_id, ExportOptions("flag-embedding"))
    assert part.attrs["partial"] and part.attrs["queries_previewed"] == 1
    assert part["query_id"].tolist() == ["q1"] and part["neg_ids"].tolist() == [["d3", "d4"]]
    assert part.attrs["counts"]["false_negatives_excluded"] == 0  # q2's decision is outside
    assert whole.attrs["counts"]["false_negatives_excluded"] == 1
    assert whole.attrs["counts"]["queries_short"] == 1  # q2 has no negative left


def test_false_negative_is_never_exported_and_eligible_candidates_refill(mined):
    store, run_id = mined
    decide(store, "q1", "d3", "false_negative")
    assert chosen(store, run_id)["q1"] == (["d1", "d2"], ["d4", "d6"])
    counts = build_export(store, run_id, ExportOptions("triplet")).attrs["counts"]
    assert counts["false_negatives_excluded"] == 1 and counts["refilled"] == 1
    for fmt in export.FORMATS:
        texts = json.dumps(frame_records(build_export(store, run_id, ExportOptions(fmt))))
        assert json.dumps(D["d3"])[1:-1] not in texts


def test_unsure_pairs_are_excluded(mined):
    store, run_id = mined
    decide(store, "q1", "d4", "unsure")
    assert chosen(store, run_id)["q1"][1] == ["d3", "d6"]
    counts = build_export(store, run_id, ExportOptions("triplet")).attrs["counts"]
    assert counts["unsure_excluded"] == 1


def test_promoted_false_negative_becomes_a_positive(mined):
    store, run_id = mined
    decide(store, "q1", "d3", "false_negative")
    picks = chosen(store, run_id, promote_false_negatives=True)
    assert picks["q1"] == (["d1", "d2", "d3"], ["d4", "d6"])
    frame = build_export(store, run_id, ExportOptions("labeled-pair", promote_false_negatives=True,
                                                      include_scores=True))
    q1 = frame[frame["anchor"] == Q["q1"]]
    assert q1["label"].tolist() == [1, 1, 1, 0, 0]
    assert q1["score"].tolist()[2] == 0.875  # a promoted positive keeps its own score
    assert frame.attrs["counts"]["promoted_positives"] == 1


def test_queries_with_too_many_false_negatives_are_left_out(mined, tmp_path):
    """RLHN's drop-the-query treatment: q1 has two pairs marked false negative, q2 none."""
    store, run_id = mined
    decide(store, "q1", "d3", "false_negative")
    decide(store, "q1", "d4", "false_negative")
    for limit, kept, dropped, excluded in ((0, {"q2"}, 1, 0), (1, {"q2"}, 1, 0),
                                           (2, {"q1", "q2"}, 0, 2)):
        frame = build_export(store, run_id, ExportOptions("flag-embedding",
                                                          max_false_negatives=limit))
        assert set(frame["query_id"]) == kept
        assert frame.attrs["counts"]["queries_dropped_for_false_negatives"] == dropped
        assert frame.attrs["counts"]["false_negatives_excluded"] == excluded
    # kept, q1's negatives refill from d6 (d7 is not eligible)
    assert chosen(store, run_id, max_false_negatives=2)["q1"] == (["d1", "d2"], ["d6"])
    assert set(chosen(store, run_id, max_false_negatives=1, promote_false_negatives=True)) == {
        "q2"}
    result = export_run(store, run_id, tmp_path / "out.jsonl",
                        ExportOptions("triplet", max_false_negatives=1))
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["options"]["max_false_negatives"] == 1 and result.queries == 1
    assert manifest["counts"]["queries_dropped_for_false_negatives"] == 1
    with pytest.raises(WorkbenchError, match="max_false_negatives must be a whole number"):
        build_export(store, run_id, ExportOptions("triplet", max_false_negatives=-1))
    with pytest.raises(WorkbenchError, match="need apply_decisions"):
        build_export(store, run_id, ExportOptions("triplet", apply_decisions=False,
                                                  max_false_negatives=3))


def test_reviewed_hard_negative_is_preferred_over_a_selected_one(mined):
    store, run_id = mined
    decide(store, "q1", "d7", "hard_negative")  # neither eligible nor selected
    assert chosen(store, run_id)["q1"][1] == ["d7", "d3"]
    counts = build_export(store, run_id, ExportOptions("triplet")).attrs["counts"]
    assert counts["reviewed_hard_negatives_used"] == 1


def test_reviewed_hard_negatives_are_ordered_by_score(mined):
    store, run_id = mined
    decide(store, "q1", "d7", "hard_negative")
    decide(store, "q1", "d6", "hard_negative")
    assert chosen(store, run_id)["q1"][1] == ["d6", "d7"]


def test_only_reviewed_takes_reviewed_hard_negatives_only(mined):
    store, run_id = mined
    decide(store, "q1", "d7", "hard_negative")
    assert chosen(store, run_id, only_reviewed=True) == {"q1": (["d1", "d2"], ["d7"])}


def test_without_decisions_the_runs_selection_is_exported_as_is(mined):
    store, run_id = mined
    decide(store, "q1", "d3", "false_negative")
    decide(store, "q1", "d7", "hard_negative")
    picks = chosen(store, run_id, apply_decisions=False, num_negatives=3)
    assert picks == {"q1": (["d1", "d2"], ["d3", "d4"]), "q2": (["d5"], ["d6"])}


def test_num_negatives_overrides_the_run_and_refills(mined):
    store, run_id = mined
    assert chosen(store, run_id, num_negatives=3)["q1"][1] == ["d3", "d4", "d6"]


def test_refill_follows_rank_and_puts_unranked_candidates_last(store):
    rows = [*CANDIDATES, ("q1", "d8", None, 0.96875, True, False)]
    run_id = add_run(store, add_dataset(store), rows=rows)
    assert chosen(store, run_id, num_negatives=4)["q1"][1] == ["d3", "d4", "d6", "d8"]


def test_a_document_found_twice_in_the_pool_is_exported_once(store):
    rows = [*CANDIDATES, ("q1", "d3", None, 0.875, True, False)]  # e.g. also a given negative
    run_id = add_run(store, add_dataset(store), rows=rows)
    assert chosen(store, run_id, num_negatives=4)["q1"][1] == ["d3", "d4", "d6"]


def test_a_positive_in_the_pool_is_never_a_negative(store):
    run_id = add_run(store, add_dataset(store), rows=[("q1", "d1", 1, 0.96875, True, True),
                                                      *CANDIDATES])
    decide(store, "q1", "d1", "hard_negative")
    assert chosen(store, run_id)["q1"] == (["d1", "d2"], ["d3", "d4"])
    assert build_export(store, run_id, ExportOptions("triplet")).attrs["counts"][
        "positives_excluded"] == 1


# -- files, manifest, errors ---------------------------------------------------------------------
def test_manifest_records_the_run_options_counts_and_sha256(mined, tmp_path):
    store, run_id = mined
    out = tmp_path / "train.parquet"
    options = ExportOptions("n-tuple", include_scores=True)
    result = export_run(store, None, out, options)
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert {k: manifest[k] for k in ("run_id", "dataset", "strategy", "params", "model", "seed",
                                     "num_negatives", "format", "path")} == {
        "run_id": run_id, "dataset": "tiny", "strategy": "top_k", "params": {"k": 2},
        "model": "tiny-model", "seed": 7, "num_negatives": 2, "format": "n-tuple",
        "path": str(out.resolve())}
    assert manifest["options"] == {"format": "n-tuple", "apply_decisions": True,
                                   "promote_false_negatives": False, "include_scores": True,
                                   "only_reviewed": False, "num_negatives": None,
                                   "max_false_negatives": None}
    assert manifest["counts"] == result.counts
    assert manifest["quality"] == result.quality and result.quality["negatives"] == 3
    assert manifest["suspicion"] == {"scorer": None}  # this run was never scored
    created = datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == timezone.utc.utcoffset(None)


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_write_leaves_no_partial_file(mined, tmp_path, monkeypatch, existing):
    store, run_id = mined
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "train.jsonl"
    if existing:
        out.write_text("old content\n", encoding="utf-8")

    def failing(frame, handle):
        handle.write(b'{"anchor": "half a row')
        raise OSError("disk full")

    monkeypatch.setitem(export.FILE_TYPES, ".jsonl", failing)
    with pytest.raises(OSError, match="disk full"):
        export_run(store, run_id, out, ExportOptions("triplet"))
    assert sorted(p.name for p in folder.iterdir()) == (["train.jsonl"] if existing else [])
    if existing:
        assert out.read_text(encoding="utf-8") == "old content\n"


def test_a_successful_write_leaves_only_data_and_manifest(mined, tmp_path):
    store, run_id = mined
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "train.csv").write_text("old\n", encoding="utf-8")
    export_run(store, run_id, folder / "train.csv", ExportOptions("triplet"))
    assert sorted(p.name for p in folder.iterdir()) == ["train.csv", "train.csv.manifest.json"]
    assert read_back(folder / "train.csv") == EXPECTED["triplet"]


def test_unknown_format_lists_the_valid_ones(mined, tmp_path):
    store, run_id = mined
    with pytest.raises(WorkbenchError, match="triplet, n-tuple, labeled-pair"):
        export_run(store, run_id, tmp_path / "x.jsonl", ExportOptions("pairs"))


def test_unknown_extension_is_refused(mined, tmp_path):
    store, run_id = mined
    with pytest.raises(WorkbenchError, match=r"\.jsonl, \.parquet, \.csv"):
        export_run(store, run_id, tmp_path / "x.txt", ExportOptions("triplet"))
    assert not (tmp_path / "x.txt").exists()


def test_missing_folder_is_refused(mined, tmp_path):
    store, run_id = mined
    with pytest.raises(WorkbenchError, match="does not exist"):
        export_run(store, run_id, tmp_path / "nope" / "x.jsonl", ExportOptions("triplet"))


@pytest.mark.parametrize("options", [
    ExportOptions("triplet", apply_decisions=False, promote_false_negatives=True),
    ExportOptions("triplet", apply_decisions=False, only_reviewed=True),
    ExportOptions("triplet", num_negatives=0),
])
def test_contradictory_or_invalid_options_are_refused(mined, options):
    store, run_id = mined
    with pytest.raises(WorkbenchError):
        build_export(store, run_id, options)


def test_export_without_a_finished_run_is_refused(store, tmp_path):
    dataset_id = add_dataset(store)
    with pytest.raises(WorkbenchError, match="no finished mining run"):
        export_run(store, None, tmp_path / "x.jsonl", ExportOptions("triplet"))
    running = add_run(store, dataset_id, finish=False)
    with pytest.raises(WorkbenchError, match="not finished"):
        export_run(store, running, tmp_path / "x.jsonl", ExportOptions("triplet"))
    with pytest.raises(WorkbenchError, match="no run 99"):
        export_run(store, 99, tmp_path / "x.jsonl", ExportOptions("triplet"))
    assert not (tmp_path / "x.jsonl").exists()


def test_latest_finished_run_is_the_default(mined, tmp_path):
    store, run_id = mined
    add_run(store, store.get_dataset().dataset_id, finish=False)  # newer, still running
    assert export_run(store, None, tmp_path / "x.jsonl", ExportOptions("triplet")).rows == 5
    manifest = json.loads((tmp_path / "x.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == run_id


def test_an_empty_export_is_refused_and_writes_nothing(mined, tmp_path):
    store, run_id = mined
    options = ExportOptions("triplet", only_reviewed=True)
    assert list(build_export(store, run_id, options).columns) == ["anchor", "positive", "negative"]
    with pytest.raises(WorkbenchError, match="no triplet rows"):
        export_run(store, run_id, tmp_path / "x.jsonl", options)
    assert not (tmp_path / "x.jsonl").exists()
    assert not (tmp_path / "x.jsonl.manifest.json").exists()
