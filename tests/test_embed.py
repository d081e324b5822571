"""Embedding: the bundled model offline, local model folders, and the per-text cache."""

from __future__ import annotations

import numpy as np
import pytest

from core.embed import DEFAULT_MODEL, Encoder, embed_texts, load_encoder
from core.errors import WorkbenchError
from core.text import text_hash


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return load_encoder(None)


class CountingEncoder:
    """Wraps the real encoder and counts what it is asked to encode (a spy, not a fake)."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name, self.fingerprint, self.dim = inner.name, inner.fingerprint, inner.dim
        self.encoded: list[str] = []

    def encode(self, texts, prompt=""):
        self.encoded.extend(texts)
        return self.inner.encode(texts, prompt)


def test_bundled_model_loads_offline_and_normalises(encoder):
    assert encoder.name == DEFAULT_MODEL and encoder.dim == 384
    vectors = encoder.encode(["a cat on a mat", "quantum chromodynamics"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert load_encoder("all-MiniLM-L6-v2") is encoder  # aliases resolve to the bundled copy


def test_cache_encodes_only_new_texts(store, encoder):
    spy = CountingEncoder(encoder)
    first = embed_texts(store, spy, ["alpha text", "beta text", "alpha text"])
    assert sorted(spy.encoded) == ["alpha text", "beta text"]  # duplicates encoded once
    np.testing.assert_array_equal(first[0], first[2])
    spy.encoded.clear()
    again = embed_texts(store, spy, ["beta text", "gamma text", "alpha text"])
    assert spy.encoded == ["gamma text"]
    np.testing.assert_allclose(again[0], first[1], atol=1e-6)
    np.testing.assert_allclose(again[2], first[0], atol=1e-6)
    assert store.count_vectors(encoder.fingerprint) == 3


def test_prompt_change_never_returns_stale_vectors(store, encoder):
    plain = embed_texts(store, encoder, ["what is a hadron"])
    prompted = embed_texts(store, encoder, ["what is a hadron"], prompt="query: ")
    direct = encoder.encode(["query: what is a hadron"])
    assert not np.allclose(plain, prompted)
    np.testing.assert_allclose(prompted, direct, atol=1e-5)
    assert store.count_vectors(encoder.fingerprint) == 2


def test_progress_reports_only_the_work_left(store, encoder):
    calls = []
    embed_texts(store, encoder, ["one", "two", "three"], progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    calls.clear()
    embed_texts(store, encoder, ["one", "two", "three"], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 0)]


def test_resume_after_interruption_keeps_committed_chunks(store, encoder, monkeypatch):
    import core.embed as embed

    monkeypatch.setattr(embed, "ENCODE_CHUNK", 2)
    texts = [f"sentence number {i}" for i in range(6)]
    spy = CountingEncoder(encoder)
    original = spy.encode

    def fail_on_third_chunk(batch, prompt=""):
        if len(spy.encoded) >= 4:
            raise KeyboardInterrupt
        return original(batch, prompt)

    spy.encode = fail_on_third_chunk
    with pytest.raises(KeyboardInterrupt):
        embed_texts(store, spy, texts)
    assert store.count_vectors(encoder.fingerprint) == 4
    spy2 = CountingEncoder(encoder)
    embed_texts(store, spy2, texts)
    assert len(spy2.encoded) == 2


def test_local_model_folder_has_its_own_fingerprint(store, encoder, tiny_model_dir):
    other = load_encoder(str(tiny_model_dir))
    assert other.dim == 32 and other.fingerprint != encoder.fingerprint
    a = embed_texts(store, other, ["shared text"])
    b = embed_texts(store, encoder, ["shared text"])
    assert a.shape == (1, 32) and b.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_saved_copy_of_bundled_model_has_same_fingerprint(encoder, tmp_path):
    encoder.model.save(str(tmp_path / "copy"))
    copy = load_encoder(str(tmp_path / "copy"))
    assert copy.fingerprint == encoder.fingerprint
    np.testing.assert_allclose(copy.encode(["x y z"]), encoder.encode(["x y z"]), atol=1e-5)


def test_bad_model_path_is_one_sentence(tmp_path):
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "readme.txt").write_text("hi")
    with pytest.raises(WorkbenchError, match="not a sentence-transformers model folder"):
        load_encoder(str(tmp_path / "notamodel"))


def test_hashes_key_the_cache(store, encoder):
    out = embed_texts(store, encoder, ["x"], hashes=[text_hash("x")])
    assert out.shape == (1, 384)


def test_recorded_fingerprint_follows_the_model_folder_files(tmp_path):
    from core.embed import _record_fingerprint, _recorded_fingerprint

    model_dir, cache = tmp_path / "model", tmp_path / "model-cache"
    (model_dir / "1_Pooling").mkdir(parents=True)
    (model_dir / "model.safetensors").write_bytes(b"weights")
    (model_dir / "1_Pooling" / "config.json").write_text("{}")
    assert _recorded_fingerprint(cache, model_dir) is None  # nothing recorded yet
    _record_fingerprint(cache, model_dir, "f1")
    assert _recorded_fingerprint(cache, model_dir) == "f1"
    assert _recorded_fingerprint(tmp_path / "elsewhere", model_dir) is None
    (model_dir / "model.safetensors").write_bytes(b"fine-tuned weights")  # saved again in place
    assert _recorded_fingerprint(cache, model_dir) is None
