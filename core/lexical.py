"""BM25 retrieval with bm25s (lexical candidates and lexical evidence)."""

from __future__ import annotations

import sys
import threading
from typing import Sequence

import numpy as np


def _import_bm25s():
    """bm25s, imported without numba unless numba is loaded already.

    bm25s imports numba (and LLVM: about 130 MB resident) at import time for its optional numba
    backend only; ``BM25()`` runs the numpy backend, which never calls it. Hiding numba while
    bm25s imports keeps a ``mine`` process that lexical evidence needs that much smaller (issue 5,
    target 3: peak memory against sentence-transformers). Where numba is already loaded (the app
    imports it for UMAP) bm25s is imported as it is.
    """
    if "bm25s" in sys.modules or "numba" in sys.modules:
        import bm25s
        return bm25s
    sys.modules["numba"] = None  # makes "import numba" raise ImportError, which bm25s catches
    try:
        import bm25s
    finally:
        if sys.modules.get("numba", 0) is None:
            del sys.modules["numba"]
    return bm25s


_stemmers = threading.local()


def english_stemmer():
    """Snowball's English stemmer (PyStemmer, the one bm25s documents): "states" and "state",
    "crossings" and "crossing" become one term, as in the English analyzers BM25 baselines use.

    One per thread: a PyStemmer stemmer keeps per-instance state (its word cache) and is not
    documented as safe to share, and the app's sessions (and a mining run beside them) are
    threads of one process.
    """
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        import Stemmer

        stemmer = _stemmers.english = Stemmer.Stemmer("english")
    return stemmer


class LexicalIndex:
    """A BM25 index over documents (lower-cased, English stopwords removed, Snowball-stemmed).

    Stemming lifts BM25's evidence that a candidate is an unlabeled positive on every shared
    dataset (bench/RESULTS.md, "Cold suspicion, session 5"); documents and queries go through the
    same tokenizer, so a query's inflection matches a document's.
    """

    def __init__(self, doc_texts: Sequence[str]) -> None:
        bm25s = _import_bm25s()
        self._bm25s = bm25s
        corpus_tokens = bm25s.tokenize(list(doc_texts), stopwords="en", stemmer=english_stemmer(),
                                       show_progress=False)
        self._vocab = corpus_tokens.vocab
        self._retriever = bm25s.BM25()
        self._retriever.index(corpus_tokens, show_progress=False)
        self.n_docs = len(doc_texts)
        # score_pairs reads the token postings directly when they are sorted by document (bm25s
        # builds them so), costing O(query tokens x candidates) instead of O(corpus) per query.
        indices, indptr = self._retriever.scores["indices"], self._retriever.scores["indptr"]
        steps = np.diff(indices.astype(np.int64))
        starts = indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < len(indices))] - 1
        steps[starts] = 1  # a new token's postings may start lower
        self._sorted_postings = bool((steps > 0).all()) if len(steps) else True

    def query_token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's tokens as ids of the index's vocabulary (unknown tokens dropped)."""
        tokens = self._bm25s.tokenize(list(texts), stopwords="en", stemmer=english_stemmer(),
                                      return_ids=False, show_progress=False)
        return [[self._vocab[t] for t in toks if t in self._vocab] for toks in tokens]

    def search(self, query_texts: Sequence[str], depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, doc indices), each (n_queries, depth), best first."""
        depth = min(depth, self.n_docs)
        scores = np.zeros((len(query_texts), depth), dtype=np.float32)
        ids = np.zeros((len(query_texts), depth), dtype=np.int64)
        for row, token_ids in enumerate(self.query_token_ids(query_texts)):
            s = self._retriever.get_scores(token_ids) if token_ids else np.zeros(self.n_docs)
            top = np.argsort(-s, kind="stable")[:depth]
            ids[row] = top
            scores[row] = s[top]
        return scores, ids

    def score_pairs(self, query_text: str, doc_indices: np.ndarray) -> np.ndarray:
        """Return the BM25 score of one query against the given documents."""
        return self.score_tokens(self.query_token_ids([query_text])[0], doc_indices)

    def score_tokens(self, token_ids: list[int], doc_indices: np.ndarray) -> np.ndarray:
        """``score_pairs`` for a query already tokenized (``query_token_ids``)."""
        if not token_ids:
            return np.zeros(len(doc_indices), dtype=np.float32)
        if not self._sorted_postings:
            return self._retriever.get_scores(token_ids)[doc_indices].astype(np.float32)
        scores = self._retriever.scores
        data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
        docs = np.asarray(doc_indices, dtype=np.int64)
        out = np.zeros(len(docs), dtype=np.float64)
        for token in token_ids:
            lo, hi = int(indptr[token]), int(indptr[token + 1])
            if hi <= lo:
                continue
            at = np.minimum(np.searchsorted(indices[lo:hi], docs), hi - lo - 1)
            hit = indices[lo + at] == docs
            out[hit] += data[lo + at[hit]]
        extra = self._retriever.nonoccurrence_array
        if extra is not None:
            out += float(extra[np.asarray(token_ids)].sum())
        return out.astype(np.float32)
