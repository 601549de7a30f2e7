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
from weightlapse.io.formats.keras import keras_classes


def read_keras_h5(path: Path, options: ReadOptions) -> Checkpoint:
    h5py = require_h5py()
    tensors: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    with h5py.File(path, "r") as f:
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
