"""Terms a query shares with a document, and the document as escaped HTML with those terms marked.

Dataset text is never trusted: every character of it goes through ``html.escape`` and the only
markup added is ``<mark>`` around shared terms, so ``<script>`` or ``**bold**`` in a document is
shown literally. The result is meant for ``st.html`` (no Markdown processing), inside a
``white-space: pre-wrap`` block.
"""

from __future__ import annotations

import html
import re

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through to
too under until up very was we were what when where which while who whom why will with you your
yours yourself yourselves
""".split())


def _terms(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)
            if len(w) > 1 and w.lower() not in STOPWORDS and not w.isdigit()}


def shared_terms(query: str, document: str) -> list[str]:
    """Content words (case-insensitive, stopwords and single characters left out) of either text
    whose stem the other text has too: "crossing" and "crossings" both, as BM25 matches them."""
    from core.lexical import english_stemmer

    stem = english_stemmer().stemWord
    q_words, d_words = _terms(query), _terms(document)
    shared = {stem(w) for w in q_words} & {stem(w) for w in d_words}
    return sorted(w for w in q_words | d_words if stem(w) in shared)


def highlighted_html(text: str, terms: list[str] | set[str]) -> str:
    """``text`` escaped for HTML, with whole-word occurrences of ``terms`` wrapped in ``<mark>``."""
    wanted = {t.lower() for t in terms}
    parts: list[str] = []
    last = 0
    for match in _WORD.finditer(text):
        if match.group().lower() in wanted:
            parts.append(html.escape(text[last:match.start()]))
            parts.append("<mark>" + html.escape(match.group()) + "</mark>")
            last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def text_block(text: str, terms: list[str] | set[str] = ()) -> str:
    """A ``<div>`` showing ``text`` literally (line breaks kept), shared terms marked."""
    return ('<div style="white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.95rem; '
            'line-height: 1.5">' + highlighted_html(text, terms) + "</div>")
