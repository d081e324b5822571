"""ONNX Runtime backends: ``onnx`` (fp32 export) and ``onnx-int8`` (quantised, built locally).

Both are built from the loaded model on first use and cached (see ``onnx_export``); the transformer
runs in ONNX Runtime, pooling and normalisation in the model's own modules (``onnx_runtime``).
"""

from __future__ import annotations

from core.backends.base import Backend, BackendContext, EncodeFn


def onnxruntime_unavailable() -> str | None:
    """Why ONNX Runtime cannot be used here, or None."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install -r requirements.txt)"
    return None


def _loader(int8: bool):
    def load(ctx: BackendContext) -> EncodeFn:
        from core.backends.onnx_export import ensure_onnx_model
        from core.backends.onnx_runtime import OnnxEncoder

        artifact = ensure_onnx_model(ctx.model, ctx.fingerprint, ctx.cache_dir, int8)
        return OnnxEncoder(ctx.model, artifact.path)

    return load


def _tag(int8: bool) -> str:
    from core.backends.onnx_export import RECIPE

    return f"onnx-{'int8' if int8 else 'fp32'}-{RECIPE}"


ONNX = Backend(
    name="onnx",
    summary="ONNX Runtime fp32: the model exported and fused locally",
    vector_tag=_tag(False),
    load=_loader(False),
    unavailable=onnxruntime_unavailable,
)

ONNX_INT8 = Backend(
    name="onnx-int8",
    summary="ONNX Runtime int8: per-channel dynamic quantisation built locally, sensitive layers "
            "in fp32",
    vector_tag=_tag(True),
    load=_loader(True),
    unavailable=onnxruntime_unavailable,
)
