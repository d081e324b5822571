"""Build the OpenVINO backends' models from a loaded sentence-transformers model, once, and cache them.

The fp32 model is the ONNX backends' checked fp32 export (``onnx_export``), read by OpenVINO's
ONNX frontend and saved as OpenVINO IR; ``openvino-bf16`` runs it with the runtime's bfloat16
precision hint. The int8 model is that IR quantised by NNCF's post-training static quantisation:

* weights int8, symmetric, per output channel; activations int8 with scales **calibrated once**
  on ``CALIBRATION_DOCS`` documents and ``CALIBRATION_QUERIES`` queries of the bundled
  dbpedia-entity sample (not the data being mined, so every workspace gets the same model);
* the transformer preset (``ModelType.TRANSFORMER``): SmoothQuant moves activation outliers into
  the weights before quantising, layer norms, softmax and GELU stay in floating point, biases are
  corrected for the quantisation error on the calibration set;
* tokenisation and pooling run around it (``text_pipeline``); calibration batches are the loaded
  model's own tokenisation, unpadded, so the built model does not depend on the pipeline.

Measured on scifact (bench/RESULTS.md): mean cosine 0.997 to torch fp32 against 0.995 for
``onnx-int8``'s dynamic recipe, whose per-batch activation scale is the main error there.

Files live in ``<cache_dir>/<model fingerprint>-openvino-<RECIPE>/`` beside a manifest, built under
the same file lock and temporary-name discipline as the ONNX builds; each build is checked against
torch on probe texts and refused below its floor.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from core.backends.base import BuiltModel
from core.backends.onnx_export import RECIPE as ONNX_RECIPE
from core.backends.onnx_export import (
    EXPORT_MIN_COSINE, INT8_MIN_COSINE, PROBE_TEXTS, _locked, _normalised, _read_manifest,
    _write_manifest, ensure_onnx_model,
)
from core.backends.onnx_runtime import INPUT_KEYS
from core.backends.text_pipeline import TextPipeline
from core.errors import WorkbenchError

RECIPE = f"ov1.{ONNX_RECIPE}"
"""Bump ``ov1`` when the conversion, the quantisation or the calibration set changes the built
models; the ONNX export's recipe they start from is part of it."""
FP32_FILE = "model.xml"
INT8_FILE = "model-int8.xml"
MANIFEST_FILE = "manifest.json"
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample" / "dbpedia-entity-5k"
CALIBRATION_DOCS = 128
CALIBRATION_QUERIES = 32
CALIBRATION_BATCH = 8
INT8_PRECISION = "f32"
"""The runtime precision of what int8 leaves in floating point: f32, so the int8 model's vectors
are the same on CPUs with and without bfloat16 (bf16 here measured no faster)."""


def precision(int8: bool) -> str:
    """The runtime precision hint each OpenVINO backend compiles with."""
    return INT8_PRECISION if int8 else "bf16"


def artifact_dir(cache_dir: Path, fingerprint: str) -> Path:
    """The folder holding a model's OpenVINO builds under a cache folder."""
    return Path(cache_dir) / f"{fingerprint}-openvino-{RECIPE}"


def built_openvino_model(fingerprint: str, cache_dir: Path, int8: bool) -> Path | None:
    """The fp32 or int8 OpenVINO model already built for a model fingerprint, or None."""
    folder = artifact_dir(cache_dir, fingerprint)
    target = folder / (INT8_FILE if int8 else FP32_FILE)
    if _complete(target) and target.name in _read_manifest(folder):
        return target
    return None


def ensure_openvino_model(model: object, fingerprint: str, cache_dir: Path, int8: bool,
                          pipeline: TextPipeline) -> BuiltModel:
    """Return the fp32 or int8 OpenVINO model of ``model``, building it only if it is not cached.

    ``pipeline`` is what will run around the built model; the check of each build against torch
    runs through it.

    Raises:
        WorkbenchError: the model cannot be exported, the calibration sample is missing, or a
            build strays from torch.
    """
    folder = artifact_dir(cache_dir, fingerprint)
    target = folder / (INT8_FILE if int8 else FP32_FILE)
    with _locked(folder):
        manifest = _read_manifest(folder)
        built = False
        reference: list[np.ndarray] = []
        if not _complete(folder / FP32_FILE) or FP32_FILE not in manifest:
            onnx = ensure_onnx_model(model, fingerprint, cache_dir, int8=False)
            manifest[FP32_FILE] = _build(model, pipeline, folder / FP32_FILE,
                                         lambda out: _convert(onnx.path, out), "f32",
                                         EXPORT_MIN_COSINE, "conversion", reference)
            _write_manifest(folder, manifest)
            built = not int8
        if int8 and (not _complete(target) or INT8_FILE not in manifest):
            source = folder / FP32_FILE
            manifest[INT8_FILE] = _build(model, pipeline, target,
                                         lambda out: _quantize(model, source, out),
                                         INT8_PRECISION, INT8_MIN_COSINE, "int8 quantisation",
                                         reference)
            _write_manifest(folder, manifest)
            built = True
    return BuiltModel(target, built, manifest[target.name])


