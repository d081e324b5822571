"""Shared fixtures: a real DuckDB workspace on disk and a small seeded BEIR corpus."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A small randomly initialised sentence-transformers model saved to a local folder.

    Stands in for "any other model" (hub downloads cannot run here); it reuses the bundled
    model's tokenizer so it loads offline.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from core.embed import bundled_model_path

    root = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    model = SentenceTransformer(modules=[Transformer(str(root / "bert"), max_seq_length=128),
                                         Pooling(32)])
    model.save(str(root / "st"))
    return root / "st"


@contextmanager
def opened_copy(workspace: tuple[Path, int], tmp_path: Path):
    """(Store, run id) on a copy of a module fixture's closed (path, run id) workspace, so one
    test's decisions never reach another; closed afterwards."""
    path, run_id = workspace
    shutil.copy(path, tmp_path / "ws.duckdb")
    store = Store(tmp_path / "ws.duckdb")
    try:
        yield store, run_id
    finally:
        store.close()


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory) -> Path:
    """A randomly initialised one-layer BERT CrossEncoder saved to a local folder (no
    cross-encoder weights can be installed here; it serves the plumbing tests)."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from core.embed import bundled_model_path

    root = tmp_path_factory.mktemp("cross-encoder") / "model"
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=1)
    BertForSequenceClassification(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    CrossEncoder(str(root), device="cpu")  # it loads as a CrossEncoder before any test uses it
    return root


def ingest_tiny(store, root: Path):
    """Ingest a BEIR folder written by write_beir (split 'train')."""
    from core.ingest import ingest

    return ingest(store, root, format="beir", split="train")


TOPICS = {
    "astronomy": ["star", "galaxy", "telescope", "orbit", "planet", "nebula", "comet"],
    "cooking": ["recipe", "oven", "flour", "sauce", "garlic", "simmer", "bake"],
    "football": ["goal", "striker", "league", "referee", "penalty", "stadium", "midfield"],
    "medicine": ["vaccine", "patient", "dose", "clinical", "symptom", "therapy", "diagnosis"],
    "finance": ["bond", "equity", "interest", "inflation", "portfolio", "dividend", "loan"],
    "music": ["melody", "chord", "orchestra", "tempo", "rhythm", "guitar", "concert"],
}


def topical_corpus(docs_per_topic: int = 10, seed: int = 0):
    """Deterministic corpus with topic structure: (corpus, queries, qrels) for write_beir.

    Each query has two labeled positives in its topic; the other docs of the topic are the
    likeliest false negatives, docs of other topics are easy negatives.
    """
    import random

    rng = random.Random(seed)
    corpus, queries, qrels = {}, {}, []
    for t, (topic, words) in enumerate(TOPICS.items()):
        for i in range(docs_per_topic):
            picked = rng.sample(words, 4)
            corpus[f"{topic}-{i}"] = (f"{topic.title()} note {i}",
                                      f"This text about {topic} mentions {', '.join(picked)}.")
        for j in range(2):
            qid = f"q-{topic}-{j}"
            queries[qid] = f"question about {topic}: {' and '.join(rng.sample(words, 2))}?"
            qrels += [(qid, f"{topic}-{2 * j}", 1), (qid, f"{topic}-{2 * j + 1}", 1)]
    return corpus, queries, qrels


@pytest.fixture
def topical_beir(tmp_path: Path) -> Path:
    corpus, queries, qrels = topical_corpus()
    return write_beir(tmp_path / "topical", corpus=corpus, queries=queries, qrels=qrels)
