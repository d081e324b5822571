"""Shared fixtures: a real DuckDB workspace on disk and a small seeded BEIR corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.store import Store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "data" / "sample" / "dbpedia-entity-5k"

# A tiny corpus with real topical structure: each query has one labeled positive and, for some,
# an unlabeled relevant document (a planted false negative) plus unrelated distractors.
TINY_CORPUS = {
    "d1": ("Paris", "Paris is the capital and largest city of France."),
    "d2": ("Lyon", "Lyon is a large city in France, known for its cuisine."),
    "d3": ("Eiffel Tower", "The Eiffel Tower is a wrought-iron tower in Paris, France."),
    "d4": ("Berlin", "Berlin is the capital of Germany and its largest city."),
    "d5": ("Munich", "Munich is the capital of Bavaria in southern Germany."),
    "d6": ("Photosynthesis", "Photosynthesis converts light energy into chemical energy in plants."),
    "d7": ("Chlorophyll", "Chlorophyll is the green pigment plants use to absorb light."),
    "d8": ("Python", "Python is a programming language that emphasises readability."),
    "d9": ("Java", "Java is a class-based, object-oriented programming language."),
    "d10": ("Rust", "Rust is a systems programming language focused on memory safety."),
    "d11": ("Guitar", "The guitar is a fretted musical instrument with six strings."),
    "d12": ("Violin", "The violin is a bowed string instrument in the orchestra."),
}
TINY_QUERIES = {
    "q1": "What is the capital of France?",
    "q2": "capital city of Germany",
    "q3": "how do plants make energy from light",
    "q4": "memory safe programming language",
}
TINY_QRELS = [("q1", "d1", 1), ("q2", "d4", 1), ("q3", "d6", 1), ("q4", "d10", 1)]


def write_beir(root: Path, corpus=TINY_CORPUS, queries=TINY_QUERIES, qrels=TINY_QRELS,
               split: str = "train", header: bool = True) -> Path:
    """Write a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for query_id, text in queries.items():
            f.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    with open(root / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        if header:
            f.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in qrels:
            f.write(f"{q}\t{d}\t{s}\n")
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Path of a fresh (not yet created) workspace file."""
    return tmp_path / "ws.duckdb"


@pytest.fixture
def store(workspace: Path):
    """A real Store on disk, closed after the test."""
    s = Store(workspace)
    yield s
    s.close()


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """The tiny seeded corpus as a BEIR folder with split 'train'."""
    return write_beir(tmp_path / "tiny")
