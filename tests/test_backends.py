"""Encode backends: each loads, gives normalised float32 vectors close to torch fp32, keeps its own
cache entries, and the int8 model is built once per cache folder and then reused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.backends import backend_names, get_backend
from core.backends.onnx_export import (
    FP32_FILE, INT8_FILE, INT8_MIN_COSINE, artifact_dir, ensure_onnx_model,
)
from core.backends.openvino_backend import openvino_bf16_unavailable, openvino_int8_unavailable
from core.backends.text_pipeline import PAD_MULTIPLE, ModelPipeline, file_pipeline, matches_model
from core.backends.torch_backend import (
    FUSED_MIN_COSINE, bf16_unavailable, cpu_flags, fused_view,
)
from core.cli import main
from core.embed import bundled_model_path, embed_texts, load_encoder, model_cache_dir
from core.errors import WorkbenchError
from core.store import Store

TEXTS = [
    "What is the capital of France?",
    "0-dimensional biomaterials lack inductive properties.",
    "Microstructural development of human newborn cerebral white matter assessed in vivo by "
    "diffusion tensor magnetic resonance imaging. Alterations of the architecture of cerebral "
    "white matter in the developing human brain can affect cortical development.",
    "memory safe programming language",
]
# Documented floors, measured cosine to torch fp32 on these texts.
ONNX_FP32_FLOOR = 0.9999
INT8_FLOOR = 0.98  # the same floor the build enforces on its probe texts (INT8_MIN_COSINE)
BF16_FLOOR = 0.999
OPENVINO_FLOORS = {"openvino-bf16": BF16_FLOOR, "openvino-int8": INT8_FLOOR}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A module-wide folder: its model-cache/ holds the ONNX builds every test here reuses."""
    return tmp_path_factory.mktemp("backends")


@pytest.fixture(scope="module")
def cache_dir(folder: Path) -> Path:
    return model_cache_dir(folder / "ws.duckdb")


@pytest.fixture(scope="module")
def reference():
    return load_encoder(None)


@pytest.fixture(scope="module")
def first_int8_build(reference, cache_dir):
    """The first int8 request on an empty cache folder (it builds the fp32 export too)."""
    assert not cache_dir.exists()
    return ensure_onnx_model(reference.model, reference.fingerprint, cache_dir, int8=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def test_registry_lists_the_reference_first():
    assert backend_names() == ["torch", "torch-bf16", "onnx", "onnx-int8", "openvino-bf16",
                               "openvino-int8"]
    assert get_backend("torch").vector_tag == ""


def test_unknown_backend_is_one_sentence():
    with pytest.raises(WorkbenchError) as err:
        load_encoder(None, backend="tensorrt")
    message = str(err.value)
    assert message == ("unknown backend 'tensorrt'; choose one of torch, torch-bf16, onnx, "
                       "onnx-int8, openvino-bf16, openvino-int8")


@pytest.mark.parametrize("backend, floor", [("onnx", ONNX_FP32_FLOOR), ("onnx-int8", INT8_FLOOR)])
def test_onnx_backends_are_normalised_float32_close_to_torch(
        backend, floor, reference, cache_dir, first_int8_build):
    encoder = load_encoder(None, backend=backend, cache_dir=cache_dir)
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), reference.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, reference.encode(TEXTS)).min() >= floor
    assert encoder.backend == backend and encoder.name == f"all-MiniLM-L6-v2 ({backend})"


def test_onnx_pools_as_the_model_config_says(reference, cache_dir, first_int8_build):
    config = json.loads((Path(bundled_model_path()) / "1_Pooling" / "config.json").read_text())
    assert config["pooling_mode_mean_tokens"] and not config["pooling_mode_cls_token"]
    encoder = load_encoder(None, backend="onnx", cache_dir=cache_dir)
    tail = {type(m).__name__: m for m in encoder.encode_fn.tail}
    assert tail["Pooling"].pooling_mode == "mean" and "Normalize" in tail
    # A prompt goes through the model's own preprocessing, as with torch.
    prompted = encoder.encode(["a hadron"], prompt="query: ")
    assert _cosines(prompted, reference.encode(["a hadron"], prompt="query: "))[0] >= 0.9999


