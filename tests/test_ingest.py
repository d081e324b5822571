"""Tests for core.ingest: every format from real files on disk, malformed inputs, properties."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.collector import content_doc_id, content_query_id
from core.errors import InputError, WorkbenchError
from core.ingest import FORMATS, detect_format, ingest, read_dataset
from core.text import document_text, text_hash
from tests.conftest import REPO, TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir

# The shared datasets sit beside the repository (CI clones main with shared/ next to it).
CRANFIELD = REPO.parent / "shared" / "datasets" / "cranfield"


# -- helpers ------------------------------------------------------------------------------------

def write_jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def set_line(path: Path, number: int, text: str | bytes) -> None:
    """Replace (or append, when ``number`` is one past the end) a line of a file, as bytes."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if number == len(lines) + 1:
        lines.append(data)
    else:
        lines[number - 1] = data
    path.write_bytes(b"\n".join(lines) + b"\n")


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)  # "\r\n" ends rows; cells with \r or \n are quoted
    return path


def save_hf(path: Path, columns: dict[str, list], splits: tuple[str, ...] = ()) -> Path:
    import datasets

    datasets.disable_progress_bars()
    data = datasets.Dataset.from_dict(columns)
    if splits:
        data = datasets.DatasetDict({name: data for name in splits})
    data.save_to_disk(str(path))
    return path


def frames(store, info) -> dict[str, pd.DataFrame]:
    return {t: store.dataset_frame(info.dataset_id, t)
            for t in ("queries", "documents", "positives", "given_negatives")}


def pair_set(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["query_id"], frame["doc_id"]))


def sizes(report) -> tuple[int, int, int]:
    """(queries, positives, given negatives) of a report."""
    return report.counts.queries, report.counts.positives, report.counts.given_negatives


# -- BEIR ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False])
def test_beir_with_and_without_header(store, tmp_path, header):
    root = write_beir(tmp_path / "tiny", header=header)
    report = ingest(store, root)
    assert report.format == "beir" and report.split == "train" and report.dataset.name == "tiny"
    assert (report.counts.queries, report.counts.documents, report.counts.positives) == (4, 12, 4)
    got = frames(store, report.dataset)
    assert pair_set(got["positives"]) == {(q, d) for q, d, _ in TINY_QRELS}
    assert set(got["positives"]["source"]) == {"qrels"} and set(got["positives"]["grade"]) == {1}
    doc = got["documents"].set_index("doc_id").loc["d3"]
    assert doc["title"] == "Eiffel Tower"
    assert doc["text"] == document_text(*TINY_CORPUS["d3"])
    assert doc["text_hash"] == text_hash(doc["text"])
    assert got["given_negatives"].empty


def test_beir_content_frames_have_string_dtypes_also_when_empty(tiny_beir):
    content, report = read_dataset(tiny_beir)
    assert report.dataset is None
    for frame in (content.queries, content.documents, content.positives, content.given_negatives):
        for column in frame.columns:
            expected = "int64" if column == "grade" else "string"
            assert str(frame[column].dtype) == expected, column


def test_beir_split_choice_and_missing_split(store, tmp_path):
    root = write_beir(tmp_path / "two", split="train")
    write_beir(root, qrels=[("q1", "d2", 2), ("q2", "d5", 1)], split="test")
    report = ingest(store, root, split="test")
    assert report.split == "test"
    assert pair_set(frames(store, report.dataset)["positives"]) == {("q1", "d2"), ("q2", "d5")}
    assert report.counts.queries_without_positive == 2
    with pytest.raises(InputError, match=r"qrels/dev\.tsv: file not found \(available splits: "
                                         r"test, train\)"):
        read_dataset(root, split="dev")
    with pytest.raises(InputError, match=r"qrels: holds splits test, train; choose one with "):
        read_dataset(root)


def test_beir_grades_below_one_are_ignored_and_counted(tiny_beir):
    write_beir(tiny_beir, qrels=[("q1", "d1", 2), ("q1", "d2", 0), ("q2", "d4", -1),
                                 ("q3", "d6", 1), ("q3", "d6", 1)])
    content, report = read_dataset(tiny_beir)
    assert report.counts.qrels_below_grade_1 == 2
    assert report.counts.duplicates_merged == 1
    assert report.counts.queries_without_positive == 2  # q2 (grade -1 only) and q4
    assert set(content.queries["query_id"]) == {"q1", "q3"}
    assert dict(zip(content.positives["doc_id"], content.positives["grade"])) == {"d1": 2, "d6": 1}
    assert any("2 queries have no positive" in w for w in report.warnings)


