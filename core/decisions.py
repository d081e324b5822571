"""Annotators' decisions as portable JSONL: export a workspace's log, import (merge) it into another.

One line per decision ever recorded, retracted ones included::

    {"query_hash": "...", "doc_hash": "...", "query_id": "q1", "doc_id": "d7", "dataset": "fiqa",
     "label": "false_negative", "annotator": "alice", "created_at": "2025-05-01T09:30:12.345678",
     "note": null, "retracted_at": null}

Decisions are keyed by the texts' content hashes, so they apply in any workspace holding the same
texts, whatever the ids, dataset versions or runs there. A decision is identified across
workspaces by (query_hash, doc_hash, annotator, label, created_at): importing is idempotent, and
merging annotators' files in any order gives every workspace the same log and the same latest
decision per pair (the newest by ``created_at``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from core.errors import InputError, WorkbenchError
from core.files import atomic_write
from core.readers import field_text, jsonl_records
from core.store import LABELS, Store

FIELDS = ("query_hash", "doc_hash", "query_id", "doc_id", "dataset", "label", "annotator",
          "created_at", "note", "retracted_at")
_OPTIONAL_TEXT = ("query_id", "doc_id", "dataset", "note")


@dataclass(frozen=True)
class DecisionExport:
    """A written decisions file: ``decisions`` lines, of which ``retracted`` are retracted."""

    path: Path
    decisions: int
    retracted: int


@dataclass(frozen=True)
class DecisionImport:
    """What an import did: ``read`` lines; ``added`` new decisions; ``already_present`` skipped as
    already in the workspace (or repeated in the file); ``retractions_added`` undos applied."""

    path: Path
    read: int
    added: int
    already_present: int
    retractions_added: int


def _iso(value: object) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat(
        timespec="microseconds")


def export_decisions(store: Store, out_path: str | Path) -> DecisionExport:
    """Write every decision of the workspace (retracted ones marked) to a JSONL file, atomically.

    Raises:
        WorkbenchError: the file name does not end in .jsonl, or its folder does not exist.
    """
    path = Path(out_path)
    if path.suffix.lower() != ".jsonl":
        raise WorkbenchError(f"cannot write decisions to {path}: the file name must end in .jsonl")
    if path.is_dir() or not path.parent.is_dir():
        raise WorkbenchError(f"cannot write decisions to {path}: give a file in an existing folder")
    frame = store.decision_records()
    lines = []
    for record in frame.to_dict(orient="records"):
        row = {k: (None if record[k] is None or pd.isna(record[k]) else record[k])
               for k in FIELDS}
        row["created_at"] = _iso(record["created_at"])
        row["retracted_at"] = _iso(record["retracted_at"])
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    text = "".join(lines).encode("utf-8")
    atomic_write(path, lambda handle: handle.write(text))
    return DecisionExport(path, len(frame), int(frame["retracted_at"].notna().sum()))


def _timestamp(record, display: str, field: str, required: bool) -> datetime | None:
    value = field_text(record, display, field, required=required)
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as err:
        raise InputError(display, record.where, f"field {field!r} is not an ISO timestamp, "
                         f"found {value!r}") from err
    if stamp.tzinfo is not None:
        raise InputError(display, record.where, f"field {field!r} must be UTC without an offset "
                         f"(as exported), found {value!r}")
    return stamp


def read_decisions(path: str | Path) -> pd.DataFrame:
    """Read and validate a decisions JSONL file into ``Store.decision_records`` columns.

    Raises:
        InputError: the first bad line, naming the file, the line and the field.
    """
    path = Path(path)
    display = path.name
    rows = []
    for record in jsonl_records(path, display):
        row: dict[str, object] = {
            "query_hash": field_text(record, display, "query_hash"),
            "doc_hash": field_text(record, display, "doc_hash"),
            "label": field_text(record, display, "label"),
            "annotator": field_text(record, display, "annotator"),
            "created_at": _timestamp(record, display, "created_at", True),
            "retracted_at": _timestamp(record, display, "retracted_at", False),
        }
        if row["label"] not in LABELS:
            raise InputError(display, record.where, f"field 'label' is {row['label']!r}, not one "
                             f"of {', '.join(LABELS)}")
        for field in _OPTIONAL_TEXT:
            row[field] = field_text(record, display, field, required=False, allow_empty=True)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    for column in ("created_at", "retracted_at"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    return frame


def import_decisions(store: Store, in_path: str | Path) -> DecisionImport:
    """Merge a decisions JSONL file into the workspace: all of it or, on any bad line, nothing.

    Decisions the workspace already holds are skipped, so importing twice adds nothing; a decision
    retracted in the file is retracted here as well.

    Raises:
        InputError: a malformed line (nothing is written).
    """
    frame = read_decisions(in_path)
    added, present, retracted = store.merge_decisions(frame)
    return DecisionImport(Path(in_path), len(frame), added, present, retracted)
