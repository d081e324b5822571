"""Every page renders without an exception: on a seeded workspace, an empty one, a missing one."""

from __future__ import annotations

import pytest

from core.store import Store
from tests.pages.conftest import PAGES, open_page


@pytest.mark.parametrize("page", PAGES)
def test_page_on_a_seeded_workspace(seeded, page):
    at = open_page(seeded, page, annotator="alice")
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value


@pytest.mark.parametrize("page", PAGES)
def test_page_on_a_missing_workspace_says_so(data_dir, page):
    at = open_page(data_dir / "nowhere.duckdb", page, annotator="alice")
    assert not at.exception
    messages = [e.value for e in at.error] + [i.value for i in at.info]
    assert messages, "a missing workspace must be explained on the page"


@pytest.mark.parametrize("page", PAGES)
def test_page_on_an_empty_workspace_says_what_to_do(data_dir, page):
    path = data_dir / "workspaces" / "empty.duckdb"
    Store(path)
    at = open_page(path, page, annotator="alice")
    assert not at.exception
    if page != "data":  # the Data page offers the import form instead
        assert [e.value for e in at.error] + [i.value for i in at.info]


def test_review_without_an_annotator_asks_for_a_name(seeded):
    at = open_page(seeded, "review")
    assert not at.exception
    assert "Annotator" in at.error[0].value
    assert not at.button  # no decision can be made without a name

