"""The app's file boundary: typed paths stay in the data folder; uploads and archives are tamed."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from core.datapaths import (
    beir_splits, dataset_candidates, export_path, modified_stamp, resolve_data_path, save_upload,
)
from core.errors import WorkbenchError
from tests.conftest import write_beir


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_beir(root / "sets" / "tiny")
    (root / "pairs.jsonl").write_text('{"anchor": "a", "positive": "b"}\n')
    (root / "workspaces").mkdir()
    (root / "workspaces" / "w.jsonl").write_text("{}\n")
    return root


def test_relative_and_absolute_paths_inside_resolve(data_dir):
    assert resolve_data_path(data_dir, "sets/tiny") == (data_dir / "sets" / "tiny").resolve()
    inside = str(data_dir / "pairs.jsonl")
    assert resolve_data_path(data_dir, inside) == Path(inside).resolve()


@pytest.mark.parametrize("typed, message", [
    ("", "give a path"),
    ("../secret", "contains '..'"),
    ("sets/../../secret", "contains '..'"),
    ("/etc/passwd", "outside the data folder"),
    ("missing.jsonl", "nothing found"),
])
def test_paths_outside_or_missing_are_refused(data_dir, typed, message):
    with pytest.raises(WorkbenchError, match=message):
        resolve_data_path(data_dir, typed)


def test_symlinks_leading_outside_are_refused(data_dir, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("{}\n")
    os.symlink(outside, data_dir / "link.jsonl")
    with pytest.raises(WorkbenchError, match="outside the data folder"):
        resolve_data_path(data_dir, "link.jsonl")
    os.symlink(outside, data_dir / "sets" / "tiny" / "extra.jsonl")
    with pytest.raises(WorkbenchError, match="leads outside"):
        resolve_data_path(data_dir, "sets/tiny")


def test_modified_stamp_sees_files_inside_a_folder(data_dir):
    folder = data_dir / "sets" / "tiny"
    before = modified_stamp(folder)
    corpus = folder / "corpus.jsonl"
    os.utime(corpus, (before + 100, before + 100))
    assert modified_stamp(folder) == before + 100 == modified_stamp(corpus)


def test_dataset_candidates_and_splits(data_dir):
    found = dataset_candidates(data_dir)
    assert found == ["pairs.jsonl", "sets/tiny"]
    assert beir_splits(data_dir / "sets" / "tiny") == ["train"]
    assert beir_splits(data_dir / "pairs.jsonl") == []


def test_upload_is_saved_under_uploads_with_a_safe_name(data_dir):
    path = save_upload(data_dir, "../../evil name.jsonl", b'{"a": 1}\n', max_bytes=100)
    assert path.parent == data_dir / "uploads"
    assert path.name.startswith("evil_name-") and path.suffix == ".jsonl"
    assert path.read_bytes() == b'{"a": 1}\n'
    assert save_upload(data_dir, "../../evil name.jsonl", b'{"a": 1}\n', 100) == path


@pytest.mark.parametrize("name, data, message", [
    ("x.exe", b"1", "extension"),
    ("x.jsonl", b"12345", "more than the limit"),
    ("x.zip", b"not a zip", "not a valid zip"),
])
def test_bad_uploads_are_refused(data_dir, name, data, message):
    with pytest.raises(WorkbenchError, match=message):
        save_upload(data_dir, name, data, max_bytes=4 if message.startswith("more") else 100)


def _zip(entries: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_zipped_beir_folder_is_unpacked(data_dir, tmp_path):
    source = write_beir(tmp_path / "zipme")
    entries = {f"tiny/{p.relative_to(source)}": p.read_bytes()
               for p in source.rglob("*") if p.is_file()}
    path = save_upload(data_dir, "tiny.zip", _zip(entries), max_bytes=1 << 20)
    assert (path / "corpus.jsonl").is_file() and path.name == "tiny"
    assert data_dir / "uploads" in path.parents


def test_zipped_single_folder_is_returned(data_dir):
    path = save_upload(data_dir, "hf.zip", _zip({"myset/dataset_info.json": b"{}",
                                                 "myset/data-00000.arrow": b"x"}), 1 << 20)
    assert path.name == "myset" and (path / "dataset_info.json").is_file()


@pytest.mark.parametrize("entries, link", [
    ({"../escape.txt": b"x"}, None),
    ({"/abs.txt": b"x"}, None),
    ({"ok.txt": b"x"}, "evil-link"),
])
def test_unsafe_archives_are_refused(data_dir, entries, link):
    with pytest.raises(WorkbenchError, match="unsafe entry|symbolic link"):
        save_upload(data_dir, "bad.zip", _zip(entries, link), max_bytes=1 << 20)
    assert not list((data_dir / "uploads").glob("bad-*"))


def test_export_path_is_inside_exports(tmp_path):
    path = export_path(tmp_path, "../my data", 3, "flag-embedding", ".jsonl")
    assert path.parent == tmp_path / "exports" and path.parent.is_dir()
    assert path.name == "my_data-run3-flag-embedding.jsonl"
