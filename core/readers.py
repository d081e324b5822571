"""File access for ingest: records that know where they came from, and checks of single fields.

Locations in messages:
- ``line N``: the 1-based physical line of a JSONL or TSV file (blank lines are counted).
- ``row N (line L)``: CSV; N is the 1-based data record (the header is not a row, blank lines are
  skipped) and L the physical line where the record starts (a quoted cell may span lines).
- ``row N``: Parquet and Hugging Face datasets; N is the 1-based row of the table.

Files are read as bytes and decoded line by line, so a non-UTF-8 byte is reported on its line; a
UTF-8 byte order mark at the start of a file is accepted. Every problem raises ``InputError``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InputError

_BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 64 << 20
"""Longest line accepted (64 MiB): a longer one is refused before it fills the memory."""


@dataclass(frozen=True)
class Record:
    """One input record: its location (``line 3``, ``row 5``) and its fields by name."""

    where: str
    fields: dict[str, Any]


def type_name(value: object) -> str:
    """Name a JSON-like value's type for messages ("a number", "null", "a list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def check_file(path: Path, display: str) -> None:
    """Raise unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise InputError(display, None, f"file not found (looked for {path})")
    if path.is_dir():
        raise InputError(display, None, "is a directory where a file was expected")
    if path.stat().st_size == 0:
        raise InputError(display, None, "file is empty")


def decoded_lines(path: Path, display: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line with its line ending) of a UTF-8 text file."""
    check_file(path, display)
    with open(path, "rb") as handle:
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""),
                                     start=1):
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise InputError(display, f"line {number}", f"is longer than "
                                 f"{MAX_LINE_BYTES >> 20} MiB; is the file missing line breaks?")
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(
                    display, f"line {number}",
                    f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1} "
                    "of the line)",
                ) from err
            yield number, text


def jsonl_records(path: Path, display: str) -> Iterator[Record]:
    """Yield each non-blank line of a JSONL file as a Record holding a JSON object."""
    count = 0
    for number, line in decoded_lines(path, display):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(
                display, where, f"not valid JSON ({err.msg} at column {err.colno})"
            ) from err
        except (ValueError, RecursionError) as err:  # over-long integers, absurd nesting
            raise InputError(display, where, f"not valid JSON ({err})") from err
        if not isinstance(value, dict):
            raise InputError(display, where, f"expected a JSON object, found {type_name(value)}")
        count += 1
        yield Record(where, value)
    if count == 0:
        raise InputError(display, None, "file is empty (it has only blank lines)")


def tsv_lines(path: Path, display: str) -> Iterator[tuple[str, list[str]]]:
    """Yield (``line N``, tab-separated fields) for each non-blank line of a TSV file."""
    for number, line in decoded_lines(path, display):
        text = line.rstrip("\r\n")
        if text.strip():
            yield f"line {number}", text.split("\t")


def csv_records(path: Path, display: str) -> Iterator[Record]:
    """Yield the data records of a CSV file with a header line, keyed by the header's names."""
    position = {"line": 0}

    def feed() -> Iterator[str]:
        for number, text in decoded_lines(path, display):
            position["line"] = number
            yield text

    reader = csv.reader(feed(), strict=True)
    header: list[str] | None = []
    while header == []:
        header = _next_csv_row(reader, display, position)
    if header is None:
        raise InputError(display, None, "file is empty (no header line)")
    header = [name.strip() for name in header]
    header_where = f"line {position['line']}"
    for index, name in enumerate(header, start=1):
        if not name:
            raise InputError(display, header_where, f"header column {index} has no name")
        if header.index(name) != index - 1:
            raise InputError(display, header_where, f"header names column {name!r} twice")
    row = 0
    while True:
        start = position["line"] + 1
        cells = _next_csv_row(reader, display, position)
        if cells is None:
            break
        if not cells or (len(cells) == 1 and not cells[0].strip() and len(header) > 1):
            continue
        row += 1
        where = f"row {row} (line {start})"
        if len(cells) != len(header):
            raise InputError(
                display, where, f"has {len(cells)} fields but the header has {len(header)}"
            )
        yield Record(where, dict(zip(header, cells)))
    if row == 0:
        raise InputError(display, None, "has a header line but no data rows")


def _next_csv_row(reader: Any, display: str, position: dict[str, int]) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as err:
        raise InputError(display, f"line {position['line']}", f"not valid CSV ({err})") from err


def read_parquet(path: Path, display: str) -> pa.Table:
    """Read a whole Parquet file into an Arrow table."""
    check_file(path, display)
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(display, None, f"not a readable Parquet file ({reason})") from err


