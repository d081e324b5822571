"""The app's file boundary: datasets are read from, uploads and exports written to, the data folder.

A path typed into the app is confined to the data folder: ``..`` components, absolute paths
elsewhere and symbolic links that lead outside are refused. Uploaded files are stored under
``uploads/`` with a sanitised name; an uploaded .zip (a BEIR folder) is unpacked member by member,
refusing absolute names, ``..``, links and archives larger than the cap.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath

from core.errors import WorkbenchError

UPLOAD_SUFFIXES = (".jsonl", ".csv", ".parquet", ".zip")
MAX_UNZIPPED_BYTES = 1 << 30
MAX_ZIP_MEMBERS = 10_000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_SKIPPED_FOLDERS = {"workspaces", "exports", "uploads"}


def default_data_dir() -> Path:
    """The data folder: ``$WORKBENCH_DATA_DIR`` when set, else the repository's ``data/``."""
    configured = os.environ.get("WORKBENCH_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "data"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_data_path(data_dir: str | Path, user_path: str) -> Path:
    """Resolve a path typed by a user to a file or folder inside the data folder.

    Args:
        data_dir: the data folder.
        user_path: relative to the data folder (``sample/dbpedia-entity-5k``), or absolute but
            inside it.

    Raises:
        WorkbenchError: empty path, a ``..`` component, a path (or a link inside a folder) that
            leads outside the data folder, or nothing at that path.
    """
    text = (user_path or "").strip()
    if not text:
        raise WorkbenchError("give a path inside the data folder, e.g. sample/dbpedia-entity-5k")
    if ".." in Path(text).parts:
        raise WorkbenchError(f"path {text!r} contains '..'; give a path inside the data folder")
    root = Path(data_dir).resolve()
    raw = Path(text)
    candidate = (raw if raw.is_absolute() else root / raw).resolve()
    if not _inside(candidate, root):
        raise WorkbenchError(f"path {text!r} is outside the data folder {root}")
    if not candidate.exists():
        raise WorkbenchError(f"nothing found at {text!r} inside the data folder {root}")
    if candidate.is_dir():
        _check_links(candidate, root, text)
    return candidate


def _check_links(folder: Path, root: Path, shown: str) -> None:
    """Refuse a folder holding a symbolic link that resolves outside the data folder."""
    for current, dirs, files in os.walk(folder):
        for name in dirs + files:
            entry = Path(current) / name
            if entry.is_symlink() and not _inside(entry.resolve(), root):
                raise WorkbenchError(
                    f"{shown!r} holds a link ({entry.relative_to(folder)}) that leads outside "
                    f"the data folder {root}")


def modified_stamp(path: str | Path) -> float:
    """The newest modification time of a file, or of any file inside a folder (a cache key)."""
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_mtime
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*")
                                        if p.is_file())])


def resolve_workspace_path(data_dir: str | Path, typed: str,
                           configured: str | Path | None = None) -> Path:
    """Resolve a workspace file typed in the app: a .duckdb file inside the data folder.

    The workspace the server was started with (``configured``) is accepted wherever it is; any
    other must resolve, symbolic links followed, inside the data folder. Relative paths are taken
    from the working directory, as on the command line (``data/workspaces/sample.duckdb``).

    Raises:
        WorkbenchError: not a .duckdb name, a ``..`` component, or outside the data folder.
    """
    text = (typed or "").strip()
    candidate = Path(text).resolve()
    if configured is not None and candidate == Path(configured).resolve():
        return candidate
    if Path(text).suffix.lower() != ".duckdb":
        raise WorkbenchError(f"workspace {text!r} must be a .duckdb file")
    if ".." in Path(text).parts:
        raise WorkbenchError(f"workspace {text!r} contains '..'; give a file inside the data "
                             "folder")
    root = Path(data_dir).resolve()
    if not _inside(candidate, root):
        raise WorkbenchError(f"workspace {text!r} is outside the data folder {root}")
    return candidate


def beir_splits(path: str | Path) -> list[str]:
    """The qrels splits of a BEIR folder (``qrels/<split>.tsv``); empty for anything else."""
    qrels = Path(path) / "qrels"
    return sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []


