"""sentence-transformers pair and triplet data: JSONL, CSV, Parquet or a Hugging Face folder.

The query, positive and negative columns are found by name (``QUERY_COLUMNS``,
``POSITIVE_COLUMNS``, ``NEGATIVE_COLUMNS`` and ``negative_1`` .. ``negative_N``) or given
explicitly; none found, or several candidates, raises with the columns found. A positive or
negative cell is a string or a list of strings; an empty or null negative cell means "no negative
here" and is skipped (and counted); an empty query or positive is an error. CSV cells are strings.
Texts get content-derived ids, so repeated anchors become one query with several positives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from core.collector import DatasetCollector
from core.errors import InputError, WorkbenchError
from core.readers import (
    Record, arrow_records, csv_records, field_text, field_text_list, jsonl_records, read_hf_folder,
    read_parquet,
)

QUERY_COLUMNS = ("anchor", "query", "question", "sentence1", "text1")
POSITIVE_COLUMNS = ("positive", "pos", "answer", "document", "passage", "sentence2", "text2")
NEGATIVE_COLUMNS = ("negative", "negatives", "hard_negative", "neg")
_NUMBERED_NEGATIVE = re.compile(r"negative_[0-9]+")


@dataclass(frozen=True)
class ColumnOptions:
    """Explicit column names for pairs data; None means auto-detect (``()`` means no negatives)."""

    query_column: str | None = None
    positive_column: str | None = None
    negative_columns: tuple[str, ...] | None = None


def parse_column_options(raw: dict[str, Any]) -> ColumnOptions:
    """Check ``ingest``'s column keyword arguments (unknown names and wrong types raise)."""
    valid = ("query_column", "positive_column", "negative_columns")
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise WorkbenchError(
            f"unknown option {', '.join(unknown)}; valid options: {', '.join(valid)}"
        )
    for key in valid[:2]:
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise WorkbenchError(f"option {key} must be a column name, got {value!r}")
    negatives = raw.get("negative_columns")
    if isinstance(negatives, str):
        negatives = (negatives,)
    if negatives is not None:
        if not isinstance(negatives, (list, tuple)) or not all(
                isinstance(c, str) and c for c in negatives):
            raise WorkbenchError(f"option negative_columns must be a list of column names, "
                                 f"got {negatives!r}")
        negatives = tuple(negatives)
    return ColumnOptions(raw.get("query_column"), raw.get("positive_column"), negatives)


RecordSource = Callable[[list[str]], Iterator[Record]]


def _peeked(records: Iterator[Record]) -> tuple[list[str], RecordSource]:
    first = next(records)  # the record readers raise on empty files, so there is a first record
    return list(first.fields), lambda _columns: _chain(first, records)


def _chain(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


def _pairs_jsonl(path: Path, display: str) -> tuple[list[str], RecordSource]:
    return _peeked(jsonl_records(path, display))


def _pairs_csv(path: Path, display: str) -> tuple[list[str], RecordSource]:
    return _peeked(csv_records(path, display))


def _pairs_parquet(path: Path, display: str) -> tuple[list[str], RecordSource]:
    table = read_parquet(path, display)
    return table.column_names, partial(arrow_records, table, display)


PAIR_FILES: dict[str, Callable[[Path, str], tuple[list[str], RecordSource]]] = {
    ".jsonl": _pairs_jsonl, ".csv": _pairs_csv, ".parquet": _pairs_parquet,
}


def read_pairs(path: Path, split: str | None, options: ColumnOptions,
               collector: DatasetCollector) -> tuple[str, str | None]:
    """Validate pairs data into ``collector``; return (the name used in messages, split used).

    Raises:
        InputError: unreadable file, unknown extension, missing or ambiguous columns, bad cells.
    """
    if path.is_dir():
        table, used = read_hf_folder(path, path.name, split)
        if split is not None and used is None:
            collector.warnings.append(f"split {split!r} is ignored: {path.name} has no splits")
        split = used
        display = f"{path.name}/{split}" if split else path.name
        columns = table.column_names
        source: RecordSource = partial(arrow_records, table, display)
    else:
        display = path.name
        opener = PAIR_FILES.get(path.suffix.lower())
        if opener is None:
            raise InputError(display, None, f"has extension {path.suffix!r}; pairs data is "
                             f"{', '.join(PAIR_FILES)} or a Hugging Face datasets folder")
        if split is not None:
            collector.warnings.append(f"split {split!r} is ignored: {display} has no splits")
        split = None
        columns, source = opener(path, display)
    query_column, positive_column, negative_columns = _pair_columns(columns, display, options)
    ignored = [c for c in columns if c not in {query_column, positive_column, *negative_columns}]
    if ignored:
        collector.warnings.append(f"{display}: columns ignored: {', '.join(ignored)}")
    for record in source([query_column, positive_column, *negative_columns]):
        _add_pair_record(
            record, display, query_column, positive_column, negative_columns, collector
        )
    if collector.counts["empty_negative_cells"]:
        collector.warnings.append(f"{display}: {collector.counts['empty_negative_cells']} empty "
                                  "negative cells were skipped")
    return display, split


def _pair_columns(columns: list[str], display: str,
                  options: ColumnOptions) -> tuple[str, str, list[str]]:
    found = ", ".join(repr(c) for c in columns)
    for given in (options.query_column, options.positive_column, *(options.negative_columns or ())):
        if given is not None and given not in columns:
            raise InputError(display, None, f"has no column {given!r} (columns found: {found})")
    query = options.query_column or _pick_column(columns, QUERY_COLUMNS, "query", display, found)
    positive = options.positive_column or _pick_column(
        columns, POSITIVE_COLUMNS, "positive", display, found)
    if query == positive:
        raise InputError(
            display, None, f"column {query!r} cannot be both the query and the positive"
        )
    if options.negative_columns is None:
        negatives = [c for c in columns if c not in (query, positive)
                     and (c in NEGATIVE_COLUMNS or _NUMBERED_NEGATIVE.fullmatch(c))]
    else:
        negatives = list(dict.fromkeys(options.negative_columns))
        if query in negatives or positive in negatives:
            raise InputError(
                display, None, "a negative column cannot also be the query or positive column"
            )
    return query, positive, negatives


def _pick_column(columns: list[str], candidates: tuple[str, ...], role: str, display: str,
                 found: str) -> str:
    hits = [c for c in candidates if c in columns]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise InputError(display, None, f"has no {role} column (looked for "
                         f"{', '.join(candidates)}; columns found: {found}); name it with "
                         f"{role}_column=")
    raise InputError(display, None, f"has several possible {role} columns ({', '.join(hits)}; "
                     f"columns found: {found}); choose one with {role}_column=")


def _add_pair_record(record: Record, display: str, query_column: str, positive_column: str,
                     negative_columns: list[str], collector: DatasetCollector) -> None:
    query = field_text(record, display, query_column)
    positives = field_text_list(record, display, positive_column, allow_single=True)
    negatives: list[str] = []
    for column in negative_columns:
        value = record.fields.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            collector.counts["empty_negative_cells"] += 1
            continue
        negatives += field_text_list(record, display, column, required=False, allow_single=True)
    query_id = collector.add_query(display, record.where, query)
    for text in positives:
        doc_id = collector.add_document(display, record.where, None, text)
        collector.add_positive(display, record.where, query_id, doc_id, 1, "pair")
    for text in negatives:
        collector.add_negative(query_id, collector.add_document(display, record.where, None, text),
                               "given")
