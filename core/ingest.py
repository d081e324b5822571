"""Ingest retrieval training data: read one format, validate everything, then write one transaction.

Formats (the ``FORMATS`` registry):
- ``beir``: a folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv; score >= 1 is a
  positive, lower scores are ignored (and counted); queries without a positive are dropped.
  Corpus documents whose title and text are both empty (real collections such as Cranfield have
  a few) are dropped with a warning, and qrels lines that point at them are skipped and counted.
- ``pairs``: sentence-transformers pair/triplet data as JSONL, CSV, Parquet or a Hugging Face
  ``save_to_disk`` folder; columns are auto-detected by name or given explicitly.
- ``flag``: FlagEmbedding JSONL (``query``, ``pos``, ``neg``), with our export's ids when present.

Every problem is an ``InputError`` naming the file, the line or row and the field (see
``core.readers`` for how lines and rows are counted); nothing is written unless all input is valid.
"""

from __future__ import annotations

import json
import re
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from core.collector import DatasetCollector, IngestCounts
from core.errors import InputError, WorkbenchError
from core.ingest_pairs import PAIR_FILES, ColumnOptions, parse_column_options, read_pairs
from core.readers import (
    Record, decoded_lines, field_id, field_id_list, field_text, field_text_list, jsonl_records,
    tsv_lines,
)
from core.store import DatasetContent, DatasetInfo, Store
from core.text import document_text

_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_INTEGER = re.compile(r"-?[0-9]+")
_MAX_GRADE = 2**31 - 1  # the store's INTEGER


@dataclass(frozen=True)
class IngestReport:
    """What an ingest read and wrote.

    Attributes:
        dataset: the written dataset version; None from ``read_dataset`` (nothing written).
        name, format, source, split: as stored (split is None for formats without splits).
        counts: kept rows and what each rule removed or merged.
        warnings: one sentence each (ignored parameters or columns, dropped rows).
    """

    dataset: DatasetInfo | None
    name: str
    format: str
    source: str
    split: str | None
    counts: IngestCounts
    warnings: tuple[str, ...]


# A format reader validates ``path`` into the collector and returns (the file that defines the
# positives, for messages; the split actually used).
FormatReader = Callable[
    [Path, "str | None", ColumnOptions, DatasetCollector], "tuple[str, str | None]"
]
FORMATS: dict[str, FormatReader] = {}


def register_format(name: str, reader: FormatReader) -> None:
    """Add a format to the registry; names are unique."""
    if name in FORMATS:
        raise ValueError(f"format {name!r} is already registered")
    FORMATS[name] = reader


def _warn_column_options(fmt: str, options: ColumnOptions, collector: DatasetCollector) -> None:
    if options != ColumnOptions():
        collector.warnings.append(f"column options are ignored: format {fmt!r} has fixed fields")


# -- BEIR ---------------------------------------------------------------------------------------

