"""NumPy .npy and .npz files (pickled objects only when the caller trusts the file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightlapse.io.formats.common import Checkpoint, CheckpointError, as_numeric, parent_layers


def read_numpy(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        loaded = np.load(path, allow_pickle=trust_pickle)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CheckpointError(
                f"{path}: refused to unpickle it: it holds Python objects, not plain arrays, "
                "and unpickling can run any code. If you trust it, pass --trust-pickle."
            ) from None
        raise
    if isinstance(loaded, np.ndarray):
        return Checkpoint(path, "npy", {path.stem: as_numeric(loaded)})
    with loaded:
        tensors = {k: as_numeric(loaded[k]) for k in loaded.files}
    return Checkpoint(path, "npz", tensors, {}, parent_layers(tensors))
