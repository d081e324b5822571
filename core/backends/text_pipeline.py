"""What runs around an exported transformer: tokenisation before it, pooling after it.

Two ways, one shape (``TextPipeline``):

* ``FilePipeline`` reads a sentence-transformers model folder (``modules.json``, the tokenizer's
  ``tokenizer.json``, ``sentence_bert_config.json``, the Pooling config) and runs the ``tokenizers``
  library and numpy pooling. It needs neither torch nor the model's weights, so a backend whose
  transformer is already built (OpenVINO) encodes without holding the torch model: about 450 MB
  less resident memory (bench/RESULTS.md, issue 5 target 3). It pads every batch to a multiple
  of ``PAD_MULTIPLE`` tokens: OpenVINO's CPU plugin keeps compiled kernels per input shape, and
  short texts of every length made it grow by about 200 MB over a corpus. Padded positions are
  masked in attention and pooling, so vectors change only by float rounding.
* ``ModelPipeline`` wraps a loaded ``SentenceTransformer``: its own ``preprocess`` and the modules
  after the transformer, in torch. For the models ``FilePipeline`` does not cover (dense layers,
  prompt-excluding pooling, lower-casing done by sentence-transformers, no ``tokenizer.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

PAD_MULTIPLE = 16
"""Sequence lengths are padded up to a multiple of this (FilePipeline)."""
_LEGACY_MODES = {
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken",
}
_MODES = frozenset({"cls", "max", "mean", "mean_sqrt_len_tokens"})


class TextPipeline(Protocol):
    """Turns texts into the transformer's inputs, and its token outputs into one vector per text."""

    dim: int

    def features(self, texts: Sequence[str], prompt: str) -> dict:
        """The transformer's inputs for ``texts`` (numpy arrays by input name) and what ``pool``
        needs back."""

    def pool(self, hidden: np.ndarray, features: dict) -> np.ndarray:
        """One float32 vector per text from the token embeddings ``hidden`` (texts x tokens x d)."""


class FilePipeline:
    """Tokenise with ``tokenizers`` and pool in numpy, from a model folder's files alone.

    Build one with ``file_pipeline(folder)``, which returns None for models it does not cover.
    """

    def __init__(self, tokenizer, max_length: int, modes: tuple[str, ...], dim: int,
                 normalize: bool) -> None:
        self.tokenizer = tokenizer
        self.modes = modes
        self.normalize = normalize
        self.dim = dim * len(modes)
        tokenizer.enable_truncation(max_length, strategy="longest_first")

    def features(self, texts: Sequence[str], prompt: str) -> dict:
        encoded = self.tokenizer.encode_batch([prompt + t for t in texts] if prompt else list(texts))
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }

    def pool(self, hidden: np.ndarray, features: dict) -> np.ndarray:
        mask = features["attention_mask"][:, :, None].astype(np.float32)
        hidden = hidden.astype(np.float32, copy=False)
        out = []
        for mode in self.modes:
            if mode == "cls":
                first = features["attention_mask"].argmax(axis=1)
                out.append(hidden[np.arange(len(hidden)), first])
            elif mode == "max":
                out.append(np.where(mask > 0, hidden, -np.inf).max(axis=1))
            else:
                total = (hidden * mask).sum(axis=1)
                count = np.maximum(mask.sum(axis=1), np.float32(1e-9))
                out.append(total / (count if mode == "mean" else np.sqrt(count)))
        vectors = np.concatenate(out, axis=1).astype(np.float32, copy=False)
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, np.float32(1e-12))
        return vectors


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def file_pipeline(folder: Path) -> FilePipeline | None:
    """A ``FilePipeline`` for the sentence-transformers model in ``folder``, or None when the model
    is not a plain transformer, pooling and optional normalisation this class reproduces."""
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list) or not modules:
        return None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        return None
    base = folder / modules[0].get("path", "")
    config = _read_json(base / "sentence_bert_config.json")
    pooling = _read_json(folder / modules[1].get("path", "") / "config.json")
    tokenizer_config = _read_json(base / "tokenizer_config.json") or {}
    if not isinstance(config, dict) or not isinstance(pooling, dict):
        return None
    # sentence-transformers 6 saves the length in the tokenizer's config, older ones in its own.
    max_length = config.get("max_seq_length", tokenizer_config.get("model_max_length"))
    if config.get("do_lower_case") or config.get("processing_kwargs") or not isinstance(
            max_length, int) or max_length > 1 << 16:
        return None
    if not (base / "tokenizer.json").exists() or not pooling.get("include_prompt", True):
        return None
    modes = pooling.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in _LEGACY_MODES.items() if pooling.get(key)]
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    dim = pooling.get("embedding_dimension", pooling.get("word_embedding_dimension"))
    if not modes or any(m not in _MODES for m in modes) or not isinstance(dim, int):
        return None
    if tokenizer_config.get("padding_side", "right") != "right" or tokenizer_config.get(
            "truncation_side", "right") != "right":
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    pad_token = tokenizer_config.get("pad_token")
    if isinstance(pad_token, dict):
        pad_token = pad_token.get("content")
    pad_id = tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
    if pad_id is None:
        return None
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, pad_to_multiple_of=PAD_MULTIPLE)
    return FilePipeline(tokenizer, max_length, modes, dim, "Normalize" in kinds)


class ModelPipeline:
    """The loaded ``SentenceTransformer``'s own preprocessing and post-transformer modules."""

    def __init__(self, model: object) -> None:
        modules = list(model.children())
        self.model = model
        self.output_key = getattr(modules[0], "module_output_name", "token_embeddings")
        self.tail = modules[1:]
        self.dim = int(model.get_embedding_dimension())

    def features(self, texts: Sequence[str], prompt: str) -> dict:
        features = self.model.preprocess(list(texts), prompt=prompt or None)
        for key, value in list(features.items()):
            if hasattr(value, "numpy"):
                features[key] = value.numpy()
        return features

    def pool(self, hidden: np.ndarray, features: dict) -> np.ndarray:
        import torch

        tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in features.items()}
        tensors[self.output_key] = torch.from_numpy(hidden)
        with torch.inference_mode():
            for module in self.tail:
                tensors = module(tensors)
        return tensors["sentence_embedding"].float().numpy()


def matches_model(pipeline: FilePipeline, model: object, texts: Sequence[str],
                  prompt: str = "") -> bool:
    """Whether ``pipeline`` tokenises ``texts`` exactly as the loaded model does (padding aside)."""
    ours = pipeline.features(texts, prompt)
    theirs = model.preprocess(list(texts), prompt=prompt or None)
    if "input_ids" not in theirs or "attention_mask" not in theirs:
        return False
    ids, mask = theirs["input_ids"].numpy(), theirs["attention_mask"].numpy()
    width = ids.shape[1]
    if ours["input_ids"].shape[1] < width or ours["attention_mask"][:, width:].any():
        return False
    same = (np.array_equal(ours["input_ids"][:, :width], ids)
            and np.array_equal(ours["attention_mask"][:, :width], mask))
    if "token_type_ids" in theirs:
        same = same and np.array_equal(ours["token_type_ids"][:, :width],
                                       theirs["token_type_ids"].numpy())
    return same