def _plain_encode(model, texts):
    return model.encode(list(texts), batch_size=2, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)


def test_torch_encodes_through_a_fused_view_that_leaves_the_model_alone(reference):
    from torch import nn

    view, count = fused_view(reference.model)
    if not count:
        pytest.skip("this torch build has no oneDNN linear")
    layer = reference.model[0].auto_model.encoder.layer[0]
    fused_layer = view[0].auto_model.encoder.layer[0]
    # The loaded model is shared by every backend in the process: it keeps its own layers.
    assert type(layer.intermediate.dense) is nn.Linear
    assert type(layer.intermediate.intermediate_act_fn).__name__ == "GELUActivation"
    assert type(fused_layer.intermediate.dense).__name__ == "FusedLinear"
    assert isinstance(fused_layer.intermediate.intermediate_act_fn, nn.Identity)
    # Six layers x (query, key, value, attention output, GELU feed-forward, output) + pooler.
    assert count == 6 * 6 + 1
    # It shares the model's tensors rather than copying them.
    weight = layer.intermediate.dense.weight
    assert fused_layer.intermediate.dense.weight.data_ptr() == weight.data_ptr()
    plain = _plain_encode(reference.model, TEXTS)
    assert _cosines(_plain_encode(view, TEXTS), plain).min() >= FUSED_MIN_COSINE
    # And the torch backend's encoder is that view.
    assert _cosines(reference.encode(TEXTS), plain).min() >= FUSED_MIN_COSINE


def test_fused_view_of_another_model(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    view, count = fused_view(model)
    if not count:
        pytest.skip("this torch build has no oneDNN linear")
    assert count == 6 + 1
    plain = _plain_encode(model, TEXTS)
    assert _cosines(_plain_encode(view, TEXTS), plain).min() >= FUSED_MIN_COSINE


def test_torch_runs_the_plain_model_when_fusion_is_missing_or_differs(monkeypatch, reference):
    import torch

    import core.backends.torch_backend as torch_backend

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert fused_view(reference.model) == (reference.model, 0)
    monkeypatch.undo()
    # A view that does not reproduce the model on the probe texts is not used.
    monkeypatch.setattr(torch_backend, "FUSED_MIN_COSINE", 1.5)
    with pytest.warns(RuntimeWarning, match="reproduce the model only to cosine"):
        assert torch_backend.checked_fused_view(reference.model) is reference.model
    monkeypatch.setattr(torch_backend, "FUSED_MIN_COSINE", FUSED_MIN_COSINE)
    assert torch_backend.checked_fused_view(reference.model) is not reference.model


def test_bf16_when_the_cpu_has_it(reference):
    if bf16_unavailable():
        pytest.skip(bf16_unavailable())
    encoder = load_encoder(None, backend="torch-bf16")
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, reference.encode(TEXTS)).min() >= BF16_FLOOR


