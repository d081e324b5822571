"""core.lexical: BM25 with bm25s's numpy backend, without loading numba."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.lexical import LexicalIndex

DOCS = ["zebra stripes are black and white", "zebra crossings help pedestrians cross roads",
        "the savanna is home to many animals", "pedestrians and traffic lights",
        "an unrelated note about cooking pasta"]

FRESH = r"""
import json, sys
sys.path.insert(0, {repo!r})
from core.lexical import LexicalIndex
index = LexicalIndex({docs!r})
scores, ids = index.search(["zebra crossings pedestrians"], 2)
loaded = "numba" in sys.modules or "llvmlite" in sys.modules
import numba  # still importable afterwards (UMAP needs it)
print(json.dumps({{"numba_loaded": loaded, "ids": ids[0].tolist()}}))
"""


def test_bm25_runs_without_loading_numba():
    """bm25s imports numba (and LLVM, ~130 MB) only for a backend we do not use; a fresh process
    that builds and searches an index never loads it, and can still import it later."""
    repo = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", FRESH.format(repo=repo, docs=DOCS)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"numba_loaded": False, "ids": [1, 3]}


def test_score_pairs_agrees_with_a_full_search():
    index = LexicalIndex(DOCS)
    scores, ids = index.search(["pedestrians crossing zebra"], len(DOCS))
    pairs = index.score_pairs("pedestrians crossing zebra", ids[0])
    np.testing.assert_allclose(pairs, scores[0], rtol=1e-5)
    assert scores[0][0] > scores[0][-1] == 0.0


def test_inflections_of_a_query_word_match():
    """Documents and queries are stemmed alike: a query's "crossing" finds "crossings", "states"
    finds "state", and a word sharing no stem still scores nothing."""
    index = LexicalIndex(DOCS + ["which state was admitted last to the union"])
    scores = index.score_pairs("zebra crossing", np.arange(len(DOCS) + 1))
    assert scores[1] > scores[0] > 0 and scores[3] == 0
    states = index.score_pairs("states", np.arange(len(DOCS) + 1))
    assert states[-1] > 0 and (states[:-1] == 0).all()


def test_each_thread_gets_its_own_stemmer():
    """A stemmer keeps per-instance state; the app's sessions are threads of one process."""
    import threading

    from core.lexical import english_stemmer

    seen = []
    worker = threading.Thread(target=lambda: seen.append(english_stemmer()))
    worker.start()
    worker.join()
    assert english_stemmer() is english_stemmer() and seen[0] is not english_stemmer()
    assert seen[0].stemWord("crossings") == english_stemmer().stemWord("crossings") == "cross"