def _read_beir(path: Path, split: str | None, options: ColumnOptions,
               collector: DatasetCollector) -> tuple[str, str | None]:
    """Validate a BEIR folder's corpus, queries and one qrels split into ``collector``."""
    _warn_column_options("beir", options, collector)
    if not path.is_dir():
        raise InputError(path.name, None, "is not a folder; a BEIR dataset is a folder with "
                         "corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    split = _beir_split(path, split)
    empty: list[str] = []
    for record in jsonl_records(path / "corpus.jsonl", "corpus.jsonl"):
        doc_id = field_id(record, "corpus.jsonl", "_id")
        title = field_text(record, "corpus.jsonl", "title", required=False, allow_empty=True)
        body = field_text(record, "corpus.jsonl", "text", allow_empty=True)
        text = document_text(title, body)
        if text:
            collector.add_document("corpus.jsonl", record.where, title or None, text, doc_id)
        else:
            empty.append(doc_id)
    if empty:
        collector.counts["empty_documents_dropped"] = len(empty)
        shown = ", ".join(repr(i) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
        collector.warnings.append(f"corpus.jsonl: {len(empty)} documents with an empty title and "
                                  f"text were dropped ({shown})")
    for record in jsonl_records(path / "queries.jsonl", "queries.jsonl"):
        query_id = field_id(record, "queries.jsonl", "_id")
        text = field_text(record, "queries.jsonl", "text")
        collector.add_query("queries.jsonl", record.where, text, query_id)
    display = f"qrels/{split}.tsv"
    _read_qrels(path / "qrels" / f"{split}.tsv", display, collector,
                set(empty) - set(collector.documents))
    return display, split


def _beir_split(path: Path, split: str | None) -> str:
    qrels = path / "qrels"
    splits = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []
    if not splits:
        raise InputError("qrels", None, f"folder is missing or holds no <split>.tsv file ({qrels})")
    if split is None and len(splits) == 1:
        return splits[0]
    if split is None:
        raise InputError("qrels", None, f"holds splits {', '.join(splits)}; choose one with split=")
    if split not in splits:
        raise InputError(f"qrels/{split}.tsv", None,
                         f"file not found (available splits: {', '.join(splits)})")
    return split


def _read_qrels(path: Path, display: str, collector: DatasetCollector,
                empty_documents: set[str]) -> None:
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    first, data_lines = True, 0
    for where, fields in tsv_lines(path, display):
        is_header = (first and len(fields) == 3 and not _INTEGER.fullmatch(fields[2].strip())
                     and fields[0].strip() not in collector.queries)
        first = False
        if is_header:
            continue
        data_lines += 1
        if len(fields) != 3:
            raise InputError(display, where, "expected 3 tab-separated columns (query-id, "
                             f"corpus-id, score), found {len(fields)}")
        query_id, doc_id, score = (field.strip() for field in fields)
        if not _INTEGER.fullmatch(score):
            raise InputError(display, where, f"field 'score' must be an integer, found {score!r}")
        if len(score) > 10 or abs(int(score)) > _MAX_GRADE:
            raise InputError(display, where, f"field 'score' {score} is out of range")
        if query_id not in collector.queries:
            raise InputError(display, where, f"query {query_id!r} is not in queries.jsonl")
        if doc_id in empty_documents:
            collector.counts["qrels_to_empty_documents"] += 1
            continue
        if doc_id not in collector.documents:
            raise InputError(display, where, f"document {doc_id!r} is not in corpus.jsonl")
        grade = int(score)
        known = seen.get((query_id, doc_id))
        if known is not None and known[0] != grade:
            raise InputError(display, where, f"pair ({query_id!r}, {doc_id!r}) was already "
                             f"given score {known[0]} on {known[1]}")
        if known is not None:
            collector.counts["duplicates_merged"] += 1
            continue
        seen[query_id, doc_id] = (grade, where)
        if grade < 1:
            collector.counts["qrels_below_grade_1"] += 1
        else:
            collector.add_positive(display, where, query_id, doc_id, grade, "qrels")
    if data_lines == 0:
        raise InputError(display, None, "has no qrels lines")


# -- FlagEmbedding ------------------------------------------------------------------------------

def _read_flag(path: Path, split: str | None, options: ColumnOptions,
               collector: DatasetCollector) -> tuple[str, str | None]:
    """Validate a FlagEmbedding JSONL file into ``collector``."""
    _warn_column_options("flag", options, collector)
    display = path.name
    if split is not None:
        collector.warnings.append(f"split {split!r} is ignored: {display} has no splits")
    for record in jsonl_records(path, display):
        query = field_text(record, display, "query")
        positives = field_text_list(record, display, "pos")
        negatives = field_text_list(record, display, "neg", required=False)
        query_id, pos_ids, neg_ids = _flag_ids(record, display, len(positives), len(negatives))
        query_id = collector.add_query(display, record.where, query, query_id)
        for text, doc_id in zip(positives, pos_ids):
            doc_id = collector.add_document(display, record.where, None, text, doc_id)
            collector.add_positive(display, record.where, query_id, doc_id, 1, "flag")
        for text, doc_id in zip(negatives, neg_ids):
            doc_id = collector.add_document(display, record.where, None, text, doc_id)
            collector.add_negative(query_id, doc_id, "given")
    return display, None


def _flag_ids(record: Record, display: str, n_pos: int,
              n_neg: int) -> tuple[str | None, list[str | None], list[str | None]]:
    """Return the line's ids (our export's round trip), or Nones for content-derived ids."""
    if "query_id" not in record.fields:
        for field in ("pos_ids", "neg_ids"):
            if field in record.fields:
                raise InputError(display, record.where,
                                 f"field {field!r} is given but field 'query_id' is missing")
        return None, [None] * n_pos, [None] * n_neg
    query_id = field_id(record, display, "query_id")
    pos_ids = field_id_list(record, display, "pos_ids", n_pos, "pos")
    neg_ids = field_id_list(record, display, "neg_ids", n_neg, "neg")
    return query_id, list(pos_ids), list(neg_ids)


for _name, _reader in (("beir", _read_beir), ("pairs", read_pairs), ("flag", _read_flag)):
    register_format(_name, _reader)


# -- entry points -------------------------------------------------------------------------------

def detect_format(path: str | Path) -> str:
    """Guess the format of ``path``: "beir", "pairs" or "flag".

    A folder with corpus.jsonl is BEIR; a folder with dataset_info.json, state.json or
    dataset_dict.json is a Hugging Face pairs dataset; a .jsonl whose first record has a "pos"
    list is FlagEmbedding; other .jsonl, .csv and .parquet files are pairs.

    Raises:
        InputError: the path does not exist, or is none of the above.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path.name or str(path), None, f"not found (looked for {path})")
    if path.is_dir():
        if (path / "corpus.jsonl").exists():
            return "beir"
        if any((path / marker).exists() for marker in _HF_MARKERS):
            return "pairs"
        raise InputError(path.name, None, "is a folder but neither a BEIR dataset (corpus.jsonl) "
                         "nor a Hugging Face datasets folder (dataset_info.json, "
                         "dataset_dict.json)")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "flag" if _first_record_has_pos_list(path) else "pairs"
    if suffix in PAIR_FILES:
        return "pairs"
    raise InputError(path.name, None, f"has extension {suffix!r}; expected .jsonl, .csv, "
                     ".parquet, a BEIR folder or a Hugging Face datasets folder")


def _first_record_has_pos_list(path: Path) -> bool:
    """Peek at the first non-blank line; unreadable input is left for the reader to report."""
    try:
        with closing(decoded_lines(path, path.name)) as lines:
            for _, line in lines:
                if line.strip():
                    value = json.loads(line)
                    return isinstance(value, dict) and isinstance(value.get("pos"), list)
    except (ValueError, RecursionError):  # InputError is a ValueError, as is bad JSON
        return False
    return False


def read_dataset(
    path: str | Path, format: str | None = None, split: str | None = None,
    name: str | None = None, **column_options: Any,
) -> tuple[DatasetContent, IngestReport]:
    """Read and validate a dataset without writing it (for previews and for ``ingest``).

    Args:
        path: a BEIR folder, a pairs file or Hugging Face folder, or a FlagEmbedding JSONL file.
        format: one of ``FORMATS`` ("beir", "pairs", "flag"); None detects it.
        split: the qrels split (BEIR) or the DatasetDict split (Hugging Face).
        name: the dataset's name; defaults to the folder's name or the file's stem.
        column_options: pairs only: query_column, positive_column, negative_columns.

    Returns:
        The content ready for ``Store.add_dataset`` and a report whose ``dataset`` is None.

    Raises:
        InputError: any invalid input (names the file, line or row, and field).
        WorkbenchError: unknown format or option, empty name.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path.name or str(path), None, f"not found (looked for {path})")
    options = parse_column_options(column_options)
    fmt = detect_format(path) if format is None else format
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise WorkbenchError(f"unknown format {fmt!r}; valid formats: {', '.join(sorted(FORMATS))}")
    reader = FORMATS[fmt]
    dataset_name = (path.resolve().name if path.is_dir() else path.stem) if name is None else name
    if not isinstance(dataset_name, str) or not dataset_name.strip():
        raise WorkbenchError(f"a dataset name must be a non-empty string, got {dataset_name!r}")
    collector = DatasetCollector()
    display, used_split = reader(path, split, options, collector)
    source = str(path.resolve())
    content, counts = collector.finish(display, dataset_name.strip(), fmt, source, used_split)
    warnings = list(collector.warnings)
    if counts.queries_without_positive:
        warnings.append(f"{counts.queries_without_positive} queries have no positive in "
                        f"{display} and were dropped")
    if counts.qrels_to_empty_documents:
        warnings.append(f"{display}: {counts.qrels_to_empty_documents} line(s) naming an empty "
                        "document were ignored")
    if counts.negatives_that_are_positives:
        warnings.append(f"{counts.negatives_that_are_positives} given negatives were dropped "
                        "because they are positives of the same query")
    report = IngestReport(None, content.name, fmt, source, used_split, counts, tuple(warnings))
    return content, report


def ingest(store: Store, path: str | Path, format: str | None = None, split: str | None = None,
           name: str | None = None, **column_options: Any) -> IngestReport:
    """Read, validate and write a dataset in one transaction; a same-named dataset is retired.

    Arguments as for ``read_dataset``. Nothing is written when any input is invalid.

    Raises:
        InputError: any invalid input; WorkbenchError: unknown format or option.
    """
    content, report = read_dataset(path, format=format, split=split, name=name, **column_options)
    return replace(report, dataset=store.add_dataset(content))
