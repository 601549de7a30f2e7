"""TensorFlow checkpoints (a prefix, its .index file, or the folder holding them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightlapse.errors import MissingDependencyError
from weightlapse.io.formats.common import Checkpoint, ReadOptions, parent_layers


def read_tf_checkpoint(path: Path, options: ReadOptions) -> Checkpoint:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorflow (for TensorFlow checkpoints)", "tensorflow"
        ) from exc
    prefix = str(path)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path)) or prefix
    elif path.suffix == ".index":
        prefix = str(path.with_suffix(""))
    reader = tf.train.load_checkpoint(prefix)
    tensors = {}
    for name in sorted(reader.get_variable_to_shape_map()):
        if "OPTIMIZER_SLOT" in name or name.startswith(("_CHECKPOINTABLE", "save_counter")):
            continue
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            tensors[name.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")] = value
    return Checkpoint(path, "tf-checkpoint", tensors, {}, parent_layers(tensors))