def test_beir_ids_may_be_numbers_or_odd_strings(tmp_path):
    root = tmp_path / "odd"
    write_jsonl(root / "corpus.jsonl", [{"_id": 7, "title": "", "text": "seven"},
                                        {"_id": "<dbpedia:Oceanic_Airlines>", "text": "airline"}])
    write_jsonl(root / "queries.jsonl", [{"_id": 1, "text": "which airline"}])
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("1\t<dbpedia:Oceanic_Airlines>\t1\n1\t7\t1\n")
    content, report = read_dataset(root)
    assert set(content.documents["doc_id"]) == {"7", "<dbpedia:Oceanic_Airlines>"}
    assert content.documents.set_index("doc_id").loc["7", "title"] is pd.NA
    assert pair_set(content.positives) == {("1", "<dbpedia:Oceanic_Airlines>"), ("1", "7")}


def test_beir_identical_duplicates_merge_bom_and_crlf_are_accepted(tiny_beir):
    corpus = tiny_beir / "corpus.jsonl"
    corpus.write_bytes(b"\xef\xbb\xbf" + corpus.read_bytes().replace(b"\n", b"\r\n"))
    set_line(tiny_beir / "queries.jsonl", 5, json.dumps({"_id": "q1", "text": TINY_QUERIES["q1"]}))
    content, report = read_dataset(tiny_beir)
    assert report.counts.duplicates_merged == 1
    assert len(content.documents) == 12 and len(content.queries) == 4


def test_beir_empty_documents_are_dropped_and_reported(tiny_beir):
    write_beir(tiny_beir, qrels=TINY_QRELS + [("q1", "empty", 1)])
    set_line(tiny_beir / "corpus.jsonl", 13, json.dumps({"_id": "empty", "title": " ", "text": ""}))
    content, report = read_dataset(tiny_beir)
    assert "empty" not in set(content.documents["doc_id"])
    assert report.counts.empty_documents_dropped == 1
    assert report.counts.qrels_to_empty_documents == 1
    assert any("'empty'" in w for w in report.warnings)


def test_beir_real_cranfield_labeled_split(store):
    qrels = pd.read_csv(CRANFIELD / "qrels" / "labeled.tsv", sep="\t", dtype=str)
    positive_lines = qrels[qrels["score"].astype(int) >= 1]
    report = ingest(store, CRANFIELD, split="labeled")
    n_queries_file = sum(1 for line in open(CRANFIELD / "queries.jsonl") if line.strip())
    assert n_queries_file == 225
    assert report.counts.positives == len(positive_lines)
    assert report.counts.queries == positive_lines["query-id"].nunique()
    assert report.counts.queries + report.counts.queries_without_positive == 225
    assert report.dataset.n_documents + report.counts.empty_documents_dropped == 1400
    stored = frames(store, report.dataset)["positives"]
    assert pair_set(stored) == set(zip(positive_lines["query-id"], positive_lines["corpus-id"]))


def test_reingest_retires_the_old_version(store, tiny_beir):
    first = ingest(store, tiny_beir)
    write_beir(tiny_beir, qrels=TINY_QRELS[:2])
    second = ingest(store, tiny_beir)
    versions = store.list_datasets(include_inactive=True)
    assert [(v.dataset_id, v.active) for v in versions] == [
        (second.dataset.dataset_id, True), (first.dataset.dataset_id, False)]
    assert store.get_dataset("tiny").n_positives == 2


def test_failed_ingest_leaves_existing_dataset_untouched(store, tiny_beir):
    before = ingest(store, tiny_beir).dataset
    set_line(tiny_beir / "queries.jsonl", 2, "{not json")
    with pytest.raises(InputError, match=r"queries\.jsonl line 2: not valid JSON"):
        ingest(store, tiny_beir)
    assert store.list_datasets(include_inactive=True) == [before]


def test_column_options_are_ignored_with_a_warning_for_beir_and_flag(tiny_beir, tmp_path):
    _, report = read_dataset(tiny_beir, query_column="x")
    assert any("column options are ignored" in w for w in report.warnings)
    flag_file = write_jsonl(tmp_path / "f.jsonl", [{"query": "q", "pos": ["p"]}])
    _, report = read_dataset(flag_file, split="train", positive_column="y")
    assert len(report.warnings) == 2 and report.split is None


# -- pairs --------------------------------------------------------------------------------------

PAIR_ROWS = [
    {"anchor": "what is rust", "positive": "Rust is a language.", "negative": "Rust on iron."},
    {"anchor": "what is rust", "positive": "Rust is memory safe.", "negative": "A rusty nail."},
    {"anchor": "capital of france", "positive": "Paris.", "negative": "Lyon."},
]


