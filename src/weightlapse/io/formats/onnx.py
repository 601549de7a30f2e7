"""ONNX models: the graph's initializers, with their layer and layout from the nodes
that use them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from weightlapse.errors import MissingDependencyError
from weightlapse.frameworks.layouts import TORCH_LAYOUT_BY_RANK
from weightlapse.io.formats.common import (
    Checkpoint,
    CheckpointError,
    ReadOptions,
    check_declared,
    check_stored,
)


def read_onnx(path: Path, options: ReadOptions) -> Checkpoint:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise MissingDependencyError("onnx", "inspect") from exc
    model = onnx.load(str(path), load_external_data=False)
    if not model.graph.node and not model.graph.initializer:
        raise CheckpointError(f"{path}: not an ONNX model (its graph is empty).")
    base = path.resolve().parent
    tensors = {}
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            _check_external(path, base, init, options)
        # base_dir is the model's own folder, never the working directory
        tensors[init.name] = numpy_helper.to_array(init, base_dir=str(base))
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


def _check_external(path: Path, base: Path, init: Any, options: ReadOptions) -> None:
    """External data is read only when allowed, and only from the model's own folder."""
    entries = {e.key: e.value for e in init.external_data}
    location = entries.get("location", "")
    if not options.allow_external_data:
        raise CheckpointError(
            f"{path}: refused, initializer {init.name!r} reads its data from {location!r}, "
            "outside this file; if you trust the model, pass --allow-external-data "
            "(allow_external_data=True) to read external data from the model's folder."
        )
    target = (base / location).resolve()
    if os.path.commonpath([base, target]) != str(base) or not target.is_file():
        raise CheckpointError(
            f"{path}: refused, initializer {init.name!r} reads {location!r}, outside the "
            "model's folder (or missing); external data must sit beside the model."
        )
    declared = int(entries.get("length", target.stat().st_size))
    check_declared(path, f"initializer {init.name!r}", declared, options)
    check_stored(path, f"initializer {init.name!r}", declared, target.stat().st_size, False)
