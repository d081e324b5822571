"""PyTorch backends: fp32 (the reference every other backend is compared with) and bf16.

``torch-bf16`` runs the same weights under CPU autocast: matrix products in bfloat16, layer norms,
softmax and pooling in float32. It needs a CPU with native bfloat16 arithmetic (AVX512-BF16 or
AMX); elsewhere autocast emulates it and is slower than fp32, so the backend refuses to load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from core.backends.base import Backend, BackendContext, EncodeFn

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags the kernel reports (empty when it does not say)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def bf16_unavailable() -> str | None:
    """Why bf16 encoding would not be fast here, or None when the CPU has native bfloat16."""
    if cpu_flags() & set(_BF16_FLAGS):
        return None
    return "the CPU reports neither avx512_bf16 nor amx_bf16, so bfloat16 would be slower than fp32"


def _encode_with(model: object, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
    return model.encode(
        list(texts), prompt=prompt or None, batch_size=batch_size, normalize_embeddings=True,
        convert_to_numpy=True, show_progress_bar=False,
    )


def _load_fp32(ctx: BackendContext) -> EncodeFn:
    def encode(texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        return _encode_with(ctx.model, texts, prompt, batch_size)

    return encode


def _load_bf16(ctx: BackendContext) -> EncodeFn:
    import torch

    def encode(texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return _encode_with(ctx.model, texts, prompt, batch_size)

    return encode


TORCH = Backend(
    name="torch",
    summary="PyTorch fp32, the reference",
    vector_tag="",
    load=_load_fp32,
)

TORCH_BF16 = Backend(
    name="torch-bf16",
    summary="PyTorch with bfloat16 autocast (CPUs with AVX512-BF16 or AMX)",
    vector_tag="autocast-bf16",
    load=_load_bf16,
    unavailable=bf16_unavailable,
)