def _complete(xml: Path) -> bool:
    return xml.exists() and xml.with_suffix(".bin").exists()


def _build(model, pipeline: TextPipeline, target: Path, make, hint: str, floor: float, what: str,
           reference: list) -> dict:
    """Make ``target`` (.xml and .bin) under temporary names, check it, then move it in place."""
    tmp = target.with_name(target.stem + ".building.xml")
    started = time.perf_counter()
    try:
        details = make(tmp)
        if not reference:
            reference.append(_normalised(model.encode(
                list(PROBE_TEXTS), batch_size=4, convert_to_numpy=True, show_progress_bar=False)))
        cosines = probe_cosines(pipeline, tmp, hint, reference[0])
        if cosines.min() < floor:
            raise WorkbenchError(
                f"the OpenVINO {what} of the model strays from torch (cosine {cosines.min():.4f} "
                f"on a probe text, below the floor {floor})"
            )
        os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    import openvino

    return {
        **details, "recipe": RECIPE, "openvino": openvino.__version__, "precision_hint": hint,
        "seconds": round(time.perf_counter() - started, 1),
        "probe_cosine_min": round(float(cosines.min()), 5),
        "probe_cosine_mean": round(float(cosines.mean()), 5),
    }


def probe_cosines(pipeline: TextPipeline, path: Path, hint: str,
                  reference: np.ndarray) -> np.ndarray:
    """Cosine between the OpenVINO model's vectors and torch's (``reference``) per probe text."""
    from core.backends.openvino_backend import OpenVinoEncoder

    vectors = _normalised(OpenVinoEncoder(pipeline, path, hint)(list(PROBE_TEXTS), "", 4))
    return np.einsum("ij,ij->i", vectors, reference)


def _convert(onnx_path: Path, out: Path) -> dict:
    """Read the fp32 ONNX export with OpenVINO's ONNX frontend and save it as fp32 IR."""
    import openvino as ov

    ov.save_model(ov.Core().read_model(str(onnx_path)), str(out), compress_to_fp16=False)
    return {"source": f"onnx export {onnx_path.parent.name}/{onnx_path.name}"}


def calibration_texts(folder: Path = SAMPLE_DIR) -> list[str]:
    """Evenly spaced documents and the first queries of the bundled sample, shortest first.

    Raises:
        WorkbenchError: the sample is not where the repository keeps it.
    """
    from core.text import document_text

    corpus, queries = folder / "corpus.jsonl", folder / "queries.jsonl"
    if not corpus.exists() or not queries.exists():
        raise WorkbenchError(f"the int8 calibration needs the bundled sample at {folder}, which "
                             "is missing")
    with open(corpus, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    with open(queries, encoding="utf-8") as f:
        asked = [json.loads(line)["text"] for line in f if line.strip()]
    step = max(1, len(docs) // CALIBRATION_DOCS)
    texts = [document_text(d.get("title"), d.get("text")) for d in docs[::step][:CALIBRATION_DOCS]]
    return sorted(texts + asked[:CALIBRATION_QUERIES], key=len)


def _quantize(model: object, source: Path, out: Path) -> dict:
    """NNCF static int8 quantisation of ``source`` calibrated on ``calibration_texts()``."""
    os.environ.setdefault("NNCF_CI", "1")  # NNCF's switch for its usage telemetry: send nothing
    import nncf
    import openvino as ov

    texts = calibration_texts()
    batches = []
    for start in range(0, len(texts), CALIBRATION_BATCH):
        features = model.preprocess(texts[start:start + CALIBRATION_BATCH])
        batches.append({k: features[k].numpy() for k in INPUT_KEYS if k in features})
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars; stdout stays the CLI's
        quantized = nncf.quantize(ov.Core().read_model(str(source)), nncf.Dataset(batches),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))
    ov.save_model(quantized, str(out))
    return {"nncf": nncf.__version__, "calibration": f"{SAMPLE_DIR.name}: {len(texts)} texts",
            "weights": "int8 symmetric per channel", "activations": "int8 static",
            "model_type": "transformer (SmoothQuant, bias correction)"}
