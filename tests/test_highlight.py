"""Shared terms and the escaped, marked-up text block of the review card."""

from __future__ import annotations

from core.highlight import highlighted_html, shared_terms, text_block

PAYLOAD = ('<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> **bold** '
           '[link](javascript:alert(1))')


def test_shared_terms_skip_stopwords_case_and_single_characters():
    assert shared_terms("What is the capital of France?", "Paris is the capital of FRANCE.") == [
        "capital", "france"]
    assert shared_terms("a b c", "a b c") == []


def test_shared_terms_match_inflections_as_bm25_does():
    """Words sharing a stem are marked on both sides, so the card shows what BM25 matched."""
    assert shared_terms("zebra crossing rules", "Zebra crossings help pedestrians") == [
        "crossing", "crossings", "zebra"]
    assert shared_terms("which states", "the state of the union") == ["state", "states"]


def test_markup_in_text_is_escaped_and_only_marks_are_added():
    out = highlighted_html(PAYLOAD, ["script", "bold"])
    assert "<script>" not in out and "<img" not in out
    assert "&lt;<mark>script</mark>&gt;" in out
    assert "onerror=&quot;window.__xss=2&quot;" in out
    assert "**<mark>bold</mark>**" in out  # Markdown stays literal: st.html does not render it
    stripped = out.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in stripped.replace("&lt;", "")


def test_marks_whole_words_only():
    assert highlighted_html("cat catalog Cat", ["cat"]) == (
        "<mark>cat</mark> catalog <mark>Cat</mark>")


def test_text_block_keeps_line_breaks_literal():
    block = text_block("line one\n<b>two</b>")
    assert block.startswith('<div style="white-space: pre-wrap')
    assert "line one\n&lt;b&gt;two&lt;/b&gt;" in block
