"""Build the ONNX backends' models from a loaded sentence-transformers model, once, and cache them.

The fp32 model is the model's transformer exported with ``torch.onnx.export`` (eager attention, so
ONNX Runtime's transformer optimizer can fuse attention, GELU and the layer norms), then fused. The
int8 model is built from that fp32 model by dynamic quantisation with care for fidelity:

* weights int8, symmetric, **per output channel** (the quantiser's defaults, per-tensor scales
  and int8 embeddings, measured a mean cosine to torch of 0.94 on scifact abstracts; this 0.994);
* activations uint8 with a scale computed per batch at run time (no calibration set needed);
* the projections quantised are the fused attention's QKV and every MatMul (attention output,
  feed-forward in and out);
* **kept in fp32**: the embeddings (word, position and type tables with their layer norm, one
  fused node the default quantiser would make int8), every layer norm and GELU, the attention
  scores and softmax, and the pooling and normalisation (they run in torch).

Which projections to keep in fp32 was measured, node by node, on scifact: the error is spread
evenly (keeping any one of the 24 in fp32 raised the mean cosine by at most 0.0013, the
first layers' feed-forward outputs the most), while keeping a sixth of the arithmetic in fp32 (the
first three feed-forward outputs, or the last layer) cut the speed-up from about 2.6x to 2.0x. So
the recipe keeps none by default; ``INT8_FP32_LAYERS`` names feed-forward outputs to keep.

Both files live in ``<cache_dir>/<model fingerprint>-<RECIPE>/`` beside a manifest that records how
they were built and how close they came to torch on probe texts. They are built under a file lock,
written under a temporary name and moved into place, so concurrent processes build them once and
an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from core.backends.base import BuiltModel
from core.backends.onnx_runtime import INPUT_KEYS, OnnxEncoder, check_pipeline
from core.errors import WorkbenchError

RECIPE = "r2"
"""Bump when the export or the quantisation changes what the built models compute."""
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
MANIFEST_FILE = "manifest.json"
OPSET = 17
# Architectures whose exports ONNX Runtime's BERT optimizer fuses (attention, GELU, layer norms).
_FUSABLE = frozenset({"bert", "roberta", "xlm-roberta"})
# Feed-forward output projections kept in fp32 in the int8 model (layer indices; see above).
INT8_FP32_LAYERS: tuple[int, ...] = ()
EXPORT_MIN_COSINE = 0.9999
"""The fp32 export must reproduce torch to this cosine on every probe text, or it is refused."""
INT8_MIN_COSINE = 0.95
"""The int8 model's floor on every probe text; below it the build is refused as broken. (Typical:
0.99-0.997 on sentences, about 0.98 on a one-letter text; naive per-tensor int8 falls to 0.91.)"""

PROBE_TEXTS = (
    "What is the capital of France?",
    "Paris is the capital and largest city of France, on the Seine.",
    "0-dimensional biomaterials lack inductive properties.",
    "Alterations of the architecture of cerebral white matter in the developing human brain can "
    "affect cortical development and result in functional disabilities. A line scan diffusion-"
    "weighted magnetic resonance imaging sequence with diffusion tensor analysis was applied to "
    "measure the apparent diffusion coefficient and relative anisotropy in preterm infants.",
    "memory safe programming language",
    "The guitar is a fretted musical instrument with six strings; the violin is bowed.",
    "x",
    "Photosynthesis converts light energy into chemical energy in plants, algae and bacteria, "
    "storing it in sugars built from carbon dioxide and water.",
)


def artifact_dir(cache_dir: Path, fingerprint: str) -> Path:
    """The folder holding a model's ONNX builds under a cache folder."""
    return Path(cache_dir) / f"{fingerprint}-{RECIPE}"


def ensure_onnx_model(model: object, fingerprint: str, cache_dir: Path, int8: bool) -> BuiltModel:
    """Return the fp32 or int8 ONNX model of ``model``, building it only if it is not cached.

    Raises:
        WorkbenchError: the model cannot be split for ONNX, or a build strays from torch.
    """
    check_pipeline(model)
    folder = artifact_dir(cache_dir, fingerprint)
    target = folder / (INT8_FILE if int8 else FP32_FILE)
    with _locked(folder):
        manifest = _read_manifest(folder)
        built = False
        reference: list[np.ndarray] = []  # torch's probe vectors, computed once if needed
        if not (folder / FP32_FILE).exists() or FP32_FILE not in manifest:
            manifest[FP32_FILE] = _build(model, folder / FP32_FILE, _export_fp32,
                                         EXPORT_MIN_COSINE, "export", reference)
            _write_manifest(folder, manifest)
            built = not int8
        if int8 and (not target.exists() or INT8_FILE not in manifest):
            source = folder / FP32_FILE
            manifest[INT8_FILE] = _build(model, target, lambda _m, tmp: _quantize(source, tmp),
                                         INT8_MIN_COSINE, "int8 quantisation", reference)
            _write_manifest(folder, manifest)
            built = True
    return BuiltModel(target, built, manifest[target.name])