def test_bf16_refuses_a_cpu_without_it(monkeypatch):
    import core.backends.torch_backend as torch_backend

    monkeypatch.setattr(torch_backend, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(WorkbenchError, match="backend 'torch-bf16' cannot run here: the CPU "
                                             "reports neither avx512_bf16 nor amx_bf16"):
        load_encoder(None, backend="torch-bf16")


def test_cpu_flags_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_each_backend_has_its_own_cache_entries(store, reference, cache_dir, first_int8_build):
    int8 = load_encoder(None, backend="onnx-int8", cache_dir=cache_dir)
    onnx = load_encoder(None, backend="onnx", cache_dir=cache_dir)
    fingerprints = {reference.fingerprint, int8.fingerprint, onnx.fingerprint}
    assert len(fingerprints) == 3
    a = embed_texts(store, reference, ["shared text"])
    b = embed_texts(store, int8, ["shared text"])  # not served from torch's entry
    assert store.count_vectors(reference.fingerprint) == 1
    assert store.count_vectors(int8.fingerprint) == 1
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(b, int8.encode(["shared text"]), atol=1e-6)


def test_int8_is_built_once_and_then_reused(reference, cache_dir, first_int8_build):
    assert first_int8_build.built
    path = first_int8_build.path
    assert path == artifact_dir(cache_dir, reference.fingerprint) / INT8_FILE
    assert (path.parent / FP32_FILE).exists()
    assert first_int8_build.manifest["per_channel"]
    assert first_int8_build.manifest["probe_cosine_min"] >= INT8_MIN_COSINE
    # Embeddings and layer norms stay in fp32; pooling and normalisation run in torch.
    assert {"EmbedLayerNormalization", "SkipLayerNormalization"} <= set(
        first_int8_build.manifest["fp32_ops"])
    stamp = os.stat(path).st_mtime_ns
    again = ensure_onnx_model(reference.model, reference.fingerprint, cache_dir, int8=True)
    assert not again.built and again.path == path and os.stat(path).st_mtime_ns == stamp
    assert not list(path.parent.glob("*.building"))


def test_mine_threads_the_backend_through_cli(folder, tiny_beir, capsys, first_int8_build):
    workspace = folder / "ws.duckdb"  # its model-cache/ is the one built above
    assert main(["ingest", "--workspace", str(workspace), "--beir", str(tiny_beir),
                 "--split", "train"]) == 0
    assert main(["mine", "--workspace", str(workspace), "--strategy", "top_k",
                 "--num-negatives", "2", "--backend", "onnx-int8", "--quiet"]) == 0
    assert "(onnx-int8)" in capsys.readouterr().out
    store = Store(workspace)
    try:
        run = store.list_runs()[0]
        assert run.model == "all-MiniLM-L6-v2 (onnx-int8)"
    finally:
        store.close()
    assert main(["mine", "--workspace", str(workspace), "--strategy", "top_k",
                 "--backend", "fp4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: unknown backend 'fp4'; choose one of torch, torch-bf16, onnx, "
                   "onnx-int8, openvino-bf16, openvino-int8")


@pytest.fixture(scope="module")
def first_openvino_int8_build(reference, cache_dir, first_int8_build):
    """The first openvino-int8 request, calibrated on a slice of the sample to stay quick (the
    fp32 ONNX export it starts from is the one built above)."""
    if openvino_int8_unavailable():
        pytest.skip(openvino_int8_unavailable())
    from core.backends import openvino_export

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openvino_export, "CALIBRATION_DOCS", 24)
        patch.setattr(openvino_export, "CALIBRATION_QUERIES", 8)
        return openvino_export.ensure_openvino_model(
            reference.model, reference.fingerprint, cache_dir, int8=True,
            pipeline=file_pipeline(Path(bundled_model_path())))


@pytest.mark.parametrize("backend", ["openvino-bf16", "openvino-int8"])
def test_openvino_backends_are_normalised_float32_close_to_torch(
        backend, reference, cache_dir, first_openvino_int8_build):
    if backend == "openvino-bf16" and openvino_bf16_unavailable():
        pytest.skip(openvino_bf16_unavailable())
    encoder = load_encoder(None, backend=backend, cache_dir=cache_dir)
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), reference.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, reference.encode(TEXTS)).min() >= OPENVINO_FLOORS[backend]
    # A prompt goes through the model's own preprocessing, as with torch.
    prompted = encoder.encode(["a hadron"], prompt="query: ")
    assert _cosines(prompted, reference.encode(["a hadron"], prompt="query: "))[0] >= 0.98
    assert encoder.name == f"all-MiniLM-L6-v2 ({backend})"


def test_openvino_int8_vectors_do_not_depend_on_batch_mates(cache_dir, first_openvino_int8_build):
    encoder = load_encoder(None, backend="openvino-int8", cache_dir=cache_dir)
    together = encoder.encode(TEXTS)
    alone = np.concatenate([encoder.encode([t]) for t in TEXTS])
    assert _cosines(together, alone).min() >= 0.9999  # static scales: padding aside, identical


