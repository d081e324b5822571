"""PyTorch backends: fp32 (the reference every other backend is compared with) and bf16.

``torch`` runs the model's own weights in fp32 through a *fused view* of it (``fused_view``) where
oneDNN (MKL-DNN) is available: every ``nn.Linear`` calls oneDNN's linear with the bias, and the
feed-forward GELU where the model has the usual ``dense`` + ``intermediate_act_fn`` pair, applied
inside the matrix product, instead of PyTorch's eager ``addmm`` (which first copies the bias into
the output) followed by a separate GELU pass over the 4x-wide activations. Same weights, same
arithmetic up to float rounding (checked on probe texts at load: cosine >= ``FUSED_MIN_COSINE``
to the plain model, else the plain model runs), about 0.8x the encode time of
``model.encode`` on this machine (bench/RESULTS.md, issue 5 target 3). The view shares the loaded
model's tensors (no extra memory) and leaves the model itself untouched.

``torch-bf16`` runs the same weights under CPU autocast: matrix products in bfloat16, layer norms,
softmax and pooling in float32. It needs a CPU with native bfloat16 arithmetic (AVX512-BF16 or
AMX); elsewhere autocast emulates it and is slower than fp32, so the backend refuses to load.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from core.backends.base import Backend, BackendContext, EncodeFn

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FUSED_MIN_COSINE = 0.99999
"""The fused view must reproduce the plain model to this cosine on every probe text, or it is not
used (measured: 0.9999999 on scifact abstracts)."""


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


def encode_with(model: object, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
    """``SentenceTransformer.encode`` as every torch path here calls it: normalised numpy rows."""
    return model.encode(
        list(texts), prompt=prompt or None, batch_size=batch_size, normalize_embeddings=True,
        convert_to_numpy=True, show_progress_bar=False,
    )


def _fused_linear_class():
    import torch
    from torch import nn

    class FusedLinear(nn.Module):
        """``nn.Linear`` (and the GELU after it, if any) as one oneDNN call on the same tensors."""

        def __init__(self, linear: nn.Linear, gelu: str = "") -> None:
            super().__init__()
            self.weight = linear.weight.detach()
            self.bias = None if linear.bias is None else linear.bias.detach()
            self.attr, self.algorithm = ("gelu", gelu) if gelu else ("none", "")

        def forward(self, x):
            return torch.ops.mkldnn._linear_pointwise(
                x, self.weight, self.bias, self.attr, [], self.algorithm)

    return FusedLinear


def _gelu_kind(module: object) -> str:
    """oneDNN's name for the GELU a module computes ("none": erf, "tanh"), else ""."""
    import torch
    from torch import nn

    if isinstance(module, nn.GELU):
        return module.approximate if module.approximate in ("none", "tanh") else ""
    # transformers' GELUActivation wraps torch's exact (erf) GELU.
    if type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is (
            torch.nn.functional.gelu):
        return "none"
    return ""


def fused_view(model: object) -> tuple[object, int]:
    """A copy of ``model``'s module tree with its linear layers fused (see the module docstring),
    and how many layers were fused.

    Modules are shallow copies sharing the model's parameters; only the copies' child lists
    change, so ``model`` itself is never modified. Returns ``(model, 0)`` where oneDNN is missing.
    """
    import torch
    from torch import nn

    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn,
                                                                "_linear_pointwise"):
        return model, 0
    fused_linear = _fused_linear_class()
    count = 0

    def rebuild(module: nn.Module) -> nn.Module:
        nonlocal count
        if type(module) is nn.Linear:
            count += 1
            return fused_linear(module)
        children = dict(module._modules)
        dense, act = children.get("dense"), children.get("intermediate_act_fn")
        gelu = _gelu_kind(act) if act is not None else ""
        if type(dense) is nn.Linear and gelu:
            children["dense"] = fused_linear(dense, gelu)
            children["intermediate_act_fn"] = nn.Identity()
            count += 1
            names = [n for n in children if n not in ("dense", "intermediate_act_fn")]
        else:
            names = list(children)
        view = copy.copy(module)  # shares parameters and buffers; gets its own child list
        view._modules = {n: (rebuild(c) if n in names and c is not None else c)
                         for n, c in children.items()}
        return view

    return rebuild(model), count


def checked_fused_view(model: object) -> object:
    """The fused view where it reproduces ``model`` on the probe texts, else ``model`` itself."""
    from core.backends.onnx_export import PROBE_TEXTS

    try:
        view, count = fused_view(model)
        if not count:
            return model
        texts = list(PROBE_TEXTS)
        plain = encode_with(model, texts, "", 8)
        fused = encode_with(view, texts, "", 8)
    except (RuntimeError, TypeError, ValueError, AttributeError) as err:
        warnings.warn(f"torch backend: fused linear layers failed ({err}); encoding with the "
                      f"plain model, which is slower", RuntimeWarning, stacklevel=2)
        return model
    cosine = float(np.einsum("ij,ij->i", plain, fused).min())
    if cosine < FUSED_MIN_COSINE:
        warnings.warn(f"torch backend: fused linear layers reproduce the model only to cosine "
                      f"{cosine:.6f} (< {FUSED_MIN_COSINE}); encoding with the plain model, which "
                      f"is slower", RuntimeWarning, stacklevel=2)
        return model
    return view


def _load_fp32(ctx: BackendContext) -> EncodeFn:
    model = checked_fused_view(ctx.model)

    def encode(texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        return encode_with(model, texts, prompt, batch_size)

    return encode


def _load_bf16(ctx: BackendContext) -> EncodeFn:
    import torch

    def encode(texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return encode_with(ctx.model, texts, prompt, batch_size)

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