def check_pair_rows(content, report) -> None:
    """The PAIR_ROWS dataset, whatever file it came from."""
    queries = dict(zip(content.queries["text"], content.queries["query_id"]))
    docs = dict(zip(content.documents["text"], content.documents["doc_id"]))
    assert set(queries) == {"what is rust", "capital of france"}
    assert queries["what is rust"] == content_query_id("what is rust")
    assert docs["Paris."] == "d-" + text_hash("Paris.")[:12] == content_doc_id("Paris.")
    assert pair_set(content.positives) == {(queries[r["anchor"]], docs[r["positive"]])
                                          for r in PAIR_ROWS}
    assert pair_set(content.given_negatives) == {(queries[r["anchor"]], docs[r["negative"]])
                                                for r in PAIR_ROWS}
    assert set(content.positives["source"]) == {"pair"}
    assert set(content.given_negatives["source"]) == {"given"}
    assert content.documents["title"].isna().all()
    assert report.counts.duplicates_merged == 1  # the repeated anchor
    assert sizes(report) == (2, 3, 3)


def test_pairs_jsonl(store, tmp_path):
    path = write_jsonl(tmp_path / "triplets.jsonl", PAIR_ROWS)
    report = ingest(store, path)
    assert report.format == "pairs" and report.dataset.name == "triplets" and report.split is None
    content, _ = read_dataset(path)
    check_pair_rows(content, report)


def test_pairs_csv_with_embedded_newlines_and_quotes(tmp_path):
    rows = [["anchor", "positive", "negative"]] + [[r["anchor"], r["positive"], r["negative"]]
                                                  for r in PAIR_ROWS]
    rows.append(['say "hi"\nthere', 'line one\nline "two", three', ""])
    content, report = read_dataset(write_csv(tmp_path / "train.csv", rows))
    assert 'say "hi"\nthere' in set(content.queries["text"])
    assert 'line one\nline "two", three' in set(content.documents["text"])
    assert report.counts.empty_negative_cells == 1
    assert any("1 empty negative cells were skipped" in w for w in report.warnings)


def test_pairs_parquet_with_list_valued_cells(tmp_path):
    table = pa.table({
        "query": ["what is rust", "capital of france"],
        "pos": [["Rust is a language.", "Rust is memory safe."], ["Paris."]],
        "negatives": [["Rust on iron.", "A rusty nail."], ["Lyon."]],
        "id": [1, 2],
    })
    pq.write_table(table, tmp_path / "train.parquet")
    content, report = read_dataset(tmp_path / "train.parquet")
    assert sizes(report) == (2, 3, 3)
    assert any("columns ignored: id" in w for w in report.warnings)


def test_pairs_hf_dataset_and_dataset_dict(tmp_path):
    columns = {key: [r[key] for r in PAIR_ROWS] for key in PAIR_ROWS[0]}
    single = save_hf(tmp_path / "single", columns)
    assert detect_format(single) == "pairs"
    content, report = read_dataset(single)
    check_pair_rows(content, report)
    _, report = read_dataset(single, split="train")
    assert report.split is None and any("split 'train' is ignored" in w for w in report.warnings)
    only = save_hf(tmp_path / "only", columns, splits=("train",))
    assert read_dataset(only)[1].split == "train"
    both = save_hf(tmp_path / "both", columns, splits=("train", "dev"))
    content, report = read_dataset(both, split="dev")
    assert report.split == "dev" and content.split == "dev"
    check_pair_rows(content, report)


def test_pairs_explicit_columns_and_numbered_negatives(tmp_path):
    rows = [{"q": "a question", "doc": "an answer", "bad": "wrong", "negative_1": "n1",
             "negative_2": "n2", "label": 1}]
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    with pytest.raises(InputError, match=r"custom\.jsonl: has no query column .*'q', 'doc'"):
        read_dataset(path)
    content, report = read_dataset(path, query_column="q", positive_column="doc",
                                   negative_columns=["bad"])
    assert set(content.documents["text"]) == {"an answer", "wrong"}
    assert report.counts.given_negatives == 1
    content, _ = read_dataset(path, query_column="q", positive_column="doc")
    assert set(content.documents["text"]) == {"an answer", "n1", "n2"}


