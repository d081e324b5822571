"""Bad input at the command line: every malformed file of tests/test_ingest.py, and more, through
`python -m core ingest`: exit status 1, one line on stderr naming the file, the line or row and the
field, and no workspace written. (The app's side is in tests/pages/test_reliability.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.cli import main
from core.readers import MAX_LINE_BYTES
from core.store import Store
from tests.conftest import write_beir
from tests.test_cli import assert_one_sentence_error, run_cli
from tests.test_ingest import FILE_ERRORS, LINE_ERRORS, beir_line, pairs_csv, write_jsonl

_FLAGS = {"split": "--split", "query_column": "--query-column",
          "positive_column": "--positive-column"}


def _cli_args(path: Path, kwargs: dict) -> list[str]:
    """The ingest arguments for a builder's (path, keyword arguments)."""
    kwargs = dict(kwargs)
    fmt = kwargs.pop("format", None)
    args = [f"--{fmt}" if fmt else "--path", str(path)]
    for key, value in kwargs.items():
        args += [_FLAGS[key], str(value)]
    return args


def _bytes_file(name: str, data: bytes):
    def build(tmp_path: Path) -> tuple[Path, dict]:
        path = tmp_path / name
        path.write_bytes(data)
        return path, {}
    return build


def _huge_line(tmp_path: Path) -> tuple[Path, dict]:
    """A pairs file whose second line is longer than the reader accepts (no line breaks)."""
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as handle:
        handle.write(b'{"anchor": "a", "positive": "p"}\n{"anchor": "')
        block = b"x" * (1 << 20)
        for _ in range((MAX_LINE_BYTES >> 20) + 1):
            handle.write(block)
    return path, {}


def _truncated_corpus(tmp_path: Path) -> tuple[Path, dict]:
    root = write_beir(tmp_path / "bad")
    data = (root / "corpus.jsonl").read_bytes()
    (root / "corpus.jsonl").write_bytes(data[:-25])  # cut inside the last record
    return root, {}


def _wrong_parquet_schema(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"anchor": [["a", "b"]], "positive": [{"x": 1}]}), path)
    return path, {}


EXTRA = [
    pytest.param(_truncated_corpus, ["corpus.jsonl", "line 12", "not valid JSON"],
                 id="beir-truncated-json"),
    pytest.param(beir_line("corpus.jsonl", 4, b'\xef\xbb\xbf{"_id": "d4", "text": "x"}'),
                 ["corpus.jsonl", "line 4", "not valid JSON"], id="beir-bom-mid-file"),
    pytest.param(_bytes_file("utf16.jsonl", '{"anchor": "a", "positive": "p"}\n'.encode("utf-16")),
                 ["utf16.jsonl", "line 1", "not valid UTF-8"], id="utf16-file"),
    pytest.param(_bytes_file("empty.jsonl", b""), ["empty.jsonl", "file is empty"],
                 id="pairs-empty-file"),
    pytest.param(_bytes_file("empty.csv", b""), ["empty.csv", "file is empty"],
                 id="csv-empty-file"),
    pytest.param(_huge_line, ["huge.jsonl", "line 2", "longer than 64 MiB"], id="huge-line"),
    pytest.param(_bytes_file("twice.csv", b"anchor,anchor\na,p\n"),
                 ["twice.csv", "line 1", "header names column 'anchor' twice"],
                 id="csv-duplicate-header"),
    pytest.param(_bytes_file("deep.jsonl", b'{"anchor": ' + b"[" * 100_000 + b"\n"),
                 ["deep.jsonl", "line 1", "not valid JSON"], id="json-absurd-nesting"),
    pytest.param(_bytes_file("nan.jsonl", b'{"anchor": NaN, "positive": "p"}\n'),
                 ["nan.jsonl", "line 1", "field 'anchor' must be a string, found a number"],
                 id="json-nan"),
    pytest.param(_bytes_file("array.jsonl", b'[{"anchor": "a", "positive": "p"}]\n'),
                 ["array.jsonl", "line 1", "expected a JSON object"], id="json-array-file"),
    pytest.param(_bytes_file("fake.parquet", b"anchor,positive\na,p\n"),
                 ["fake.parquet", "not a readable Parquet file"], id="csv-named-parquet"),
    pytest.param(_wrong_parquet_schema, ["train.parquet", "column 'positive' has type struct"],
                 id="parquet-wrong-schema"),
    pytest.param(pairs_csv('anchor,positive\n"first\nsecond","say ""hi"""\n"x",\n'),
                 ["train.csv", "row 2 (line 4)", "field 'positive' is empty"],
                 id="csv-newlines-and-quotes-then-empty"),
    pytest.param(_bytes_file("notes.txt", b"hello\n"), ["notes.txt", "extension '.txt'"],
                 id="unknown-extension"),
    pytest.param(lambda t: (write_jsonl(t / "neg.jsonl", [{"anchor": "a", "positive": "p",
                                                           "negative": 7}]), {}),
                 ["neg.jsonl", "line 1", "field 'negative'"], id="pairs-negative-number"),
]


def _cases():
    for case in LINE_ERRORS + FILE_ERRORS:
        yield pytest.param(case.values[0], [], id=case.id)
    yield from EXTRA


CASES = list(_cases())


def test_there_are_at_least_thirty_malformed_inputs():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("build", "fragments"), CASES)
def test_cli_refuses_malformed_input_in_one_sentence_and_writes_nothing(
        tmp_path, capsys, build, fragments):
    path, kwargs = build(tmp_path)
    workspace = tmp_path / "ws" / "ws.duckdb"
    code = main(["ingest", "--workspace", str(workspace), *_cli_args(path, kwargs)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 1, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    message = lines[0]
    for fragment in fragments:
        assert fragment in message
    assert not workspace.exists()  # nothing half-written: not even an empty workspace


def test_bad_input_leaves_an_existing_workspace_as_it_was(tmp_path, tiny_beir):
    workspace = tmp_path / "ws.duckdb"
    assert main(["ingest", "--workspace", str(workspace), "--beir", str(tiny_beir)]) == 0
    with Store(workspace) as store:
        before = store.list_datasets(include_inactive=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"anchor": "a", "positive": "p"}\n{"anchor": "b"}\n')
    result = run_cli("ingest", "--workspace", str(workspace), "--pairs", str(bad))
    assert_one_sentence_error(result, "bad.jsonl line 2: field 'positive' is missing")
    with Store(workspace) as store:
        assert store.list_datasets(include_inactive=True) == before


def test_a_decisions_file_with_a_bad_line_imports_nothing(tmp_path, capsys):
    workspace = tmp_path / "ws.duckdb"
    good = {"query_hash": "q", "doc_hash": "d", "label": "unsure", "annotator": "ann",
            "created_at": "2025-01-02T03:04:05.000006"}
    path = tmp_path / "decisions.jsonl"
    write_jsonl(path, [good, {**good, "created_at": "2025-01-02T03:04:06"},
                       {**good, "label": "maybe"}])
    code = main(["decisions", "import", "--workspace", str(workspace), "--in", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == ("error: decisions.jsonl line 3: field 'label' is 'maybe', not "
                                 "one of hard_negative, false_negative, unsure")
    with Store(workspace) as store:
        assert store.decision_log() == []
    path.write_text(json.dumps({**good, "created_at": "yesterday"}) + "\n")
    assert main(["decisions", "import", "--workspace", str(workspace), "--in", str(path)]) == 1
    assert "line 1: field 'created_at' is not an ISO timestamp" in capsys.readouterr().err
