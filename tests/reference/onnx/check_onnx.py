#!/usr/bin/env python3
"""Independent check of an ONNX file written by Microsoft.ML.Lora.Onnx.

Usage: check_onnx.py MODEL.onnx
Runs onnx.checker.check_model(full_check=True) on the path (which also checks that external
data locations stay inside the model folder) and on the loaded model, then prints a JSON summary
on stdout. Exits non-zero with the checker's message on any failure.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dims_of(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        which = d.WhichOneof("value")
        out.append(d.dim_value if which == "dim_value" else d.dim_param)
    return out


def tensor_summary(t):
    arr = numpy_helper.to_array(t)
    return {
        "name": t.name,
        "dims": list(t.dims),
        "data_type": t.data_type,
        "sum": float(np.sum(arr.astype(np.float64))),
        "values": [float(v) for v in arr.astype(np.float64).ravel()[:64]],
    }


def attribute_value(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, onnx.TensorProto):
        return tensor_summary(v)
    if isinstance(v, (list, tuple)) or type(v).__name__.startswith("Repeated"):
        return [float(x) if a.type == onnx.AttributeProto.FLOATS else int(x) for x in v]
    if a.type == onnx.AttributeProto.FLOAT:
        return float(v)
    return int(v)


def main():
    path = sys.argv[1]
    onnx.checker.check_model(path, full_check=True)

    raw = onnx.load(path, load_external_data=False)
    external = {}
    for t in raw.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in t.external_data}
            if not os.path.isfile(os.path.join(os.path.dirname(path), entries["location"])):
                raise SystemExit(f"external data file {entries['location']} missing for {t.name}")
            external[t.name] = {k: (int(v) if k in ("offset", "length") else v) for k, v in entries.items()}

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    summary = {
        "ir_version": model.ir_version,
        "producer_name": model.producer_name,
        "opsets": {o.domain: o.version for o in model.opset_import},
        "metadata": {p.key: p.value for p in model.metadata_props},
        "graph_name": g.name,
        "nodes": [
            {
                "op_type": n.op_type,
                "name": n.name,
                "domain": n.domain,
                "inputs": list(n.input),
                "outputs": list(n.output),
                "attributes": {a.name: {"type": a.type, "value": attribute_value(a)} for a in n.attribute},
            }
            for n in g.node
        ],
        "inputs": [{"name": i.name, "elem_type": i.type.tensor_type.elem_type, "shape": dims_of(i)} for i in g.input],
        "outputs": [{"name": o.name, "elem_type": o.type.tensor_type.elem_type, "shape": dims_of(o)} for o in g.output],
        "initializers": [dict(tensor_summary(t), external=external.get(t.name)) for t in g.initializer],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