def test_pairs_negative_that_is_a_positive_of_the_same_query_stays_positive(tmp_path):
    rows = [{"anchor": "a", "positive": "p1", "negative": "p2"},
            {"anchor": "a", "positive": "p2", "negative": ["p1", "n"]},
            {"anchor": "b", "positive": "n", "negative": "p1"}]
    content, report = read_dataset(write_jsonl(tmp_path / "mix.jsonl", rows))
    qa, qb = content_query_id("a"), content_query_id("b")
    p1, p2, n = (content_doc_id(t) for t in ("p1", "p2", "n"))
    assert pair_set(content.positives) == {(qa, p1), (qa, p2), (qb, n)}
    assert pair_set(content.given_negatives) == {(qa, n), (qb, p1)}
    assert report.counts.negatives_that_are_positives == 2


def test_pairs_split_argument_on_a_file_warns(tmp_path):
    _, report = read_dataset(write_jsonl(tmp_path / "p.jsonl", PAIR_ROWS), split="train")
    assert report.split is None
    assert any("split 'train' is ignored" in w for w in report.warnings)


# -- FlagEmbedding ------------------------------------------------------------------------------

def test_flag_without_ids(tmp_path):
    rows = [{"query": "q one", "pos": ["p1"], "neg": ["n1", "n2"], "prompt": "Represent: ",
             "pos_scores": [0.9], "neg_scores": [0.1, 0.2]},
            {"query": "q two", "pos": ["p2", "p1"], "neg": []}]
    path = write_jsonl(tmp_path / "flag.jsonl", rows)
    assert detect_format(path) == "flag"
    content, report = read_dataset(path)
    assert report.format == "flag"
    assert set(content.positives["source"]) == {"flag"}
    assert set(content.given_negatives["source"]) == {"given"}
    assert sizes(report) == (2, 3, 2)
    assert (content_query_id("q two"), content_doc_id("p1")) in pair_set(content.positives)


def test_flag_round_trip_keeps_ids(store, tiny_beir, tmp_path):
    info = ingest(store, tiny_beir).dataset
    got = frames(store, info)
    texts = dict(zip(got["documents"]["doc_id"], got["documents"]["text"]))
    queries = dict(zip(got["queries"]["query_id"], got["queries"]["text"]))
    lines = [{"query": queries[q], "pos": [texts[d]], "neg": [texts["d12"]], "query_id": q,
              "pos_ids": [d], "neg_ids": ["d12"], "pos_scores": [None], "neg_scores": [0.5]}
             for q, d, _ in TINY_QRELS]
    report = ingest(store, write_jsonl(tmp_path / "export.jsonl", lines), name="round")
    back = frames(store, report.dataset)
    assert pair_set(back["positives"]) == {(q, d) for q, d, _ in TINY_QRELS}
    assert pair_set(back["given_negatives"]) == {(q, "d12") for q in TINY_QUERIES}
    original = got["documents"].set_index("doc_id")["text_hash"]
    assert all(original[d] == h for d, h in zip(back["documents"]["doc_id"],
                                                back["documents"]["text_hash"]))


# -- detection and entry points -----------------------------------------------------------------

def test_detect_format(tmp_path, tiny_beir):
    assert detect_format(tiny_beir) == "beir"
    assert detect_format(write_jsonl(tmp_path / "a.jsonl", PAIR_ROWS)) == "pairs"
    flag_file = write_jsonl(tmp_path / "f.jsonl", [{"query": "q", "pos": ["p"]}])
    assert detect_format(flag_file) == "flag"
    assert detect_format(write_csv(tmp_path / "c.csv", [["anchor", "positive"]])) == "pairs"
    (tmp_path / "bad.jsonl").write_bytes(b"\xff\xfe")
    assert detect_format(tmp_path / "bad.jsonl") == "pairs"  # the reader reports the real problem
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match=r"x\.txt: has extension '\.txt'"):
        detect_format(tmp_path / "x.txt")
    with pytest.raises(InputError, match=r"nowhere: not found"):
        detect_format(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match=r"plain: is a folder but neither a BEIR dataset"):
        detect_format(tmp_path / "plain")


def test_unknown_format_and_option_list_valid_names(tiny_beir):
    assert sorted(FORMATS) == ["beir", "flag", "pairs"]
    with pytest.raises(WorkbenchError,
                       match=r"unknown format 'trec'; valid formats: beir, flag, pairs"):
        read_dataset(tiny_beir, format="trec")
    with pytest.raises(WorkbenchError,
                       match=r"unknown option query_col; valid options: query_column"):
        read_dataset(tiny_beir, query_col="x")


def test_explicit_name(store, tiny_beir):
    assert ingest(store, tiny_beir, name="mine").dataset.name == "mine"
    with pytest.raises(WorkbenchError, match="dataset name must be a non-empty string"):
        read_dataset(tiny_beir, name="  ")


