"""STYLE rule 1 and the app's house rules, checked on the source: thin pages, pure core, keyed
widgets, no dataset text through Markdown or unsafe HTML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

APP_FILES = sorted([REPO / "app.py", *(REPO / "app_pages").glob("*.py")])
CORE_FILES = sorted((REPO / "core").rglob("*.py"))
FORBIDDEN_IN_PAGES = {"duckdb", "faiss", "sentence_transformers", "torch"}
WIDGETS = {"button", "text_input", "text_area", "selectbox", "multiselect", "radio", "checkbox",
           "toggle", "slider", "select_slider", "number_input", "file_uploader",
           "download_button", "plotly_chart", "data_editor", "pills", "segmented_control"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: p.name)
def test_pages_never_touch_the_database_or_models(path):
    assert not _imports(path) & FORBIDDEN_IN_PAGES
    text = path.read_text(encoding="utf-8")
    assert ".execute(" not in text and "SELECT " not in text


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_streamlit(path):
    assert "streamlit" not in _imports(path)


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: p.name)
def test_every_widget_has_a_key(path):
    missing = [f"line {c.lineno}: {c.func.attr}" for c in _calls(path)
               if c.func.attr in WIDGETS and not any(k.arg == "key" for k in c.keywords)]
    assert not missing


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: p.name)
def test_no_unsafe_html_and_html_only_from_the_escaping_helper(path):
    for call in _calls(path):
        assert not any(k.arg == "unsafe_allow_html" for k in call.keywords), call.lineno
        if call.func.attr == "html":
            (arg,) = call.args
            assert isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "text_block", \
                f"line {call.lineno}: st.html must take core.highlight.text_block(...)"
