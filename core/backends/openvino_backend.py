"""OpenVINO backends: ``openvino-bf16`` (the fp32 model run in bfloat16) and ``openvino-int8``.

Both run the transformer in OpenVINO's CPU runtime, built from the loaded model on first use and
cached (see ``openvino_export``). Tokenisation and pooling run from the model folder's files
(``text_pipeline.FilePipeline``: no torch), or as the model's own sentence-transformers modules
for models that pipeline does not cover. Once the model is built, a model whose folder the file
pipeline covers is encoded without loading the torch model at all (``load_built``).
``openvino-int8`` is statically quantised (activation scales calibrated once on the bundled sample
corpus), so unlike ``onnx-int8`` a text's vector does not depend on the other texts in its batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from core.backends.base import Backend, BackendContext, EncodeFn
from core.backends.text_pipeline import ModelPipeline, TextPipeline, file_pipeline
from core.errors import WorkbenchError

PIPELINE = "p2"
"""Part of the vectors' tag: ``p2`` tokenises and pools from the model folder's files, padded to
16 tokens (``text_pipeline``); bump when what runs around the transformer changes its vectors."""
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
    """Encode texts with an OpenVINO model of the transformer and a pipeline around it.

    Requests run asynchronously on one stream using every thread: two streams (OpenVINO's
    throughput default on two cores) encoded no faster here (3.8 s both, 256 scifact abstracts,
    medians of 3 interleaved runs at load 2) and held 115 MB more.

    Args:
        pipeline: tokenisation and pooling (``text_pipeline``: from the model folder's files, or
            the loaded model's own modules).
        path: the OpenVINO IR (.xml, its weights in the .bin beside it).
        precision: the runtime's precision for what is not int8: ``"f32"`` or ``"bf16"``.
        threads: CPU threads (default: OpenVINO's, one per physical core).
    """

    def __init__(self, pipeline: TextPipeline, path: Path, precision: str,
                 threads: int | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "THROUGHPUT",
                  "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.queue = ov.AsyncInferQueue(
            self.compiled, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.pipeline = pipeline
        self.dim = pipeline.dim

    def __call__(self, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        """Vectors for ``texts`` in order (as the model's last module leaves them)."""
        texts = list(texts)
        if not texts:
            raise WorkbenchError("no texts to encode")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Longest first, as sentence-transformers does, so each batch pads to similar lengths.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        step = max(1, min(batch_size, ROWS_PER_CALL))
        pending: dict[int, tuple[np.ndarray, dict]] = {}
        pipeline = self.pipeline
        failures: list[BaseException] = []

        # Runs in OpenVINO's thread as each request completes; it holds no reference to the
        # encoder, so the compiled model is never released from that thread.
        def finish(request, start: int) -> None:
            rows, features = pending.pop(start)
            try:
                out[rows] = pipeline.pool(request.get_output_tensor(0).data.copy(), features)
            except Exception as err:  # re-raised below, in the caller's thread
                failures.append(err)

        queue = self.queue
        queue.set_callback(finish)
        for start in range(0, len(texts), step):
            rows = order[start:start + step]
            features = pipeline.features([texts[i] for i in rows], prompt)
            pending[start] = (rows, features)
            # Blocks while every request is busy, so at most that many batches are held.
            queue.start_async({n: features[n] for n in self.input_names}, start)
        queue.wait_all()
        if failures:
            raise WorkbenchError(f"OpenVINO encoding failed ({failures[0]})") from failures[0]
        return out


def pipeline_for(ctx: BackendContext) -> TextPipeline:
    """The model folder's file pipeline where ``ctx`` names one, else the loaded model's own."""
    if ctx.model_dir is not None:
        pipeline = file_pipeline(ctx.model_dir)
        if pipeline is not None:
            return pipeline
    if ctx.model is None:
        raise WorkbenchError("the model was not loaded and its folder cannot be tokenised alone")
    return ModelPipeline(ctx.model)


def _loader(int8: bool):
    def load(ctx: BackendContext) -> EncodeFn:
        from core.backends.openvino_export import ensure_openvino_model, precision

        pipeline = pipeline_for(ctx)
        artifact = ensure_openvino_model(ctx.model, ctx.fingerprint, ctx.cache_dir, int8,
                                         pipeline)
        return OpenVinoEncoder(pipeline, artifact.path, precision(int8))

    return load


def _built_loader(int8: bool):
    def load_built(ctx: BackendContext) -> tuple[EncodeFn, int] | None:
        from core.backends.openvino_export import built_openvino_model, precision

        path = built_openvino_model(ctx.fingerprint, ctx.cache_dir, int8)
        pipeline = file_pipeline(ctx.model_dir) if ctx.model_dir is not None else None
        if path is None or pipeline is None:
            return None
        return OpenVinoEncoder(pipeline, path, precision(int8)), pipeline.dim

    return load_built


def _tag(int8: bool) -> str:
    from core.backends.openvino_export import RECIPE, precision

    return f"openvino-{'int8' if int8 else 'fp32'}-{precision(int8)}-{RECIPE}-{PIPELINE}"


OPENVINO_BF16 = Backend(
    name="openvino-bf16",
    summary="OpenVINO: the model run in bfloat16 (CPUs with AVX512-BF16 or AMX)",
    vector_tag=_tag(False),
    load=_loader(False),
    unavailable=openvino_bf16_unavailable,
    load_built=_built_loader(False),
)

OPENVINO_INT8 = Backend(
    name="openvino-int8",
    summary="OpenVINO int8: static quantisation with NNCF, calibrated on the bundled sample, "
            "built locally",
    vector_tag=_tag(True),
    load=_loader(True),
    unavailable=openvino_int8_unavailable,
    load_built=_built_loader(True),
)