# -- malformed inputs ---------------------------------------------------------------------------
# Each builder writes a bad input under tmp_path and returns (path, keyword arguments). The tiny
# BEIR folder has 12 corpus lines, 4 query lines and qrels with a header on line 1.

Builder = Callable[[Path], tuple[Path, dict]]


def beir_line(file: str, number: int, text: str | bytes) -> Builder:
    def build(tmp_path: Path) -> tuple[Path, dict]:
        root = write_beir(tmp_path / "bad")
        set_line(root / file, number, text)
        return root, {}
    return build


def pairs_jsonl(rows: list[object], name: str = "train.jsonl", **kwargs) -> Builder:
    return lambda tmp_path: (write_jsonl(tmp_path / name, rows), kwargs)


def pairs_csv(text: str | bytes) -> Builder:
    def build(tmp_path: Path) -> tuple[Path, dict]:
        path = tmp_path / "train.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path, {}
    return build


def pairs_parquet(table: dict[str, list], **kwargs) -> Builder:
    def build(tmp_path: Path) -> tuple[Path, dict]:
        pq.write_table(pa.table(table), tmp_path / "train.parquet")
        return tmp_path / "train.parquet", kwargs
    return build


def hf_folder(columns: dict[str, list], splits: tuple[str, ...] = (), **kwargs) -> Builder:
    return lambda tmp_path: (save_hf(tmp_path / "hf", columns, splits), kwargs)


def flag(rows: list[object]) -> Builder:
    return lambda tmp_path: (write_jsonl(tmp_path / "flag.jsonl", rows), {})


OK = {"anchor": "a", "positive": "p"}
FLAG_OK = {"query": "q", "pos": ["p"], "neg": ["n"]}
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"

