"""What every page shares: the cached Store, the annotator, the run picker, safe messages.

Not a page itself (app.py lists the pages explicitly); pages import it as ``app_pages.common``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import streamlit as st

from core.clusters import Clusters, cluster_version
from core.datapaths import default_data_dir, resolve_workspace_path
from core.errors import WorkbenchError
from core.projection import EmbeddingVersion
from core.runs import finished_runs, run_label
from core.store import RunInfo, Store

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^@/])")


def literal(text: object) -> str:
    """Escape Markdown (and the HTML and directives Streamlit's Markdown knows) in ``text``.

    Messages can quote dataset values (ids such as ``<dbpedia:Paris>``); st.error and friends
    render Markdown, so every punctuation character is backslash-escaped to show literally.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def error(message: object) -> None:
    """Show one error sentence, literally."""
    st.error(literal(message), icon=":material/error:")


def info(message: str) -> None:
    """Show a hint (our own wording, never dataset text)."""
    st.info(message, icon=":material/info:")


@contextmanager
def uploaded_file(upload) -> Iterator[Path]:
    """An uploaded file on disk under its own name (so errors name the file the user chose),
    removed afterwards."""
    name = Path(upload.name).name  # no folder part; "." and ".." are not file names
    with tempfile.TemporaryDirectory(prefix="upload-") as folder:
        path = Path(folder) / (name if name not in ("", ".", "..") else "upload")
        path.write_bytes(upload.getvalue())
        yield path


@st.cache_resource(show_spinner=False)
def store_at(path: str) -> Store:
    """The Store of a workspace path, one per process (for cached functions keyed by the path)."""
    return Store(path)


def workspace_path() -> str:
    """The workspace file chosen in the sidebar, as typed."""
    return str(st.session_state.get("workspace", "")).strip()


def workspace_key() -> str:
    """The workspace's resolved path: the first key of every cached frame."""
    return str(Path(workspace_path()).resolve())


def store(create: bool = False) -> Store:
    """The sidebar's workspace (one cached Store per path); stops the page with an error if absent.

    Args:
        create: create the workspace file when missing (the Data page's import does).
    """
    path = workspace_path()
    if not path:
        error("Enter a workspace file in the sidebar, e.g. data/workspaces/sample.duckdb.")
        st.stop()
    try:  # a typed path stays inside the data folder (the server's own workspace may be anywhere)
        resolve_workspace_path(data_dir(), path, configured_workspace())
    except WorkbenchError as err:
        error(err)
        st.stop()
    if not create and not Path(path).is_file():
        error(f"Workspace {path} does not exist yet; import a dataset on the Data page to "
              "create it, or run make sample.")
        st.stop()
    try:
        return store_at(str(Path(path).resolve()))
    except WorkbenchError as err:
        error(err)
        st.stop()


def data_dir() -> Path:
    """The data folder datasets are read from and exports written to."""
    return default_data_dir()


def configured_workspace() -> str:
    """The workspace the server was started with: ``-- --workspace W``, else
    ``$WORKBENCH_WORKSPACE``, else the sample's."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace", default=os.environ.get(
        "WORKBENCH_WORKSPACE", "data/workspaces/sample.duckdb"))
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.workspace


def login_identity() -> str | None:
    """Who is signed in when sign-in (st.login, OIDC in .streamlit/secrets.toml) is configured:
    their email (else username, name or subject), '' while signed out; None without sign-in."""
    if "is_logged_in" not in st.user:
        return None
    if not st.user.is_logged_in:
        return ""
    for claim in ("email", "preferred_username", "name", "sub"):
        value = st.user.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def sign_in_box(identity: str) -> None:
    """The sidebar's sign-in state: who is signed in and a log-out button, or a log-in button."""
    if identity:
        st.caption(f"Annotator: {literal(identity)} (signed in)")
        if st.button("Log out", key="auth_logout"):
            st.logout()
    elif st.button("Log in", key="auth_login", type="primary"):
        st.login()


def annotator() -> str:
    """The annotator: the signed-in identity when sign-in is configured, else the name typed in
    the sidebar ('' when not given or signed out)."""
    identity = login_identity()
    if identity is not None:
        return identity
    return str(st.session_state.get("annotator", "") or "").strip()


def pick_run(the_store: Store, key: str, label: str = "Run") -> RunInfo:
    """A select box over the finished runs (newest first); stops the page when there is none."""
    runs = finished_runs(the_store)
    if not runs:
        info("No finished mining run yet: mine one on the Mine page.")
        st.stop()
    by_id = {r.run_id: r for r in runs}
    if st.session_state.get(key) not in by_id:
        st.session_state.pop(key, None)
    run_id = st.selectbox(label, list(by_id), key=key,
                          format_func=lambda i: run_label(by_id[i]))
    return by_id[run_id]


@st.cache_data(show_spinner="Clustering the documents...", max_entries=8)
def clusters(workspace: str, version: EmbeddingVersion, n_clusters: int, seed: int) -> Clusters:
    """k-means clusters with TF-IDF names, cached per embedding version, count and seed (the Map
    and Review pages share them)."""
    return cluster_version(store_at(workspace), version, n_clusters, seed)
