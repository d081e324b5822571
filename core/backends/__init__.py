"""Encode backends: how a loaded sentence-transformers model turns texts into vectors.

One module per runtime, one shared shape (``Backend``), one explicit registry. ``torch`` (fp32) is
the reference that the others are measured against in bench/encode_backends.py; ``mine --backend``
and ``MineRequest.backend`` choose by name.
"""

from __future__ import annotations

from core.backends.base import Backend, BackendContext, EncodeFn, backend_fingerprint
from core.errors import WorkbenchError
from core.registry import Registry

DEFAULT_BACKEND = "torch"

_REGISTRY: Registry[Backend] = Registry("backend", WorkbenchError)


def register(backend: Backend) -> Backend:
    """Add a backend; a second backend under the same name is refused (ValueError)."""
    return _REGISTRY.register(backend.name, backend)


def get_backend(name: str) -> Backend:
    """Return a registered backend by name.

    Raises:
        WorkbenchError: unknown name (the message lists the valid ones).
    """
    return _REGISTRY.get(name)


def backend_names() -> list[str]:
    """Names of the registered backends, in registration order (the reference first)."""
    return _REGISTRY.names()


def _register_builtins() -> None:
    from core.backends import onnx_backend, openvino_backend, torch_backend

    for backend in (torch_backend.TORCH, torch_backend.TORCH_BF16, onnx_backend.ONNX,
                    onnx_backend.ONNX_INT8, openvino_backend.OPENVINO_BF16,
                    openvino_backend.OPENVINO_INT8):
        register(backend)


_register_builtins()

__all__ = [
    "DEFAULT_BACKEND", "Backend", "BackendContext", "EncodeFn", "backend_fingerprint",
    "backend_names", "get_backend", "register",
]