# (builder, regex naming file, line or row, and field)
LINE_ERRORS = [
    pytest.param(beir_line("corpus.jsonl", 2, '{"title": "x", "text": "y"}'),
                 r"^corpus\.jsonl line 2: field '_id' is missing$", id="beir-id-missing"),
    pytest.param(beir_line("corpus.jsonl", 3, '{"_id": "d3" "text": "y"}'),
                 r"^corpus\.jsonl line 3: not valid JSON \(Expecting ',' delimiter",
                 id="beir-bad-json"),
    pytest.param(beir_line("queries.jsonl", 1, '["q1", "text"]'),
                 r"^queries\.jsonl line 1: expected a JSON object, found a list$",
                 id="beir-not-object"),
    pytest.param(beir_line("queries.jsonl", 2, '{"_id": "q2", "text": 5}'),
                 r"^queries\.jsonl line 2: field 'text' must be a string, found a number$",
                 id="beir-text-type"),
    pytest.param(beir_line("queries.jsonl", 4, '{"_id": "q4", "text": "  \\t "}'),
                 r"^queries\.jsonl line 4: field 'text' is empty$", id="beir-query-empty"),
    pytest.param(beir_line("queries.jsonl", 3, '{"_id": 1.5, "text": "x"}'),
                 r"^queries\.jsonl line 3: field '_id' must be a string or integer id, "
                 r"found a number$",
                 id="beir-id-float"),
    pytest.param(beir_line("corpus.jsonl", 5, '{"_id": "d5", "title": ["a"], "text": "x"}'),
                 r"^corpus\.jsonl line 5: field 'title' must be a string, found a list$",
                 id="beir-title-type"),
    pytest.param(beir_line("corpus.jsonl", 6, '{"_id": "d6", "title": "only a title"}'),
                 r"^corpus\.jsonl line 6: field 'text' is missing$", id="beir-text-missing"),
    pytest.param(beir_line("corpus.jsonl", 13, '{"_id": "d1", "title": "Other", "text": "x"}'),
                 r"^corpus\.jsonl line 13: document id 'd1' was already used on line 1 for a "
                 r"different text$", id="beir-duplicate-id"),
    pytest.param(beir_line("queries.jsonl", 3, b'{"_id": "q3", "text": "caf\xe9"}'),
                 r"^queries\.jsonl line 3: not valid UTF-8 \(byte 0xe9", id="beir-not-utf8"),
    pytest.param(beir_line("qrels/train.tsv", 3, "q2\td4"),
                 r"^qrels/train\.tsv line 3: expected 3 tab-separated columns .*found 2$",
                 id="qrels-columns"),
    pytest.param(beir_line("qrels/train.tsv", 4, "q3\td6\t1.5"),
                 r"^qrels/train\.tsv line 4: field 'score' must be an integer, found '1\.5'$",
                 id="qrels-score"),
    pytest.param(beir_line("qrels/train.tsv", 3, "q2\td4\t99999999999"),
                 r"^qrels/train\.tsv line 3: field 'score' 99999999999 is out of range$",
                 id="qrels-score-range"),
    pytest.param(beir_line("qrels/train.tsv", 5, "q4\tD9\t1"),
                 r"^qrels/train\.tsv line 5: document 'D9' is not in corpus\.jsonl$",
                 id="qrels-unknown-doc"),
    pytest.param(beir_line("qrels/train.tsv", 2, "q99\td1\t1"),
                 r"^qrels/train\.tsv line 2: query 'q99' is not in queries\.jsonl$",
                 id="qrels-unknown-query"),
    pytest.param(beir_line("qrels/train.tsv", 6, "q1\td1\t2"),
                 r"^qrels/train\.tsv line 6: pair \('q1', 'd1'\) was already given score 1 "
                 r"on line 2$",
                 id="qrels-conflict"),
    pytest.param(pairs_jsonl([OK, {"positive": "p"}]),
                 r"^train\.jsonl line 2: field 'anchor' is missing$", id="pairs-anchor-missing"),
    pytest.param(pairs_jsonl([{"anchor": "a", "positive": ["p", 3]}]),
                 r"^train\.jsonl line 1: field 'positive' item 2 must be a string, found a number$",
                 id="pairs-list-item-type"),
    pytest.param(pairs_jsonl([OK, OK, {"anchor": "a", "positive": []}]),
                 r"^train\.jsonl line 3: field 'positive' is an empty list$",
                 id="pairs-empty-list"),
    pytest.param(pairs_jsonl([OK, {"anchor": {"t": 1}, "positive": "p"}]),
                 r"^train\.jsonl line 2: field 'anchor' must be a string, found an object$",
                 id="pairs-anchor-object"),
    pytest.param(pairs_jsonl([{"anchor": "bad \ud800", "positive": "p"}]),
                 r"^train\.jsonl line 1: field 'anchor' contains an unpaired surrogate",
                 id="pairs-surrogate"),
    pytest.param(pairs_csv("anchor,positive\na,p\nb,  \n"),
                 r"^train\.csv row 2 \(line 3\): field 'positive' is empty$", id="csv-empty"),
    pytest.param(pairs_csv('anchor,positive\n"multi\nline","say ""hi"""\n\n"",p\n'),
                 r"^train\.csv row 2 \(line 5\): field 'anchor' is empty$", id="csv-row-numbers"),
    pytest.param(pairs_csv("anchor,positive\na,p,extra\n"),
                 r"^train\.csv row 1 \(line 2\): has 3 fields but the header has 2$",
                 id="csv-field-count"),
    pytest.param(pairs_csv('anchor,positive\na,p\n"open,p\n'),
                 r"^train\.csv line 3: not valid CSV \(", id="csv-unterminated-quote"),
    pytest.param(pairs_csv(b"anchor,positive\na,p\nb,\xff\xfe\n"),
                 r"^train\.csv line 3: not valid UTF-8 \(byte 0xff", id="csv-not-utf8"),
    pytest.param(pairs_parquet({"anchor": ["a", None], "positive": ["p", "p"]}),
                 r"^train\.parquet row 2: field 'anchor' is null$", id="parquet-null"),
    pytest.param(pairs_parquet({"anchor": ["a"], "positive": [["p", " "]]}),
                 r"^train\.parquet row 1: field 'positive' item 2 is empty$",
                 id="parquet-empty-item"),
    pytest.param(hf_folder({"anchor": ["a", ""], "positive": ["p", "p"]}),
                 r"^hf row 2: field 'anchor' is empty$", id="hf-empty"),
    pytest.param(hf_folder({"anchor": ["a", "b"], "positive": ["p", "  "]}, splits=("train",)),
                 r"^hf/train row 2: field 'positive' is empty$", id="hf-split-empty"),
    pytest.param(flag([FLAG_OK, {"query": "q", "pos": "p"}]),
                 r"^flag\.jsonl line 2: field 'pos' must be a list of strings, found a string$",
                 id="flag-pos-string"),
    pytest.param(flag([FLAG_OK, {"query": "q2", "pos": ["p"], "neg": [None]}]),
                 r"^flag\.jsonl line 2: field 'neg' item 1 must be a string, found null$",
                 id="flag-neg-null"),
    pytest.param(flag([{"pos": ["p"]}]), r"^flag\.jsonl line 1: field 'query' is missing$",
                 id="flag-query-missing"),
    pytest.param(flag([{"query": "q", "pos": []}]),
                 r"^flag\.jsonl line 1: field 'pos' is an empty list$",
                 id="flag-pos-empty"),
    pytest.param(flag([{"query": "q", "pos": ["a", "b"], "query_id": "q1", "pos_ids": ["x"]}]),
                 r"^flag\.jsonl line 1: field 'pos_ids' has 1 ids but field 'pos' has 2 texts$",
                 id="flag-ids-length"),
    pytest.param(flag([{"query": "q", "pos": ["p"], "query_id": "q1", "pos_ids": ["x"]},
                       {"query": "other", "pos": ["p"], "query_id": "q1", "pos_ids": ["x"]}]),
                 r"^flag\.jsonl line 2: query id 'q1' was already used on line 1 for a "
                 r"different text$",
                 id="flag-id-conflict"),
    pytest.param(flag([{"query": "q", "pos": ["p"], "pos_ids": ["x"]}]),
                 r"^flag\.jsonl line 1: field 'pos_ids' is given but field 'query_id' is missing$",
                 id="flag-ids-without-query-id"),
    pytest.param(flag([{"query": "q", "pos": ["p"], "neg": ["n"], "query_id": "q1",
                        "pos_ids": ["x"]}]),
                 r"^flag\.jsonl line 1: field 'neg_ids' is missing$", id="flag-neg-ids-missing"),
]


