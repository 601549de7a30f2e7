"""Legacy Keras .h5 files (model.save in the HDF5 format, or save_weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from weightlapse.frameworks.layouts import KERAS_LAYER_LAYOUTS
from weightlapse.io.formats.common import (
    Checkpoint,
    ReadOptions,
    as_numeric,
    h5_datasets,
    parent_layers,
    require_h5py,
)
from weightlapse.io.formats.keras import keras_classes, read_keras3_weights


def read_keras_h5(path: Path, options: ReadOptions) -> Checkpoint:
    h5py = require_h5py()
    tensors: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        if "layers" in f and "model_weights" not in f:  # Keras 3 save_weights (.weights.h5)
            return read_keras3_weights(f, path, options, _config_beside(path), "keras-weights")
        root = f["model_weights"] if "model_weights" in f else f
        classes: dict[str, str] = {}
        raw = f.attrs.get("model_config")
        if raw is not None:
            classes = keras_classes(json.loads(raw if isinstance(raw, str) else raw.decode()))
        for full, item in h5_datasets(root, path, options):
            parts = full.replace(":0", "").split("/")
            # model_weights/<layer>/<model>/<layer>/kernel -> <layer>/kernel
            name = f"{parts[0]}/{parts[-1]}" if len(parts) > 1 else parts[0]
            if name in tensors:
                name = full
            tensors[name] = as_numeric(item[()])
            if parts[-1] == "kernel":
                layouts[name] = KERAS_LAYER_LAYOUTS.get(classes.get(parts[0], ""), "")
    return Checkpoint(
        path, "keras-h5", tensors, layouts, parent_layers(tensors), {"layers": classes}
    )


def _config_beside(path: Path) -> dict:
    """A Keras model config saved beside the weights (config.json, or <name>.json), which
    maps Keras's storage names back to the layers' names; {} when there is none or it
    is not one (it is only ever read as JSON)."""
    stem = path.name.removesuffix(".weights.h5").removesuffix(".h5")
    for candidate in (path.with_name("config.json"), path.with_name(f"{stem}.json")):
        try:
            if candidate.is_file() and candidate.stat().st_size < 64 * 2**20:
                config = json.loads(candidate.read_text())
                if isinstance(config, dict) and "class_name" in config:
                    return config
        except (OSError, ValueError):
            continue
    return {}
