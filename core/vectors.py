"""Precomputed embeddings: vectors made elsewhere (a GPU, another library), ingested into the cache.

Layout: a BEIR-like folder whose vectors lie next to the texts.

    embeddings.json            {"model": "NAME"} declares the model; optional "dim" is checked
    corpus.vectors.parquet     columns ``id`` (string) and ``vector`` (list<float>, one length)
    queries.vectors.parquet    the same for queries
      or corpus.npy / queries.npy: a 2-D float array whose row i is the i-th record of
      corpus.jsonl / queries.jsonl (so .npy needs the texts beside it)
    corpus.jsonl, queries.jsonl  BEIR texts; optional with Parquet: without them the dataset has
                               no texts (mining works; BM25 evidence and text views do not)
    qrels/<split>.tsv          query-id, corpus-id, score, as in BEIR

Vectors are L2-normalised and stored in the embedding cache under the model fingerprint
``precomputed:NAME`` with empty prompts, keyed by each text's content hash (a hash of the id for
datasets without texts), so ``mine --model precomputed:NAME`` uses them and never loads a model.
Everything is validated before anything is written; each problem is one sentence naming the file,
the row and the id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.collector import DatasetCollector
from core.errors import InputError, WorkbenchError
from core.ingest import _beir_split, _read_qrels, read_dataset
from core.readers import field_id, jsonl_records
from core.store import DatasetContent, DatasetInfo, Store
from core.text import text_hash

PREFIX = "precomputed:"
MANIFEST = "embeddings.json"
# kind -> (vector file stem, texts file)
KINDS = {"documents": ("corpus", "corpus.jsonl"), "queries": ("queries", "queries.jsonl")}
NORM_TOLERANCE = 1e-3
_NOUN = {"doc_id": "document", "query_id": "query"}
WRITE_CHUNK = 200_000


@dataclass(frozen=True)
class PrecomputedModel:
    """A model known only by its vectors: ``fingerprint`` is ``precomputed:NAME``."""

    name: str
    fingerprint: str
    dim: int


@dataclass(frozen=True)
class VectorIngestReport:
    """What ``ingest_vectors`` wrote.

    Attributes:
        dataset: the written dataset version.
        model: the declared model name; ``fingerprint`` its cache key (``precomputed:NAME``).
        texts: whether the dataset has texts (False: vectors and ids only).
        vectors_added: cache rows written (vectors already cached are not written twice).
        vectors_normalized: input vectors whose L2 norm was not 1 (they were normalised).
    """

    dataset: DatasetInfo
    model: str
    fingerprint: str
    dim: int
    texts: bool
    vectors_added: int
    vectors_normalized: int
    warnings: tuple[str, ...]


def is_precomputed(model: str | None) -> bool:
    """Whether a ``--model`` value names precomputed vectors (``precomputed:NAME``)."""
    return bool(model) and model.startswith(PREFIX)


def fingerprint(name: str) -> str:
    """The embedding-cache key of precomputed model ``name``."""
    return PREFIX + name


def id_hash(kind: str, item_id: str) -> str:
    """The cache key of a text-less item: a hash of its kind and id (never equal to a text's)."""
    return text_hash(f"\x00{kind}\x00{item_id}")


# -- reading -------------------------------------------------------------------------------------
def read_manifest(folder: Path) -> tuple[str, int | None]:
    """Return (model name, declared dim or None) from ``embeddings.json``."""
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(MANIFEST, None, f"not found in {folder}; it declares the vectors' model, "
                         'e.g. {"model": "bge-small-en-v1.5"}')
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(MANIFEST, None, f"is not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise InputError(MANIFEST, None, "must hold a JSON object with a 'model' field")
    name = manifest.get("model")
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise InputError(MANIFEST, None, f"field 'model' must be a non-empty name without "
                         f"surrounding spaces, found {name!r}")
    dim = manifest.get("dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise InputError(MANIFEST, None, f"field 'dim' must be a positive integer, found {dim!r}")
    return name, dim


def _row(ids: Sequence[str], i: int) -> str:
    return f"row {i + 1} (id {ids[i]!r})"


def read_parquet_vectors(path: Path, display: str) -> tuple[list[str], np.ndarray]:
    """Read and check an id + vector Parquet file; return (ids, float32 matrix).

    Read batch by batch into one preallocated matrix, so a 1M x 384 file costs its 1.5 GB once.
    """
    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(display, None, f"could not be read as Parquet ({err})") from err
    names = handle.schema_arrow.names
    for column in ("id", "vector"):
        if column not in names:
            raise InputError(display, None, f"has no column {column!r} (it has: {', '.join(names)})")
    id_type, vector_type = (handle.schema_arrow.field(c).type for c in ("id", "vector"))
    if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)
            or pa.types.is_integer(id_type)):
        raise InputError(display, None, f"column 'id' must hold strings, found {id_type}")
    if not (pa.types.is_list(vector_type) or pa.types.is_large_list(vector_type)
            or pa.types.is_fixed_size_list(vector_type)) or not pa.types.is_floating(
            vector_type.value_type):
        raise InputError(display, None, f"column 'vector' must be a list of floats, found "
                         f"{vector_type}")
    n = handle.metadata.num_rows
    if not n:
        raise InputError(display, None, "holds no rows")
    ids: list[str] = []
    matrix: np.ndarray | None = None
    for batch in handle.iter_batches(batch_size=65_536, columns=["id", "vector"]):
        start = len(ids)
        raw_ids = batch.column(0).to_pylist()
        if batch.column(0).null_count:
            first = next(i for i, v in enumerate(raw_ids) if v is None)
            raise InputError(display, f"row {start + first + 1}", "has no id")
        ids += [str(v) for v in raw_ids]
        vectors = batch.column(1)
        if vectors.null_count:
            first = int(np.flatnonzero(vectors.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(display, _row(ids, start + first), "has no vector")
        lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if matrix is None else matrix.shape[1]
        odd = np.flatnonzero(lengths != width)
        if len(odd):
            raise InputError(display, _row(ids, start + int(odd[0])), f"has {lengths[odd[0]]} "
                             f"values where row 1 has {width}")
        if width == 0:
            raise InputError(display, _row(ids, 0), "has an empty vector")
        flat = pc.list_flatten(vectors)
        if flat.null_count:
            bad = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(display, _row(ids, start + bad // width), "holds a null value")
        if matrix is None:
            matrix = np.empty((n, width), dtype=np.float32)
        matrix[start:len(ids)] = flat.to_numpy(zero_copy_only=False).reshape(-1, width)
    return ids, matrix


def _jsonl_ids(path: Path, display: str) -> list[str]:
    return [field_id(record, display, "_id") for record in jsonl_records(path, display)]


def read_npy_vectors(path: Path, display: str, ids: list[str], ids_display: str) -> np.ndarray:
    """Read a 2-D .npy whose row i belongs to ``ids[i]`` (the texts file's order)."""
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(display, None, f"could not be read as a .npy array ({err})") from err
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise InputError(display, None, f"must be a 2-D float array, found shape {matrix.shape} "
                         f"of {matrix.dtype}")
    if matrix.shape[0] != len(ids):
        raise InputError(display, None, f"has {matrix.shape[0]} rows but {ids_display} has "
                         f"{len(ids)} records; row i must be the vector of record i")
    return np.asarray(matrix, dtype=np.float32)


def _check_values(ids: list[str], matrix: np.ndarray, display: str) -> tuple[np.ndarray, int]:
    """Refuse duplicate ids, non-finite and zero vectors; return (the normalised vectors, how many
    were not unit length)."""
    seen: dict[str, int] = {}
    for i, item in enumerate(ids):
        if item in seen:
            raise InputError(display, _row(ids, i), f"repeats the id of row {seen[item] + 1}")
        seen[item] = i
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise InputError(display, _row(ids, int(np.flatnonzero(~finite)[0])),
                         "holds NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1)
    if (norms == 0).any():
        raise InputError(display, _row(ids, int(np.flatnonzero(norms == 0)[0])),
                         "is all zeros and cannot be normalised")
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        if not matrix.flags.writeable:
            matrix = matrix.copy()
        matrix /= norms[:, None].astype(np.float32)
    return matrix, int(off.sum())


@dataclass(frozen=True)
class _Vectors:
    ids: list[str]
    matrix: np.ndarray
    display: str
    normalized: int


def _read_kind(folder: Path, kind: str) -> _Vectors:
    """The vectors of one kind (documents or queries), from Parquet or from .npy + texts."""
    stem, texts_file = KINDS[kind]
    parquet, npy = folder / f"{stem}.vectors.parquet", folder / f"{stem}.npy"
    if parquet.is_file() and npy.is_file():
        raise InputError(folder.name, None, f"holds both {parquet.name} and {npy.name}; keep one")
    if parquet.is_file():
        ids, matrix = read_parquet_vectors(parquet, parquet.name)
        display = parquet.name
    elif npy.is_file():
        if not (folder / texts_file).is_file():
            raise InputError(npy.name, None, f"needs {texts_file} beside it: its rows follow the "
                             f"order of {texts_file}")
        ids = _jsonl_ids(folder / texts_file, texts_file)
        matrix = read_npy_vectors(npy, npy.name, ids, texts_file)
        display = npy.name
    else:
        raise InputError(folder.name, None, f"has no {parquet.name} or {npy.name} (the {kind}' "
                         "vectors)")
    matrix, normalized = _check_values(ids, matrix, display)
    return _Vectors(ids, matrix, display, normalized)


# -- the dataset -------------------------------------------------------------------------------
def _textless_content(folder: Path, split: str | None, name: str, docs: _Vectors,
                      queries: _Vectors) -> tuple[DatasetContent, list[str]]:
    """A dataset of ids only: qrels validated against the vectors' ids, as BEIR does."""
    collector = DatasetCollector()
    collector.queries = dict.fromkeys(queries.ids, "")
    collector.documents = dict.fromkeys(docs.ids, (None, ""))
    split = _beir_split(folder, split)
    display = f"qrels/{split}.tsv"
    try:
        _read_qrels(folder / "qrels" / f"{split}.tsv", display, collector, set())
    except InputError as err:  # BEIR's reader names the texts files; here the ids come from these
        detail = err.detail.replace("corpus.jsonl", docs.display).replace(
            "queries.jsonl", queries.display)
        raise InputError(err.source, err.where, detail) from err
    if not collector.positives:
        raise InputError(display, None, "gives no positive pair, so the dataset would be empty")
    positives = pd.DataFrame({
        "query_id": pd.Series([q for q, _ in collector.positives], dtype="string"),
        "doc_id": pd.Series([d for _, d in collector.positives], dtype="string"),
        "grade": pd.Series([g for g, _ in collector.positives.values()], dtype="int64"),
        "source": pd.Series(["qrels"] * len(collector.positives), dtype="string"),
    })
    kept = pd.Series(queries.ids, dtype="string")
    kept = kept[kept.isin(positives["query_id"])].reset_index(drop=True)
    warnings = []
    if len(kept) < len(queries.ids):
        warnings.append(f"{len(queries.ids) - len(kept)} queries have no positive in {display} "
                        "and were dropped")
    content = DatasetContent(
        name=name, format="vectors", source=str(folder.resolve()), split=split,
        queries=pd.DataFrame({"query_id": kept, "text": pd.Series([""] * len(kept), dtype="string"),
                              "text_hash": pd.Series([id_hash("query", q) for q in kept],
                                                     dtype="string")}),
        documents=pd.DataFrame({
            "doc_id": pd.Series(docs.ids, dtype="string"),
            "title": pd.Series([None] * len(docs.ids), dtype="string"),
            "text": pd.Series([""] * len(docs.ids), dtype="string"),
            "text_hash": pd.Series([id_hash("document", d) for d in docs.ids], dtype="string")}),
        positives=positives,
        given_negatives=pd.DataFrame({c: pd.Series([], dtype="string")
                                      for c in ("query_id", "doc_id", "source")}),
    )
    return content, warnings


def _align(vectors: _Vectors, frame: pd.DataFrame, id_column: str, texts_file: str,
           all_ids: set[str] | None) -> np.ndarray:
    """Rows of ``vectors.matrix`` in the order of ``frame``; every row needs a vector."""
    position = pd.Series(np.arange(len(vectors.ids)), index=pd.Index(vectors.ids))
    wanted = frame[id_column].astype(str)
    rows = position.reindex(wanted).to_numpy()
    missing = np.flatnonzero(pd.isna(rows))
    if not len(missing) and len(rows) == len(vectors.ids) and all_ids is None and (
            rows == np.arange(len(rows))).all():
        return vectors.matrix  # already in the dataset's order: no copy
    if len(missing):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(vectors.display, None, f"has no vector for {_NOUN[id_column]} "
                         f"{wanted.iloc[missing[0]]!r} of {texts_file}{more}")
    if all_ids is not None:
        unknown = [i for i in vectors.ids if i not in all_ids]
        if unknown:
            raise InputError(vectors.display, None, f"names {_NOUN[id_column]} {unknown[0]!r} "
                             f"which is not in {texts_file}")
    return vectors.matrix[rows.astype(np.int64)]


def ingest_vectors(store: Store, path: str | Path, split: str | None = None,
                   name: str | None = None) -> VectorIngestReport:
    """Validate a precomputed-embeddings folder, then write its dataset and vectors.

    Args:
        path: the folder (see the module docstring for its layout).
        split: the qrels split; needed when the folder holds several.
        name: the dataset's name (default: the folder's name).

    Raises:
        InputError: any invalid input (names the file, row and id), before anything is written.
        WorkbenchError: the workspace already holds different vectors under the same model name.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(folder.name or str(folder), None, "is not a folder; precomputed "
                         "embeddings are a folder with embeddings.json and the vector files")
    model, declared_dim = read_manifest(folder)
    docs, queries = _read_kind(folder, "documents"), _read_kind(folder, "queries")
    dim = docs.matrix.shape[1]
    if queries.matrix.shape[1] != dim:
        raise InputError(queries.display, None, f"holds {queries.matrix.shape[1]}-dimensional "
                         f"vectors but {docs.display} holds {dim}-dimensional ones")
    if declared_dim is not None and declared_dim != dim:
        raise InputError(docs.display, None, f"holds {dim}-dimensional vectors but {MANIFEST} "
                         f"declares dim {declared_dim}")
    dataset_name = name or folder.resolve().name
    warnings: list[str] = []
    has_texts = (folder / "corpus.jsonl").is_file()
    if has_texts:
        content, report = read_dataset(folder, format="beir", split=split, name=dataset_name)
        warnings += report.warnings
        doc_matrix = _align(docs, content.documents, "doc_id", "corpus.jsonl",
                            set(_jsonl_ids(folder / "corpus.jsonl", "corpus.jsonl")))
        query_matrix = _align(queries, content.queries, "query_id", "queries.jsonl",
                              set(_jsonl_ids(folder / "queries.jsonl", "queries.jsonl")))
    else:
        content, more = _textless_content(folder, split, dataset_name, docs, queries)
        warnings += more
        doc_matrix = _align(docs, content.documents, "doc_id", docs.display, None)
        query_matrix = _align(queries, content.queries, "query_id", queries.display, None)
    normalized = docs.normalized + queries.normalized
    if normalized:
        warnings.append(f"{normalized} vectors were not unit length and were normalised "
                        "(cosine similarity is what mining uses)")
    fp = fingerprint(model)
    parts = ((content.documents["text_hash"].tolist(), doc_matrix),
             (content.queries["text_hash"].tolist(), query_matrix))
    for hashes, matrix in parts:
        _refuse_conflicts(store, model, fp, dim, hashes, matrix)
    dataset = store.add_dataset(content)
    store.register_model(fp, model, dim)
    added = 0
    for hashes, matrix in parts:
        for start in range(0, len(hashes), WRITE_CHUNK):
            added += store.put_vector_matrix(fp, "", hashes[start:start + WRITE_CHUNK],
                                             matrix[start:start + WRITE_CHUNK])
    return VectorIngestReport(dataset, model, fp, dim, has_texts, added, normalized,
                              tuple(warnings))


def _refuse_conflicts(store: Store, model: str, fp: str, dim: int, hashes: list[str],
                      matrix: np.ndarray) -> None:
    """One model name means one model: refuse other dims or other vectors for the same texts."""
    known = {m: d for m, _, d in store.list_models()}
    if fp in known and known[fp] != dim:
        raise WorkbenchError(f"precomputed model {model!r} holds {known[fp]}-dimensional vectors "
                             f"in this workspace, these are {dim}-dimensional; declare another "
                             f"model name in {MANIFEST}")
    if fp not in known:
        return
    cached, found = store.vector_matrix(fp, "", hashes)
    if found.any():
        differs = np.abs(cached[found] - matrix[found]).max(axis=1) > 1e-4
        if differs.any():
            raise WorkbenchError(f"the workspace already holds different vectors for "
                                 f"{int(differs.sum())} texts under precomputed model {model!r}; "
                                 f"declare another model name in {MANIFEST}")


# -- mining with them ----------------------------------------------------------------------------
def load_precomputed(store: Store, model: str) -> PrecomputedModel:
    """Resolve ``precomputed:NAME`` against the workspace's cache.

    Raises:
        WorkbenchError: no vectors under that name (the message lists the names there are).
    """
    name = model[len(PREFIX):]
    known = {m: d for m, _, d in store.list_models()}
    fp = fingerprint(name)
    if fp not in known:
        names = sorted(m[len(PREFIX):] for m in known if m.startswith(PREFIX))
        there = ", ".join(repr(n) for n in names) if names else "none"
        raise WorkbenchError(f"the workspace has no precomputed vectors named {name!r} "
                             f"(precomputed models there: {there}); ingest them with "
                             "python -m core ingest --vectors DIR")
    return PrecomputedModel(name, fp, int(known[fp]))


def lookup_vectors(store: Store, model: PrecomputedModel, hashes: Sequence[str],
                   what: str) -> np.ndarray:
    """The cached vectors of ``hashes``; every one must be there.

    Raises:
        WorkbenchError: some ``what`` (e.g. "documents") have no vector under the model.
    """
    if not len(hashes):
        return np.zeros((0, model.dim), dtype=np.float32)
    matrix, found = store.vector_matrix(model.fingerprint, "", hashes)
    if not found.all():
        raise WorkbenchError(f"{int((~found).sum())} {what} have no vector under precomputed "
                             f"model {model.name!r}; ingest their vectors with python -m core "
                             "ingest --vectors DIR")
    return matrix
