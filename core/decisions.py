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

A judged queue file (``core.judging``) imports the same way: a line whose ``label`` is null or
empty was not judged and is skipped; one without ``annotator`` takes the importer's default; one
without ``created_at`` is dated at import, unless that annotator's live decision on the pair
already has its label (so importing the file again adds nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
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
    """What an import did: ``read`` decisions; ``added`` new decisions; ``already_present`` skipped
    as already in the workspace (or repeated in the file); ``retractions_added`` undos applied;
    ``unlabeled`` lines of a judged queue file left without a label (not read as decisions);
    ``unheld`` distinct pairs read whose texts no dataset here holds (they apply once ingested)."""

    path: Path
    read: int
    added: int
    already_present: int
    retractions_added: int
    unlabeled: int = 0
    unheld: int = 0


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


def read_decisions(path: str | Path, annotator: str | None = None,
                   only_annotator: str | None = None) -> pd.DataFrame:
    """Read and validate a decisions JSONL file into ``Store.decision_records`` columns.

    Lines of a judged queue file whose ``label`` is null or empty are left out (``attrs
    ["unlabeled"]`` counts them); ``annotator`` is the default for lines without one; lines
    without ``created_at`` keep it missing (NaT) for ``import_decisions`` to date.
    ``only_annotator``: refuse a line by anyone else (a signed-in user imports as themselves).

    Raises:
        InputError: the first bad line, naming the file, the line and the field.
    """
    path = Path(path)
    display = path.name
    rows = []
    unlabeled = 0
    for record in jsonl_records(path, display):
        if "label" in record.fields and record.fields["label"] in (None, ""):
            unlabeled += 1
            continue
        who = field_text(record, display, "annotator", required=False) or annotator
        if who is None:
            raise InputError(display, record.where, "field 'annotator' is missing; name the "
                             "annotator in the file or give one to the import (--annotator)")
        if only_annotator is not None and who != only_annotator:
            raise InputError(display, record.where, f"field 'annotator' is {who!r}, and only "
                             f"{only_annotator!r}'s decisions can be imported here")
        row: dict[str, object] = {
            "query_hash": field_text(record, display, "query_hash"),
            "doc_hash": field_text(record, display, "doc_hash"),
            "label": field_text(record, display, "label"),
            "annotator": who,
            "created_at": _timestamp(record, display, "created_at", False),
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
    frame.attrs["unlabeled"] = unlabeled
    return frame


def _dated(store: Store, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Date the undated decisions of ``frame`` now, one microsecond apart in file order (a later
    line wins), leaving out those whose annotator's live decision on the pair already has the
    label. Returns the frame and how many were left out."""
    undated = frame["created_at"].isna()
    if not undated.any():
        return frame, 0
    log = store.decision_records()
    live = log[log["retracted_at"].isna()].drop_duplicates(
        ["query_hash", "doc_hash", "annotator"], keep="last")  # oldest first: keep the newest
    current = dict(zip(zip(live["query_hash"], live["doc_hash"], live["annotator"]),
                       live["label"]))
    keys = zip(frame["query_hash"], frame["doc_hash"], frame["annotator"], frame["label"])
    present = undated & pd.Series([current.get((q, d, a)) == label for q, d, a, label in keys],
                                  index=frame.index)
    frame = frame[~present].copy()
    todo = frame["created_at"].isna()
    now = pd.Timestamp(datetime.now(timezone.utc).replace(tzinfo=None))
    frame.loc[todo, "created_at"] = [now + pd.Timedelta(microseconds=i)
                                     for i in range(int(todo.sum()))]
    return frame, int(present.sum())


def import_decisions(store: Store, in_path: str | Path, annotator: str | None = None,
                     only_annotator: str | None = None) -> DecisionImport:
    """Merge a decisions JSONL file, or a judged queue file, into the workspace: all of it or, on
    any bad line, nothing. ``annotator``: for lines that name none; ``only_annotator``: refuse
    lines by anyone else.

    Decisions the workspace already holds are skipped, so importing twice adds nothing; a decision
    retracted in the file is retracted here as well.

    Raises:
        InputError: a malformed line (nothing is written).
    """
    frame = read_decisions(in_path, annotator, only_annotator)
    read, unlabeled, unheld = len(frame), frame.attrs["unlabeled"], store.unheld_pairs(frame)
    frame, undated_present = _dated(store, frame)
    added = present = retracted = 0
    if len(frame):
        added, present, retracted = store.merge_decisions(frame)
    return DecisionImport(Path(in_path), read, added, present + undated_present, retracted,
                          unlabeled, unheld)


def import_summary(merged: DecisionImport) -> str:
    """One sentence on what an import did (the command line's and the Review page's)."""
    skipped = f" ({merged.unlabeled:,} lines without a label skipped)" if merged.unlabeled else ""
    unheld = (f"; {merged.unheld:,} pairs are of texts no dataset here holds, and apply once "
              "they are ingested" if merged.unheld else "")
    return (f"read {merged.read:,} decisions from {merged.path.name}{skipped}: {merged.added:,} "
            f"added, {merged.already_present:,} already present, {merged.retractions_added:,} "
            f"retractions applied{unheld}")