def test_openvino_int8_is_built_once_with_its_own_cache_entries(
        store, reference, cache_dir, first_openvino_int8_build):
    from core.backends.openvino_export import FP32_FILE, INT8_FILE
    from core.backends.openvino_export import artifact_dir as openvino_dir

    build = first_openvino_int8_build
    assert build.built and build.path == openvino_dir(cache_dir, reference.fingerprint) / INT8_FILE
    assert (build.path.parent / FP32_FILE).exists() and build.path.with_suffix(".bin").exists()
    assert build.manifest["activations"] == "int8 static"
    assert build.manifest["calibration"] == "dbpedia-entity-5k: 32 texts"
    assert build.manifest["probe_cosine_min"] >= INT8_MIN_COSINE
    assert not list(build.path.parent.glob("*.building*"))
    stamp = os.stat(build.path).st_mtime_ns
    int8 = load_encoder(None, backend="openvino-int8", cache_dir=cache_dir)
    assert os.stat(build.path).st_mtime_ns == stamp  # reused, not rebuilt
    onnx_int8 = load_encoder(None, backend="onnx-int8", cache_dir=cache_dir)
    assert len({reference.fingerprint, int8.fingerprint, onnx_int8.fingerprint}) == 3
    embed_texts(store, reference, ["shared text"])
    b = embed_texts(store, int8, ["shared text"])  # not served from torch's entry
    assert store.count_vectors(int8.fingerprint) == 1
    np.testing.assert_allclose(b, int8.encode(["shared text"]), atol=1e-6)


def test_openvino_int8_calibration_needs_the_bundled_sample(tmp_path):
    from core.backends.openvino_export import calibration_texts

    texts = calibration_texts()
    assert len(texts) == 160 and texts == sorted(texts, key=len)
    with pytest.raises(WorkbenchError, match="needs the bundled sample at .* which is missing"):
        calibration_texts(tmp_path)


def test_file_pipeline_tokenises_and_pools_as_the_model(reference):
    pipeline = file_pipeline(Path(bundled_model_path()))
    assert pipeline is not None and pipeline.dim == reference.dim
    for prompt in ("", "query: "):
        assert matches_model(pipeline, reference.model, TEXTS, prompt)
    features = pipeline.features(TEXTS, "")
    assert features["input_ids"].shape[1] % PAD_MULTIPLE == 0
    import torch

    with torch.inference_mode():
        hidden = reference.model[0]({k: torch.from_numpy(v) for k, v in features.items()})
    hidden = hidden["token_embeddings"].numpy()
    model_features = ModelPipeline(reference.model).features(TEXTS, "")
    width = model_features["input_ids"].shape[1]
    np.testing.assert_allclose(pipeline.pool(hidden, features),
                               ModelPipeline(reference.model).pool(hidden[:, :width],
                                                                   model_features), atol=1e-5)


def test_file_pipeline_declines_models_it_does_not_reproduce(tmp_path):
    import shutil

    assert file_pipeline(tmp_path) is None  # not a model folder
    copy = tmp_path / "dense"
    shutil.copytree(bundled_model_path(), copy)
    modules = json.loads((copy / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense",
                       "type": "sentence_transformers.models.Dense"})
    (copy / "modules.json").write_text(json.dumps(modules))
    assert file_pipeline(copy) is None  # a dense layer runs in torch


def test_file_pipeline_reads_another_saved_model(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    pipeline = file_pipeline(tiny_model_dir)
    assert pipeline is not None and pipeline.dim == 32
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    assert matches_model(pipeline, model, TEXTS + ["word " * 300])  # truncated at 128 tokens
    assert matches_model(pipeline, model, TEXTS, "query: ")


def test_openvino_int8_runs_from_its_built_model_without_torch(cache_dir,
                                                                first_openvino_int8_build):
    """Once built (and its folder's fingerprint recorded), a new process encodes with the int8
    model without importing torch, to the same vectors and cache fingerprint."""
    import subprocess
    import sys

    encoder = load_encoder(None, backend="openvino-int8", cache_dir=cache_dir)
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from core.embed import load_encoder;"
        "e = load_encoder(None, backend='openvino-int8', cache_dir=sys.argv[2]);"
        f"v = e.encode({TEXTS!r});"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'model': e.model is not None,"
        " 'fingerprint': e.fingerprint, 'vectors': v.tolist()}))"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", script, repo, str(cache_dir)], check=True,
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["torch"] is False and child["model"] is False
    assert child["fingerprint"] == encoder.fingerprint
    np.testing.assert_allclose(np.array(child["vectors"], dtype=np.float32),
                               encoder.encode(TEXTS), atol=1e-5)