def _build(model, target: Path, make, floor: float, what: str, reference: list) -> dict:
    """Make ``target`` through a temporary file, check it against torch, then move it in place."""
    tmp = target.with_name(target.name + ".building")
    started = time.perf_counter()
    try:
        details = make(model, tmp)
        if not reference:
            reference.append(_normalised(model.encode(
                list(PROBE_TEXTS), batch_size=4, convert_to_numpy=True, show_progress_bar=False)))
        cosines = probe_cosines(model, tmp, reference[0])
        if cosines.min() < floor:
            raise WorkbenchError(
                f"the ONNX {what} of the model strays from torch (cosine {cosines.min():.4f} on "
                f"a probe text, below the floor {floor})"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    import onnxruntime
    import torch

    return {
        **details, "recipe": RECIPE, "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "seconds": round(time.perf_counter() - started, 1),
        "probe_cosine_min": round(float(cosines.min()), 5),
        "probe_cosine_mean": round(float(cosines.mean()), 5),
    }


def probe_cosines(model: object, path: Path, reference: np.ndarray) -> np.ndarray:
    """Cosine between the ONNX model's vectors and torch's (``reference``) for each probe text."""
    vectors = _normalised(OnnxEncoder(model, path)(list(PROBE_TEXTS), "", 4))
    return np.einsum("ij,ij->i", vectors, reference)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _last_hidden(hf_model, names: tuple[str, ...]):
    """Wrap a Hugging Face model so the export takes positional tensors and returns one output."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = hf_model

        def forward(self, *tensors):
            return self.m(**dict(zip(names, tensors))).last_hidden_state

    return LastHidden().eval()


def _export_fp32(model: object, out: Path) -> dict:
    """Export the transformer (eager attention), fuse it where the architecture allows."""
    import torch

    sample = model.preprocess(list(PROBE_TEXTS[:2]))
    names = tuple(k for k in INPUT_KEYS if k in sample)
    other = [k for k, v in sample.items()
             if isinstance(v, torch.Tensor) and k not in INPUT_KEYS and k != "prompt_length"]
    if "input_ids" not in names or other:
        raise WorkbenchError(
            f"the ONNX backends support text models fed {', '.join(INPUT_KEYS)}; this one also "
            f"needs {', '.join(other) or 'other inputs'}"
        )
    hf_model = copy.deepcopy(list(model.children())[0].auto_model).eval()
    attention = getattr(hf_model.config, "_attn_implementation", None)
    if hasattr(hf_model, "set_attn_implementation"):
        hf_model.set_attn_implementation("eager")
        attention = "eager"
    raw = out.with_name(out.name + ".raw")
    dims = {"batch": 0, "sequence": 1}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _last_hidden(hf_model, names), tuple(sample[n] for n in names), str(raw),
                input_names=list(names), output_names=["last_hidden_state"],
                dynamic_axes={n: {v: k for k, v in dims.items()}
                              for n in (*names, "last_hidden_state")},
                opset_version=OPSET, dynamo=False,
            )
        fused = _fuse(raw, out, hf_model.config)
    except (RuntimeError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise WorkbenchError(f"the model could not be exported to ONNX ({first})") from err
    finally:
        raw.unlink(missing_ok=True)
    return {"inputs": list(names), "attention": attention, "fused": fused, "opset": OPSET}


def _fuse(raw: Path, out: Path, config) -> bool:
    """Fuse attention, GELU and layer norms with ONNX Runtime's optimizer; False if not possible."""
    if getattr(config, "model_type", "") not in _FUSABLE:
        os.replace(raw, out)
        return False
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(str(raw), model_type="bert",
                               num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size))
    optimized.save_model_to_file(str(out))
    return True


def int8_fp32_nodes(node_names: list[str]) -> list[str]:
    """The nodes the int8 recipe keeps in fp32: feed-forward outputs of ``INT8_FP32_LAYERS``."""
    keep = []
    for name in node_names:
        match = re.search(r"layer\.(\d+)/output/dense/", name)
        if match and int(match.group(1)) in INT8_FP32_LAYERS:
            keep.append(name)
    return keep


def _quantize(source: Path, out: Path) -> dict:
    """Dynamic int8 quantisation of ``source``: per-channel weights, sensitive nodes in fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    names = [n.name for n in graph.node if n.op_type in ("MatMul", "Attention")]
    keep = int8_fp32_nodes(names)
    op_types = sorted({n.op_type for n in graph.node} & {"MatMul", "Attention"})
    logging.disable(logging.WARNING)  # the quantiser logs advice meant for image models
    try:
        quantize_dynamic(
            str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=op_types, nodes_to_exclude=keep,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)
    fp32_ops = sorted({n.op_type for n in graph.node} - {"MatMul", "Attention", "Cast"})
    return {"quantized_op_types": op_types, "quantized_nodes": len(names) - len(keep),
            "fp32_nodes": keep, "fp32_ops": fp32_ops, "per_channel": True,
            "weights": "int8 symmetric", "activations": "uint8 dynamic"}


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a torn manifest only means the models are rebuilt


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_FILE)
