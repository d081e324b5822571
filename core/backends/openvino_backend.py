"""OpenVINO backends: ``openvino-bf16`` (the fp32 model run in bfloat16) and ``openvino-int8``.

Both run the transformer in OpenVINO's CPU runtime, built from the loaded model on first use and
cached (see ``openvino_export``); tokenisation, pooling and normalisation are the model's own
sentence-transformers modules, as with the ONNX backends. ``openvino-int8`` is statically
quantised (activation scales calibrated once on the bundled sample corpus), so unlike
``onnx-int8`` a text's vector does not depend on the other texts in its batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from core.backends.base import Backend, BackendContext, EncodeFn
from core.errors import WorkbenchError

ROWS_PER_CALL = 16
"""Texts per inference request, whatever the batch size (as ``onnx_runtime.SESSION_ROWS``)."""


def _missing(*modules: str) -> str | None:
    """Why one of ``modules`` is not installed, or None.

    Looks the modules up without importing them: importing NNCF alone takes 276 MB, and it is
    only needed the one time the int8 model is built.
    """
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install -r requirements.txt)"
    return None


def openvino_bf16_unavailable() -> str | None:
    """Why the bf16 backend cannot run fast here, or None."""
    reason = _missing("openvino", "onnx", "onnxruntime")  # the ONNX export is its source
    if reason:
        return reason
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "OpenVINO reports no native bfloat16 on this CPU (it needs AVX512-BF16 or AMX)"
    return None


def openvino_int8_unavailable() -> str | None:
    """Why the int8 backend cannot be built here, or None."""
    return _missing("openvino", "nncf", "onnx", "onnxruntime")


class OpenVinoEncoder:
    """Encode texts with an OpenVINO model of the transformer and the model's own pooling modules.

    Requests run asynchronously on one stream using every thread: two streams (OpenVINO's
    throughput default on two cores) encoded no faster here (3.8 s both, 256 scifact abstracts,
    medians of 3 interleaved runs at load 2) and held 115 MB more.

    Args:
        model: the loaded ``SentenceTransformer`` the OpenVINO model was built from.
        path: the OpenVINO IR (.xml, its weights in the .bin beside it).
        precision: the runtime's precision for what is not int8: ``"f32"`` or ``"bf16"``.
        threads: CPU threads (default: as many as torch uses).
    """

    def __init__(self, model: object, path: Path, precision: str,
                 threads: int | None = None) -> None:
        import openvino as ov
        import torch

        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        })
        self.queue = ov.AsyncInferQueue(
            self.compiled, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.model = model
        modules = list(model.children())
        self.output_key = getattr(modules[0], "module_output_name", "token_embeddings")
        self.tail = modules[1:]
        self.dim = int(model.get_embedding_dimension())

    def __call__(self, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        """Vectors for ``texts`` in order (as the model's last module leaves them)."""
        import torch

        texts = list(texts)
        if not texts:
            raise WorkbenchError("no texts to encode")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Longest first, as sentence-transformers does, so each batch pads to similar lengths.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        step = max(1, min(batch_size, ROWS_PER_CALL))
        pending: dict[int, tuple[np.ndarray, dict]] = {}
        tail, output_key = self.tail, self.output_key
        failures: list[BaseException] = []

        # Runs in OpenVINO's thread as each request completes; it holds no reference to the
        # encoder, so the compiled model is never released from that thread.
        def finish(request, start: int) -> None:
            rows, features = pending.pop(start)
            try:
                features[output_key] = torch.from_numpy(request.get_output_tensor(0).data.copy())
                with torch.inference_mode():
                    for module in tail:
                        features = module(features)
                out[rows] = features["sentence_embedding"].float().numpy()
            except Exception as err:  # re-raised below, in the caller's thread
                failures.append(err)

        queue = self.queue
        queue.set_callback(finish)
        for start in range(0, len(texts), step):
            rows = order[start:start + step]
            features = self.model.preprocess([texts[i] for i in rows], prompt=prompt or None)
            pending[start] = (rows, features)
            # Blocks while every request is busy, so at most that many batches are held.
            queue.start_async({n: features[n].numpy() for n in self.input_names}, start)
        queue.wait_all()
        if failures:
            raise WorkbenchError(f"OpenVINO encoding failed ({failures[0]})") from failures[0]
        return out


def _loader(int8: bool):
    def load(ctx: BackendContext) -> EncodeFn:
        from core.backends.openvino_export import ensure_openvino_model, precision

        artifact = ensure_openvino_model(ctx.model, ctx.fingerprint, ctx.cache_dir, int8)
        return OpenVinoEncoder(ctx.model, artifact.path, precision(int8))

    return load


def _tag(int8: bool) -> str:
    from core.backends.openvino_export import RECIPE, precision

    return f"openvino-{'int8' if int8 else 'fp32'}-{precision(int8)}-{RECIPE}"


OPENVINO_BF16 = Backend(
    name="openvino-bf16",
    summary="OpenVINO: the model run in bfloat16 (CPUs with AVX512-BF16 or AMX)",
    vector_tag=_tag(False),
    load=_loader(False),
    unavailable=openvino_bf16_unavailable,
)

OPENVINO_INT8 = Backend(
    name="openvino-int8",
    summary="OpenVINO int8: static quantisation with NNCF, calibrated on the bundled sample, "
            "built locally",
    vector_tag=_tag(True),
    load=_loader(True),
    unavailable=openvino_int8_unavailable,
)
