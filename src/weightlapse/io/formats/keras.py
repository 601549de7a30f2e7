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
    classes = keras_classes(config)
    storage = _keras_storage_names(config)
    tensors: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    layers: dict[str, str] = {}
    with h5py.File(io.BytesIO(weights), "r") as f:
        checked = h5_datasets(f, path, options)  # all of it, before anything is read
        if "layers" not in f:
            raise CheckpointError(f"{path}: model.weights.h5 has no 'layers' group.")
        for full, item in checked:
            if not full.startswith("layers/"):
                continue
            full = full.removeprefix("layers/")
            prefix, vars_, index = (
                full.rpartition("/vars/")[0],
                "/vars/" in full,
                full.rsplit("/", 1)[-1],
            )
            if not vars_ or not index.isdigit():
                continue
            # Keras names storage groups by class (dense, dense_1, ...), not by the
            # layers' own names: map them back.
            stored = prefix.rsplit("/", 1)[-1]
            layer = storage.get(stored, stored)
            cls = classes.get(layer, "")
            names = KERAS_VARIABLES.get(cls, [])
            layer_path = prefix[: -len(stored)] + layer
            i = int(index)
            var = names[i] if i < len(names) else f"var{i}"
            name = f"{layer_path}/{var}"
            tensors[name] = as_numeric(item[()])
            layers[name] = layer_path
            if var == "kernel":
                layouts[name] = KERAS_LAYER_LAYOUTS.get(cls, "")
    return Checkpoint(
        path,
        "keras",
        tensors,
        layouts,
        layers,
        {"class": config.get("class_name", ""), "layers": classes},
    )


def keras_classes(config: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "class_name" in node
                and isinstance(node.get("config"), dict)
                and "name" in node["config"]
            ):
                found[node["config"]["name"]] = node["class_name"]
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