def dataset_candidates(data_dir: str | Path, limit: int = 50) -> list[str]:
    """Paths under the data folder that look like datasets (BEIR folders and data files).

    Returns paths relative to the data folder, sorted; workspaces and exports are skipped.
    """
    root = Path(data_dir)
    if not root.is_dir():
        return []
    found: list[str] = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not (here == root and d in _SKIPPED_FOLDERS)
                         and not d.startswith("."))
        if "corpus.jsonl" in files:
            found.append(str(here.relative_to(root)))
            dirs[:] = []
            continue
        found += [str((here / f).relative_to(root)) for f in sorted(files)
                  if Path(f).suffix.lower() in (".jsonl", ".csv", ".parquet")]
        if len(found) >= limit:
            break
    return sorted(found)[:limit]


def _safe_name(filename: str) -> str:
    name = _SAFE_NAME.sub("_", PurePosixPath(filename.replace("\\", "/")).name).strip("._")
    return name or "upload"


def save_upload(data_dir: str | Path, filename: str, data: bytes, max_bytes: int) -> Path:
    """Store an uploaded file under ``uploads/`` and return the path to ingest.

    A .zip is unpacked into its own folder; the returned path is the folder holding
    corpus.jsonl when there is exactly one, else the archive's single top folder (a Hugging Face
    ``save_to_disk`` folder), else the unpacked folder.

    Raises:
        WorkbenchError: unsupported extension, too large, or an unsafe or broken archive.
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise WorkbenchError(f"uploaded file {filename!r} has extension {suffix or 'none'!r}; "
                             f"expected one of {', '.join(UPLOAD_SUFFIXES)}")
    if len(data) > max_bytes:
        raise WorkbenchError(f"uploaded file {filename!r} has {len(data):,} bytes, more than the "
                             f"limit of {max_bytes:,}")
    digest = hashlib.sha256(data).hexdigest()[:10]
    uploads = Path(data_dir) / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    name = _safe_name(filename)
    if suffix != ".zip":
        target = uploads / f"{Path(name).stem}-{digest}{suffix}"
        if not target.exists():  # names carry the content's hash: an existing file is this one
            target.write_bytes(data)
        return target
    folder = uploads / f"{Path(name).stem}-{digest}"
    if not folder.exists():
        _unzip(data, folder, filename)
    beir = sorted(p.parent for p in folder.rglob("corpus.jsonl"))
    if len(beir) == 1:
        return beir[0]
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def _unzip(data: bytes, folder: Path, shown: str) -> None:
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except zipfile.BadZipFile as err:
        raise WorkbenchError(f"uploaded file {shown!r} is not a valid zip archive") from err
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise WorkbenchError(f"archive {shown!r} has {len(members)} entries, more than "
                                 f"{MAX_ZIP_MEMBERS}")
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise WorkbenchError(f"archive {shown!r} unpacks to more than "
                                 f"{MAX_UNZIPPED_BYTES:,} bytes")
        for member in members:
            _check_member(member, shown)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        written = 0
        for member in members:
            target = partial / PurePosixPath(member.filename.replace("\\", "/"))
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source:
                    chunk = source.read(MAX_UNZIPPED_BYTES + 1 - written)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                shutil.rmtree(partial, ignore_errors=True)
                raise WorkbenchError(f"archive {shown!r} entry {member.filename!r} cannot be "
                                     f"read ({err})") from err
            written += len(chunk)
            if written > MAX_UNZIPPED_BYTES:  # sizes in the archive's directory can lie
                shutil.rmtree(partial, ignore_errors=True)
                raise WorkbenchError(f"archive {shown!r} unpacks to more than "
                                     f"{MAX_UNZIPPED_BYTES:,} bytes")
            target.write_bytes(chunk)
        partial.mkdir(parents=True, exist_ok=True)
        partial.rename(folder)  # only a completely unpacked archive gets the final name


def _check_member(member: zipfile.ZipInfo, shown: str) -> None:
    path = PurePosixPath(member.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", member.filename):
        raise WorkbenchError(f"archive {shown!r} holds an unsafe entry name {member.filename!r}")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise WorkbenchError(f"archive {shown!r} holds a symbolic link ({member.filename!r}); "
                             "links are not accepted")


def export_path(data_dir: str | Path, dataset: str, run_id: int, format: str, suffix: str) -> Path:
    """Where an export of ``run_id`` goes: ``exports/<dataset>-run<id>-<format><suffix>``.

    The exports folder is created when missing.
    """
    folder = Path(data_dir) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_safe_name(dataset)}-run{run_id}-{_safe_name(format)}{suffix}"
