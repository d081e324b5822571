"""Precomputed embeddings: the folder layout, its validation, and mining without a model."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InputError, WorkbenchError
from core.mine import MineRequest, mine
from core.vectors import fingerprint, id_hash, ingest_vectors
from tests.precomputed import MODEL, vector_table, write_vector_folder

PRECOMPUTED = f"precomputed:{MODEL}"


def test_vectors_without_texts_are_ingested_and_mined_without_a_model(store, tmp_path):
    report = ingest_vectors(store, write_vector_folder(tmp_path / "v"))
    assert not report.texts and report.dim == 16 and report.vectors_added == 340
    assert report.fingerprint == fingerprint(MODEL) and report.vectors_normalized == 0
    docs = store.dataset_frame(report.dataset.dataset_id, "documents")
    assert len(docs) == 300 and (docs["text"] == "").all()
    assert docs["text_hash"].iloc[0] == id_hash("document", docs["doc_id"].iloc[0])
    run = mine(store, MineRequest(strategy="curated", model=PRECOMPUTED, num_negatives=3))
    assert run.model == MODEL and run.model_fp == fingerprint(MODEL)
    assert run.filter_counts["selected"] == 40 * 3 and run.search["index"] == "flat"
    signals = json.loads(store.run_candidates(run.run_id)["signals"].iloc[0])
    assert "lexical" not in signals and "relative_score" in signals  # no texts: no BM25


def test_npy_rows_follow_the_texts_and_key_the_cache_by_text(store, tmp_path):
    report = ingest_vectors(store, write_vector_folder(tmp_path / "t", texts=True), name="npy")
    assert report.texts and report.dataset.name == "npy"
    docs = store.dataset_frame(report.dataset.dataset_id, "documents")
    matrix, found = store.vector_matrix(fingerprint(MODEL), "", docs["text_hash"].tolist())
    expected = np.load(tmp_path / "t" / "corpus.npy")
    row = {d: i for i, d in enumerate(f"d{i}" for i in range(300))}
    assert found.all()
    np.testing.assert_allclose(matrix, expected[[row[d] for d in docs["doc_id"]]], atol=1e-6)
    run = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=2))
    assert run.status == "done"


def test_unit_length_is_enforced_and_reported(store, tmp_path):
    root = write_vector_folder(tmp_path / "v")
    table = pq.read_table(root / "queries.vectors.parquet")
    vectors = np.array(table.column("vector").to_pylist(), dtype=np.float32) * 3.0
    pq.write_table(vector_table(table.column("id").to_pylist(), vectors),
                   root / "queries.vectors.parquet")
    report = ingest_vectors(store, root)
    assert report.vectors_normalized == 40 and "normalised" in report.warnings[-1]
    queries = store.dataset_frame(report.dataset.dataset_id, "queries")
    matrix, _ = store.vector_matrix(fingerprint(MODEL), "", queries["text_hash"].tolist())
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


def _break(root, name, table):
    pq.write_table(table, root / name)


@pytest.mark.parametrize("breakage, message", [
    ("no_manifest", "embeddings.json: not found"),
    ("no_vector_column", "corpus.vectors.parquet: has no column 'vector' (it has: id, emb)"),
    ("ragged", "corpus.vectors.parquet row 3 (id 'd2'): has 15 values where row 1 has 16"),
    ("duplicate", "corpus.vectors.parquet row 2 (id 'd0'): repeats the id of row 1"),
    ("nan", "queries.vectors.parquet row 1 (id 'q0'): holds NaN or infinite values"),
    ("zero", "corpus.vectors.parquet row 1 (id 'd0'): is all zeros"),
    ("dims", "queries.vectors.parquet: holds 8-dimensional vectors but corpus.vectors.parquet "
             "holds 16-dimensional ones"),
    ("declared_dim", "corpus.vectors.parquet: holds 16-dimensional vectors but embeddings.json "
                     "declares dim 384"),
    ("unknown_doc", "qrels/train.tsv line 2: document 'd0' is not in corpus.jsonl"),
])
def test_each_problem_is_one_sentence_and_nothing_is_written(store, tmp_path, breakage, message):
    root = write_vector_folder(tmp_path / "v", n_docs=20, n_queries=4)
    docs = pq.read_table(root / "corpus.vectors.parquet")
    ids, vectors = docs.column("id").to_pylist(), np.array(docs.column("vector").to_pylist())
    if breakage == "no_manifest":
        (root / "embeddings.json").unlink()
    elif breakage == "no_vector_column":
        _break(root, "corpus.vectors.parquet", docs.rename_columns(["id", "emb"]))
    elif breakage == "ragged":
        rows = [list(v) for v in vectors]
        rows[2] = rows[2][:15]
        _break(root, "corpus.vectors.parquet", pa.table({
            "id": ids, "vector": pa.array(rows, pa.list_(pa.float32()))}))
    elif breakage == "duplicate":
        _break(root, "corpus.vectors.parquet", vector_table(["d0", "d0", *ids[2:]], vectors))
    elif breakage == "nan":
        queries = pq.read_table(root / "queries.vectors.parquet")
        qv = np.array(queries.column("vector").to_pylist())
        qv[0, 3] = np.nan
        _break(root, "queries.vectors.parquet", vector_table(queries.column("id").to_pylist(), qv))
    elif breakage == "zero":
        vectors[0] = 0
        _break(root, "corpus.vectors.parquet", vector_table(ids, vectors))
    elif breakage == "dims":
        queries = pq.read_table(root / "queries.vectors.parquet")
        qv = np.array(queries.column("vector").to_pylist())[:, :8]
        _break(root, "queries.vectors.parquet", vector_table(queries.column("id").to_pylist(), qv))
    elif breakage == "declared_dim":
        (root / "embeddings.json").write_text(json.dumps({"model": MODEL, "dim": 384}))
    elif breakage == "unknown_doc":
        _break(root, "corpus.vectors.parquet", vector_table(ids[1:], vectors[1:]))
        (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")
        message = "qrels/train.tsv line 2: document 'd0' is not in corpus.vectors.parquet"
    with pytest.raises(InputError) as err:
        ingest_vectors(store, root)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert store.list_datasets() == [] and store.count_vectors() == 0


def test_npy_row_count_must_match_the_texts(store, tmp_path):
    root = write_vector_folder(tmp_path / "t", n_docs=20, n_queries=4, texts=True)
    np.save(root / "corpus.npy", np.load(root / "corpus.npy")[:19])
    with pytest.raises(InputError, match="corpus.npy: has 19 rows but corpus.jsonl has 20 "
                                         "records; row i must be the vector of record i"):
        ingest_vectors(store, root)


def test_one_name_means_one_model(store, tmp_path):
    ingest_vectors(store, write_vector_folder(tmp_path / "a", n_docs=20, n_queries=4))
    other = write_vector_folder(tmp_path / "b", n_docs=20, n_queries=4, seed=1)
    with pytest.raises(WorkbenchError, match="already holds different vectors for 20 texts"):
        ingest_vectors(store, other)
    assert len(store.list_datasets()) == 1


def test_mining_names_the_precomputed_models_there_are(store, tmp_path):
    ingest_vectors(store, write_vector_folder(tmp_path / "v", n_docs=20, n_queries=4))
    with pytest.raises(WorkbenchError, match="no precomputed vectors named 'nope' .precomputed "
                                             "models there: 'test-vectors'"):
        mine(store, MineRequest(strategy="top_k", model="precomputed:nope"))
    with pytest.raises(WorkbenchError, match="leave the query and document prompts empty"):
        mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, query_prompt="query: "))
    with pytest.raises(WorkbenchError, match="BM25.* needs document texts"):
        mine(store, MineRequest(strategy="bm25", model=PRECOMPUTED))


def test_above_the_exact_limit_an_ivf_index_is_tuned_and_its_recall_stored(store, tmp_path,
                                                                            monkeypatch):
    import core.search

    monkeypatch.setattr(core.search, "EXACT_LIMIT", 100)
    ingest_vectors(store, write_vector_folder(tmp_path / "v", n_docs=2000, n_queries=60))
    run = mine(store, MineRequest(strategy="top_k", model=PRECOMPUTED, num_negatives=3,
                                  pool_depth=50))
    assert run.search["index"] == "ivf" and run.search["nlist"] == 45
    assert run.search["recall"] >= 0.95 and run.search["sample"] == 60
    # Widening past the first depth searches exhaustively: never a padded (-1) candidate.
    strict = mine(store, MineRequest(strategy="positive_aware", model=PRECOMPUTED,
                                     num_negatives=3, pool_depth=10, reuse_pool=False,
                                     params={"mode": "absolute", "threshold": 0.2}))
    pool = store.run_candidates(strict.run_id)
    assert strict.filter_counts["widened_queries"] > 0 and pool["doc_id"].notna().all()
    assert pool.groupby("query_id")["doc_id"].nunique().min() >= 10


def test_the_command_line_ingests_vectors_and_mines_them(tmp_path, capsys):
    from core.cli import main

    ws = str(tmp_path / "cli.duckdb")
    folder = str(write_vector_folder(tmp_path / "v", n_docs=60, n_queries=6))
    assert main(["ingest", "--workspace", ws, "--vectors", folder]) == 0
    out = capsys.readouterr().out
    assert "precomputed vectors of 'test-vectors', 16 dimensions, no texts" in out
    assert f"--model {PRECOMPUTED}" in out
    assert main(["mine", "--workspace", ws, "--model", PRECOMPUTED, "--quiet"]) == 0
    assert "search: flat index (exact)" in capsys.readouterr().out
    assert main(["mine", "--workspace", ws, "--model", PRECOMPUTED, "--quiet",
                 "--param", "max_suspicion=0.7"]) == 0
    assert "re-used the stored pool of run 1 (no search)" in capsys.readouterr().out
    assert main(["ingest", "--workspace", ws, "--vectors", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
