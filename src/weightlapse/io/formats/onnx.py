"""ONNX models: the graph's initializers, with their layer and layout from the nodes
that use them."""

from __future__ import annotations

from pathlib import Path

from weightlapse.errors import MissingDependencyError
from weightlapse.frameworks.layouts import TORCH_LAYOUT_BY_RANK
from weightlapse.io.formats.common import Checkpoint, CheckpointError


def read_onnx(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise MissingDependencyError("onnx", "inspect") from exc
    model = onnx.load(str(path), load_external_data=False)
    if not model.graph.node and not model.graph.initializer:
        raise CheckpointError(f"{path}: not an ONNX model (its graph is empty).")
    tensors = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layouts: dict[str, str] = {}
    layers: dict[str, str] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name not in tensors:
                continue
            layers[name] = node.name or name.rsplit(".", 1)[0]
            if position == 1 and node.op_type in ("Conv", "ConvTranspose"):
                base = TORCH_LAYOUT_BY_RANK.get(tensors[name].ndim, "")
                layouts[name] = base if node.op_type == "Conv" else base.replace("out,in", "in,out")
            elif position == 1 and node.op_type == "Gemm":
                trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
                layouts[name] = "out,in" if trans_b else "in,out"
            elif position == 1 and node.op_type == "MatMul":
                layouts[name] = "in,out"
    return Checkpoint(
        path,
        "onnx",
        tensors,
        layouts,
        layers,
        {"producer": model.producer_name, "opset": [o.version for o in model.opset_import]},
    )