def _corpus_dir(tmp_path: Path) -> tuple[Path, dict]:
    root = write_beir(tmp_path / "bad")
    (root / "corpus.jsonl").unlink()
    (root / "corpus.jsonl").mkdir()
    return root, {}


def _beir_edit(edit: Callable[[Path], None], **kwargs) -> Builder:
    def build(tmp_path: Path) -> tuple[Path, dict]:
        root = write_beir(tmp_path / "bad")
        edit(root)
        return root, kwargs
    return build


def _garbage_parquet(tmp_path: Path) -> tuple[Path, dict]:
    (tmp_path / "x.parquet").write_bytes(b"PAR1 garbage")
    return tmp_path / "x.parquet", {}


FILE_ERRORS = [
    pytest.param(_corpus_dir, r"^corpus\.jsonl: is a directory where a file was expected$",
                 id="beir-corpus-directory"),
    pytest.param(_beir_edit(lambda r: (r / "queries.jsonl").unlink()),
                 r"^queries\.jsonl: file not found", id="beir-queries-missing"),
    pytest.param(_beir_edit(lambda r: (r / "corpus.jsonl").write_bytes(b"")),
                 r"^corpus\.jsonl: file is empty$", id="beir-corpus-empty"),
    pytest.param(_beir_edit(lambda r: (r / "queries.jsonl").write_text("\n  \n")),
                 r"^queries\.jsonl: file is empty \(it has only blank lines\)$", id="beir-blank"),
    pytest.param(_beir_edit(lambda r: (r / "qrels" / "train.tsv").write_text(QRELS_HEADER)),
                 r"^qrels/train\.tsv: has no qrels lines$", id="qrels-header-only"),
    pytest.param(_beir_edit(lambda r: (r / "qrels" / "train.tsv").write_text("q1\td1\t0\n")),
                 r"^qrels/train\.tsv: gives no positive pair", id="qrels-no-positive"),
    pytest.param(_beir_edit(lambda r: (r / "qrels" / "train.tsv").unlink()),
                 r"^qrels: folder is missing or holds no <split>\.tsv file", id="qrels-none"),
    pytest.param(_beir_edit(lambda r: None, split="test"),
                 r"^qrels/test\.tsv: file not found \(available splits: train\)$",
                 id="split-missing"),
    pytest.param(pairs_csv("anchor,positive\n"),
                 r"^train\.csv: has a header line but no data rows$",
                 id="csv-header-only"),
    pytest.param(pairs_parquet({"anchor": [1, 2], "positive": ["p", "q"]}),
                 r"^train\.parquet: column 'anchor' has type int64; expected strings",
                 id="parquet-type"),
    pytest.param(pairs_parquet({"anchor": ["a"], "score": [1]}),
                 r"^train\.parquet: has no positive column \(looked for positive, .*; "
                 r"columns found: 'anchor', 'score'\)", id="parquet-no-positive"),
    pytest.param(pairs_jsonl([{"query": "q", "question": "q", "positive": "p"}]),
                 r"^train\.jsonl: has several possible query columns \(query, question; ",
                 id="ambiguous-query"),
    pytest.param(pairs_jsonl([OK], query_column="q"),
                 r"^train\.jsonl: has no column 'q' \(columns found: 'anchor', 'positive'\)$",
                 id="explicit-column-missing"),
    pytest.param(pairs_csv(b"anchor,positive"), r"^train\.csv: has a header line but no",
                 id="csv-header-without-newline"),
    pytest.param(_garbage_parquet, r"^x\.parquet: not a readable Parquet file",
                 id="parquet-garbage"),
    pytest.param(hf_folder({"anchor": ["a"], "positive": ["p"]}, splits=("train", "dev")),
                 r"^hf: holds splits dev, train; choose one with split=$", id="hf-split-needed"),
    pytest.param(hf_folder({"anchor": ["a"], "positive": ["p"]}, splits=("train",), split="x"),
                 r"^hf: has no split 'x' \(it has: train\)$", id="hf-split-unknown"),
    pytest.param(lambda t: (t / "gone.jsonl", {"format": "pairs"}), r"^gone\.jsonl: not found",
                 id="pairs-missing-file"),
    pytest.param(lambda t: (t, {"format": "pairs"}), r": not a Hugging Face datasets folder",
                 id="pairs-plain-folder"),
    pytest.param(lambda t: (write_jsonl(t / "f.jsonl", [FLAG_OK]), {"format": "beir"}),
                 r"^f\.jsonl: is not a folder", id="beir-on-a-file"),
]


