#!/usr/bin/env python3
"""Writes the tiny hand-made models tests/Microsoft.ML.Lora.Tests/Onnx/OnnxRuntimeCheckerTests.cs runs
through tests/onnx/run.mjs, to tests/fixtures/onnx/. Needs Debian's python3-onnx (1.12); run once and
commit the outputs:  /usr/bin/python3 tests/onnx/make_test_models.py

The weights follow closed formulas the C# tests recompute (keep both in step):
  linear.onnx  X[N,3] float32 -> Y[N,4] = X @ W + B,  W[i,j] = (4*i + j + 1)/8 - 0.75,  B[j] = j/2 - 0.25
  gather.onnx  ids[B,S] int64 -> emb[B,S,3] = E[ids],  E[r,c] = 10*r + c + 0.5 (E is [5,3]);
               next_ids[B,S] int64 = ids + 1
  half.onnx    X[N] float32 -> H[N] float16 = Cast(X)
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "onnx")


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="make_test_models.py")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name)
    onnx.save(model, path)
    print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")


def linear():
    w = np.array([[(4 * i + j + 1) / 8 - 0.75 for j in range(4)] for i in range(3)], dtype=np.float32)
    b = np.array([j / 2 - 0.25 for j in range(4)], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    save(graph, "linear.onnx")


def gather():
    e = np.array([[10 * r + c + 0.5 for c in range(3)] for r in range(5)], dtype=np.float32)
    one = np.array(1, dtype=np.int64)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "ids"], ["emb"], axis=0), helper.make_node("Add", ["ids", "one"], ["next_ids"])],
        "gather",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["batch", "seq", 3]),
            helper.make_tensor_value_info("next_ids", TensorProto.INT64, ["batch", "seq"]),
        ],
        [numpy_helper.from_array(e, "E"), numpy_helper.from_array(one, "one")],
    )
    save(graph, "gather.onnx")


def half():
    graph = helper.make_graph(
        [helper.make_node("Cast", ["X"], ["H"], to=TensorProto.FLOAT16)],
        "half",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("H", TensorProto.FLOAT16, ["N"])],
    )
    save(graph, "half.onnx")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    linear()
    gather()
    half()
