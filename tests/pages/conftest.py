"""App test fixtures: a data folder with the topical corpus; a workspace mined once per module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import relearning
from core.ingest import ingest
from core.mine import MineRequest, mine
from core.store import Store
from tests.conftest import REPO, topical_corpus, write_beir

APP = str(REPO / "app.py")
PAGES = ("overview", "data", "mine", "map", "margins", "review", "export")
TIMEOUT = 120  # the first mining run of a process loads the model


def write_topical(data_dir: Path) -> Path:
    """The seeded topical corpus as a BEIR folder under ``data_dir/topical``."""
    corpus, queries, qrels = topical_corpus()
    return write_beir(data_dir / "topical", corpus=corpus, queries=queries, qrels=qrels)


def seed_workspace(path: Path, data_dir: Path, strategy: str = "top_k") -> int:
    """Ingest the topical corpus into ``path`` and mine it once; returns the run id.

    The Store is left open: the app's cached Store shares this process's connection.
    """
    store = Store(path)
    ingest(store, write_topical(data_dir), format="beir", split="train")
    return mine(store, MineRequest(strategy=strategy, num_negatives=3)).run_id


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data folder for the module; the app reads it through WORKBENCH_DATA_DIR.

    At the end every workspace under it is closed (the app's cached Stores share the connection).
    """
    root = tmp_path_factory.mktemp("data")
    previous = os.environ.get("WORKBENCH_DATA_DIR")
    os.environ["WORKBENCH_DATA_DIR"] = str(root)
    yield root
    relearning.wait(timeout=120)  # no background re-learning outlives its workspace
    st.cache_resource.clear()
    st.cache_data.clear()
    for path in root.rglob("*.duckdb"):
        Store(path).close()
    if previous is None:
        os.environ.pop("WORKBENCH_DATA_DIR", None)
    else:
        os.environ["WORKBENCH_DATA_DIR"] = previous


@pytest.fixture(scope="module")
def seeded(data_dir: Path) -> Path:
    """A workspace with the topical corpus and one finished top_k run (k = 3)."""
    path = data_dir / "workspaces" / "seeded.duckdb"
    seed_workspace(path, data_dir)
    return path


def open_page(workspace: Path | str, page: str, annotator: str = "") -> AppTest:
    """Run the app on ``workspace`` and switch to ``page`` (a name from PAGES)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["workspace"] = str(workspace)
    at.session_state["annotator"] = annotator
    at.run()
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    return at
