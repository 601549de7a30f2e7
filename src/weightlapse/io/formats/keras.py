"""Keras 3 .keras files, read as data (config.json and the HDF5 weights inside the zip),
never by building the model, so no code in them runs."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.frameworks.layouts import KERAS_LAYER_LAYOUTS
from weightlapse.io.formats.common import (
    Checkpoint,
    CheckpointError,
    ReadOptions,
    as_numeric,
    h5_datasets,
    require_h5py,
)

# Keras 3 stores a layer's variables by position; these are their names.
KERAS_VARIABLES = {
    "Dense": ["kernel", "bias"],
    "EinsumDense": ["kernel", "bias"],
    "Conv1D": ["kernel", "bias"],
    "Conv2D": ["kernel", "bias"],
    "Conv3D": ["kernel", "bias"],
    "Conv1DTranspose": ["kernel", "bias"],
    "Conv2DTranspose": ["kernel", "bias"],
    "DepthwiseConv2D": ["kernel", "bias"],
    "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    "LayerNormalization": ["gamma", "beta"],
    "Embedding": ["embeddings"],
}


def read_keras(path: Path, options: ReadOptions) -> Checkpoint:
    h5py = require_h5py()
    with zipfile.ZipFile(path) as z:  # check_zip has bounded every entry's size
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    with h5py.File(io.BytesIO(weights), "r") as f:
        return read_keras3_weights(f, path, options, config, "keras")


def read_keras3_weights(
    f: Any, path: Path, options: ReadOptions, config: dict[str, Any], fmt: str
) -> Checkpoint:
    """The weights of Keras 3 (`layers/<storage>/vars/<i>`), named `<layer>/<variable>`.

    Keras stores a layer's variables under its class in snake case, made unique in layer
    order (conv2d, conv2d_1, ...), and by position: with the model's config (a .keras
    file, or a config.json beside a .weights.h5) the storage names map back to the
    layers' own names. A variable is named (kernel, bias, gamma, ...) only when the
    layer's variable count says which is which; otherwise it stays `var<i>`, never a
    guess (a BatchNormalization without `center` has 3 variables, not 4)."""
    classes = keras_classes(config)
    layer_options = keras_layer_options(config)
    storage = _keras_storage_names(config)
    by_snake = {_snake_case(c): c for c in KERAS_VARIABLES}
    checked = [
        (full.removeprefix("layers/"), item)
        for full, item in h5_datasets(f, path, options)
        if full.startswith("layers/") and "/vars/" in full
    ]
    counts: dict[str, int] = {}
    for full, _ in checked:
        prefix = full.rpartition("/vars/")[0]
        counts[prefix] = counts.get(prefix, 0) + 1
    tensors: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    layers: dict[str, str] = {}
    for full, item in checked:
        prefix, _, index = full.rpartition("/vars/")
        if not index.isdigit():
            continue
        stored = prefix.rsplit("/", 1)[-1]
        layer = storage.get(stored) or stored
        cls = classes.get(layer) or by_snake.get(re.sub(r"_\d+$", "", stored), "")
        names = _variable_names(cls, counts[prefix], layer_options.get(layer, {}))
        i = int(index)
        var = names[i] if i < len(names) else f"var{i}"
        layer_path = prefix[: -len(stored)] + layer
        name = f"{layer_path}/{var}"
        tensors[name] = as_numeric(item[()])
        layers[name] = layer_path
        if var == "kernel":
            layouts[name] = KERAS_LAYER_LAYOUTS.get(cls, "")
    if not tensors:
        raise CheckpointError(f"{path}: Keras weights with no layers/<layer>/vars/<i> in them.")
    meta = {"class": config.get("class_name", ""), "layers": classes}
    return Checkpoint(path, fmt, tensors, layouts, layers, meta)


def _variable_names(cls: str, count: int, options: dict[str, Any]) -> list[str]:
    names = KERAS_VARIABLES.get(cls, [])
    if cls in ("BatchNormalization", "LayerNormalization") and options:
        names = [
            n for n in names if options.get({"gamma": "scale", "beta": "center"}.get(n, ""), True)
        ]
    if count == len(names):
        return names
    if count == 1 and names[:2] == ["kernel", "bias"]:
        return ["kernel"]  # use_bias=False
    return []


def keras_classes(config: dict[str, Any]) -> dict[str, str]:
    return {name: node["class_name"] for name, node in _layer_nodes(config).items()}


def keras_layer_options(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: node["config"] for name, node in _layer_nodes(config).items()}


def _layer_nodes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "class_name" in node
                and isinstance(node.get("config"), dict)
                and "name" in node["config"]
            ):
                found[node["config"]["name"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _keras_storage_names(config: dict[str, Any]) -> dict[str, str]:
    """Keras 3 stores each layer's variables under its class name in snake case, made
    unique in layer order (conv2d, conv2d_1, ...). Returns storage name -> layer name."""
    layers = config.get("config", {}).get("layers", [])
    seen: dict[str, int] = {}
    out: dict[str, str] = {}
    for layer in layers if isinstance(layers, list) else []:
        cls = layer.get("class_name", "")
        if cls == "InputLayer":
            continue
        base = _snake_case(cls)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out[base if count == 0 else f"{base}_{count}"] = layer.get("config", {}).get("name", "")
    return out


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