@pytest.mark.parametrize(("build", "pattern"), LINE_ERRORS + FILE_ERRORS)
def test_malformed_input_is_named_and_nothing_is_written(store, tmp_path, build, pattern):
    path, kwargs = build(tmp_path)
    with pytest.raises(InputError, match=pattern) as caught:
        ingest(store, path, **kwargs)
    assert "\n" not in str(caught.value)  # one sentence, one line
    assert store.list_datasets(include_inactive=True) == []


def test_there_are_enough_malformed_cases():
    assert len(LINE_ERRORS) >= 20


# -- properties ---------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda t: t.strip())
pair_rows = st.lists(
    st.tuples(texts, st.lists(texts, min_size=1, max_size=3), st.lists(texts, max_size=2)),
    min_size=1, max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=pair_rows, as_csv=st.booleans())
def test_valid_pair_rows_round_trip(rows, as_csv):
    with tempfile.TemporaryDirectory() as folder:
        if as_csv:
            path = Path(folder) / "rows.csv"
            table = [["anchor", "positive", "negative_1", "negative_2"]]  # a row per positive
            table += [[a, p, *(n + [""] * 2)[:2]] for a, ps, n in rows for p in ps]
            write_csv(path, table)
        else:
            path = write_jsonl(Path(folder) / "rows.jsonl",
                               [{"anchor": a, "positive": p, "negatives": n} for a, p, n in rows])
        content, report = read_dataset(path)
    query_ids = dict(zip(content.queries["text"], content.queries["query_id"]))
    doc_ids = dict(zip(content.documents["text"], content.documents["doc_id"]))
    positives = pair_set(content.positives)
    assert set(query_ids) == {a.strip() for a, _, _ in rows}
    for anchor, pos, neg in rows:
        for text in pos:
            assert (query_ids[anchor.strip()], doc_ids[text.strip()]) in positives
        for text in neg:
            pair = (query_ids[anchor.strip()], doc_ids[text.strip()])
            assert pair in positives or pair in pair_set(content.given_negatives)
    assert not positives & pair_set(content.given_negatives)
    assert report.counts.queries == len(content.queries) == content.queries["query_id"].nunique()
    assert content.documents["doc_id"].is_unique


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200),
       prefix=st.sampled_from([b"", b'{"anchor": "a", "positive": "p"}\n',
                               b'{"query": "q", "pos": ["p"]}\n', b"anchor,positive\n"]),
       suffix=st.sampled_from([".jsonl", ".csv"]))
def test_garbage_bytes_raise_only_workbench_errors(data, prefix, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"garbage{suffix}"
        path.write_bytes(prefix + data)
        try:
            read_dataset(path)
        except WorkbenchError:
            pass


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200),
       target=st.sampled_from(["corpus.jsonl", "queries.jsonl", "qrels/train.tsv"]),
       append=st.booleans())
def test_garbage_bytes_in_a_beir_folder_raise_only_workbench_errors(data, target, append):
    with tempfile.TemporaryDirectory() as folder:
        root = write_beir(Path(folder) / "beir")
        path = root / target
        path.write_bytes((path.read_bytes() if append else b"") + data)
        try:
            read_dataset(root)
        except WorkbenchError:
            pass
