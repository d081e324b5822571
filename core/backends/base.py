"""The shape every encode backend shares: a name, what changes its vectors, and a loader."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

EncodeFn = Callable[[Sequence[str], str, int], np.ndarray]
"""Called as encode(texts, prompt, batch_size); returns one row per text, in order."""


@dataclass(frozen=True)
class BackendContext:
    """What a backend loads from: the sentence-transformers model and where to keep artefacts.

    Args:
        model: the loaded ``SentenceTransformer`` (fp32, on the CPU); backends never modify it.
            None for ``Backend.load_built``, which runs without it.
        fingerprint: the fp32 model's fingerprint; artefacts built from the model are keyed by it.
        cache_dir: folder for built artefacts (ONNX exports, int8 models), created when needed.
        model_dir: the model's local folder where ``text_pipeline.file_pipeline`` reproduces its
            tokenisation (checked against the loaded model), else None.
    """

    model: object | None
    fingerprint: str
    cache_dir: Path
    model_dir: Path | None = None


@dataclass(frozen=True)
class BuiltModel:
    """A model a backend built from the fp32 one (or found already built in the cache).

    Attributes:
        path: the model file (ONNX: the .onnx; OpenVINO: the IR's .xml, weights in the .bin).
        built: True when this call built it, False when it was found in the cache.
        manifest: the manifest entry for the file (recipe, versions, probe cosine to torch).
    """

    path: Path
    built: bool
    manifest: dict


@dataclass(frozen=True)
class Backend:
    """A way to run a model: torch fp32 (the reference), bf16, ONNX Runtime or OpenVINO, int8.

    Attributes:
        name: the key for ``--backend``.
        summary: one line for help texts.
        vector_tag: identifies what makes this backend's vectors differ from the reference
            (precision, quantisation recipe); empty for the reference itself. Part of the
            embedding-cache fingerprint, so a changed recipe never returns stale vectors.
        load: builds the encode function for a context (exporting or quantising on first use).
        unavailable: why the backend cannot run on this machine, or None when it can.
        load_built: for backends that can run without the torch model: the encode function and
            its vectors' dimension from an already built artefact and ``ctx.model_dir``, or None
            when that is not possible (nothing built yet, no file pipeline).
    """

    name: str
    summary: str
    vector_tag: str
    load: Callable[[BackendContext], EncodeFn]
    unavailable: Callable[[], str | None] = lambda: None
    load_built: Callable[[BackendContext], tuple[EncodeFn, int] | None] | None = None


def backend_fingerprint(model_fingerprint: str, backend: Backend) -> str:
    """The embedding-cache fingerprint of a model run by a backend.

    The reference backend keeps the model's own fingerprint, so caches built before backends
    existed stay valid; every other backend gets its own.
    """
    if not backend.vector_tag:
        return model_fingerprint
    key = f"{model_fingerprint}|{backend.name}|{backend.vector_tag}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]
