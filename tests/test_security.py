"""What must not get in: SQL in names and texts, paths that leave the data folder, oversized
uploads, and a server listening beyond this machine. (Dataset text in a real browser:
tests/test_browser.py and tests/test_browser_sessions.py; sign-in: tests/pages/test_reliability.py.)"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import duckdb
import pytest

from core.cli import main
from core.datapaths import resolve_data_path, resolve_workspace_path
from core.errors import WorkbenchError
from core.store import Store
from tests.conftest import REPO, topical_corpus, write_beir

HOSTILE = "'); DROP TABLE decisions; --"
TABLES = {"datasets", "queries", "documents", "positives", "given_negatives", "models",
          "embeddings", "runs", "candidates", "decisions", "retractions", "suspicion",
          "schema_version"}


def _tables(workspace: Path) -> set[str]:
    Store(workspace).close()  # the process's shared connection; then look with plain DuckDB
    con = duckdb.connect(str(workspace), read_only=True)
    try:
        return {row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()


def test_hostile_names_ids_and_texts_through_ingest_mine_export_and_decisions(
        tmp_path, tiny_model_dir, capsys):
    corpus, queries, qrels = topical_corpus(docs_per_topic=4)
    corpus[f"d{HOSTILE}"] = (HOSTILE, f"{HOSTILE} about stars and a galaxy telescope")
    queries[f"q{HOSTILE}"] = f"telescope galaxy {HOSTILE}"
    qrels.append((f"q{HOSTILE}", f"d{HOSTILE}", 1))
    beir = write_beir(tmp_path / "beir", corpus=corpus, queries=queries, qrels=qrels)
    ws = str(tmp_path / "ws.duckdb")
    out = tmp_path / "out.jsonl"
    steps = [
        ["ingest", "--workspace", ws, "--beir", str(beir), "--name", HOSTILE],
        ["mine", "--workspace", ws, "--strategy", "top_k", "--num-negatives", "2", "--quiet",
         "--dataset", HOSTILE, "--model", str(tiny_model_dir), "--query-prompt", HOSTILE],
        ["decide", "--workspace", ws, "--query", f"q{HOSTILE}", "--doc", "astronomy-3",
         "--label", "false_negative", "--annotator", HOSTILE, "--note", HOSTILE],
        ["decide", "--workspace", ws, "--query", f"q{HOSTILE}", "--doc", "astronomy-2",
         "--label", "hard_negative", "--annotator", HOSTILE],
        ["undo", "--workspace", ws, "--annotator", HOSTILE],
        ["export", "--workspace", ws, "--format", "flag-embedding", "--out", str(out)],
        ["decisions", "export", "--workspace", ws, "--out", str(tmp_path / "d.jsonl")],
        ["decisions", "import", "--workspace", str(tmp_path / "other.duckdb"),
         "--in", str(tmp_path / "d.jsonl")],
    ]
    for args in steps:
        assert main(args) == 0, (args[0], capsys.readouterr().err)
    capsys.readouterr()
    assert _tables(Path(ws)) >= TABLES and _tables(tmp_path / "other.duckdb") >= TABLES
    with Store(ws) as store:
        assert [d.name for d in store.list_datasets()] == [HOSTILE]
        [decision] = store.latest_decisions()
        assert (decision.annotator, decision.note, decision.dataset, decision.query_id) == (
            HOSTILE, HOSTILE, HOSTILE, f"q{HOSTILE}")
        assert len(store.decision_log()) == 2
        assert store.get_run().query_prompt == HOSTILE
    with Store(tmp_path / "other.duckdb") as other:
        assert [(d.annotator, d.note) for d in other.latest_decisions()] == [(HOSTILE, HOSTILE)]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    hostile_row = next(r for r in rows if r["query_id"] == f"q{HOSTILE}")
    assert hostile_row["pos_ids"] == [f"d{HOSTILE}"] and "astronomy-3" not in hostile_row["neg_ids"]
    assert hostile_row["prompt"] == HOSTILE


def test_only_the_store_touches_sql():
    """STYLE rules 2 and 3: no module outside the core/store/ package imports duckdb or calls
    execute."""
    offenders = []
    store = REPO / "core" / "store"
    assert (store / "__init__.py").is_file()  # the exemption below must name a real package
    for path in sorted((REPO / "core").rglob("*.py")):
        if path.parent == store:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            imported = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "duckdb" for name in imported):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports duckdb")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "sql")):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} calls {node.func.attr}")
    assert offenders == []


# -- paths ----------------------------------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_beir(root / "inside")
    (root / "workspaces").mkdir()
    outside = write_beir(tmp_path / "secret")
    (root / "escape").symlink_to(outside, target_is_directory=True)  # a folder link out
    (root / "nested").mkdir()
    (root / "nested" / "deeper").symlink_to(root / "escape", target_is_directory=True)
    (root / "alias").symlink_to(root / "inside", target_is_directory=True)  # a link that stays
    return root


@pytest.mark.parametrize("typed", ["escape", "escape/corpus.jsonl", "nested/deeper",
                                   "nested/deeper/qrels/train.tsv", "nested"])
def test_symlinked_folders_cannot_lead_out_of_the_data_folder(data_dir, typed):
    with pytest.raises(WorkbenchError, match="outside the data folder|leads outside"):
        resolve_data_path(data_dir, typed)


def test_links_that_stay_inside_are_fine(data_dir):
    assert resolve_data_path(data_dir, "alias") == (data_dir / "inside").resolve()


@pytest.mark.parametrize(("typed", "message"), [
    ("{root}/../ws.duckdb", "contains '..'"),
    ("/etc/ws.duckdb", "outside the data folder"),
    ("{root}/escape/ws.duckdb", "outside the data folder"),
    ("{root}/workspaces/ws.sqlite", "must be a .duckdb file"),
    ("", "must be a .duckdb file"),
])
def test_workspace_paths_are_confined_too(data_dir, typed, message):
    with pytest.raises(WorkbenchError, match=message):
        resolve_workspace_path(data_dir, typed.format(root=data_dir))


def test_workspace_inside_and_the_configured_one_are_accepted(data_dir, tmp_path):
    inside = data_dir / "workspaces" / "w.duckdb"
    assert resolve_workspace_path(data_dir, str(inside)) == inside.resolve()
    configured = tmp_path / "elsewhere" / "server.duckdb"
    assert resolve_workspace_path(data_dir, str(configured), configured) == configured.resolve()


# -- deployment settings --------------------------------------------------------------------------
def test_uploads_are_capped_and_the_server_binds_to_localhost():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    data_page = (REPO / "app_pages" / "data.py").read_text(encoding="utf-8")
    cap = int(re.search(r"MAX_UPLOAD_MB = (\d+)", data_page).group(1))
    assert server["maxUploadSize"] == cap <= 200
    assert server.get("enableXsrfProtection", True) and server.get("enableCORS", True)
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^ADDRESS \?= 127\.0\.0\.1$", makefile, re.M)
    assert "--server.address $(ADDRESS)" in makefile