def read_hf_folder(path: Path, display: str, split: str | None) -> tuple[pa.Table, str | None]:
    """Read a folder written by ``Dataset.save_to_disk`` (or a DatasetDict's) into an Arrow table.

    A DatasetDict needs ``split`` unless it holds exactly one split. Returns the table and the
    split used (None for a plain Dataset folder, which has no splits).
    """
    import datasets  # heavy; only this format needs it

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, pa.ArrowException) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(display, None, f"not a Hugging Face datasets folder ({reason})") from err
    if isinstance(loaded, datasets.DatasetDict):
        names = sorted(loaded)
        if split is None and len(names) == 1:
            split = names[0]
        elif split is None:
            raise InputError(
                display, None, f"holds splits {', '.join(names)}; choose one with split="
            )
        elif split not in loaded:
            raise InputError(display, None, f"has no split {split!r} (it has: {', '.join(names)})")
        return loaded[split].with_format("arrow")[:], split
    return loaded.with_format("arrow")[:], None


def _is_text_type(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_string_view(kind) or pa.types.is_null(kind))


def arrow_records(table: pa.Table, display: str, columns: list[str]) -> Iterator[Record]:
    """Yield rows of ``columns`` after checking each is a string or list-of-strings column."""
    for name in columns:
        kind = table.schema.field(name).type
        is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        if not (_is_text_type(kind) or (is_list and _is_text_type(kind.value_type))):
            raise InputError(
                display, None,
                f"column {name!r} has type {kind}; expected strings or lists of strings",
            )
    if table.num_rows == 0:
        raise InputError(display, None, "has no rows")
    row = 0
    for batch in table.select(columns).to_batches():
        for fields in batch.to_pylist():
            row += 1
            yield Record(f"row {row}", fields)


# -- single fields ------------------------------------------------------------------------------

def _checked_string(value: str, display: str, where: str, label: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(display, where, f"{label} contains an unpaired surrogate escape") from err
    return value.strip()


def field_text(record: Record, display: str, field: str, *, required: bool = True,
               allow_empty: bool = False) -> str | None:
    """Return a string field stripped; None when optional and missing or null.

    Raises:
        InputError: missing (when required), not a string, or empty (unless ``allow_empty``).
    """
    if field not in record.fields or record.fields[field] is None:
        if not required:
            return None
        state = "missing" if field not in record.fields else "null"
        raise InputError(display, record.where, f"field {field!r} is {state}")
    value = record.fields[field]
    if not isinstance(value, str):
        raise InputError(
            display, record.where, f"field {field!r} must be a string, found {type_name(value)}"
        )
    text = _checked_string(value, display, record.where, f"field {field!r}")
    if not text and not allow_empty:
        raise InputError(display, record.where, f"field {field!r} is empty")
    return text


def field_id(record: Record, display: str, field: str) -> str:
    """Return an id field (a string, or an integer converted to one) stripped and non-empty."""
    if field not in record.fields:
        raise InputError(display, record.where, f"field {field!r} is missing")
    return _as_id(record.fields[field], display, record.where, repr(field))


def _as_id(value: object, display: str, where: str, label: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InputError(
            display, where,
            f"field {label} must be a string or integer id, found {type_name(value)}",
        )
    text = _checked_string(value, display, where, f"field {label}")
    if not text:
        raise InputError(display, where, f"field {label} is empty")
    if any(c in text for c in "\t\r\n"):
        raise InputError(display, where, f"field {label} contains a tab or line break")
    return text


def field_text_list(record: Record, display: str, field: str, *, required: bool = True,
                    allow_single: bool = False) -> list[str]:
    """Return a list-of-strings field (each item stripped and non-empty).

    ``allow_single`` also accepts one string. Missing or null gives [] when not ``required``.

    Raises:
        InputError: missing (when required), wrong type, an empty list, or an empty item.
    """
    value = record.fields.get(field)
    if value is None:
        if not required:
            return []
        state = "missing" if field not in record.fields else "null"
        raise InputError(display, record.where, f"field {field!r} is {state}")
    if isinstance(value, str) and allow_single:
        return [field_text(record, display, field)]
    if not isinstance(value, list):
        raise InputError(
            display, record.where,
            f"field {field!r} must be a list of strings, found {type_name(value)}",
        )
    if required and not value:
        raise InputError(display, record.where, f"field {field!r} is an empty list")
    texts = []
    for index, item in enumerate(value, start=1):
        label = f"field {field!r} item {index}"
        if not isinstance(item, str):
            raise InputError(
                display, record.where, f"{label} must be a string, found {type_name(item)}"
            )
        text = _checked_string(item, display, record.where, label)
        if not text:
            raise InputError(display, record.where, f"{label} is empty")
        texts.append(text)
    return texts


def field_id_list(record: Record, display: str, field: str, expected: int,
                  texts_field: str) -> list[str]:
    """Return a list of ids that must pair one to one with the texts of ``texts_field``."""
    value = record.fields.get(field)
    if value is None and expected == 0:
        return []
    if field not in record.fields:
        raise InputError(display, record.where, f"field {field!r} is missing")
    if not isinstance(value, list):
        raise InputError(
            display, record.where,
            f"field {field!r} must be a list of ids, found {type_name(value)}",
        )
    if len(value) != expected:
        raise InputError(
            display, record.where,
            f"field {field!r} has {len(value)} ids but field {texts_field!r} has {expected} texts",
        )
    return [
        _as_id(item, display, record.where, f"{field!r} item {index}")
        for index, item in enumerate(value, start=1)
    ]
