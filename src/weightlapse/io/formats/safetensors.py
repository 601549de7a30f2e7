"""safetensors files (bfloat16 and other dtypes NumPy lacks go through torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightlapse.errors import MissingDependencyError
from weightlapse.frameworks.layouts import torch_state_dict_layouts
from weightlapse.io.formats.common import Checkpoint, ReadOptions, parent_layers


def read_safetensors(path: Path, options: ReadOptions) -> Checkpoint:
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise MissingDependencyError("safetensors", "inspect") from exc
    tensors: dict[str, np.ndarray] = {}
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
            try:
                tensors[name] = f.get_tensor(name)
            except (TypeError, ValueError):  # bfloat16 and friends NumPy lacks
                tensors[name] = _via_torch_safetensors(path, name)
    return Checkpoint(path, "safetensors", tensors, _layouts(tensors), parent_layers(tensors))


def _via_torch_safetensors(path: Path, name: str) -> np.ndarray:
    try:
        from safetensors import safe_open
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("safetensors", "inspect") from exc
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name).float().numpy()
    except ImportError as exc:
        raise MissingDependencyError("torch (to read bfloat16 tensors)", "torch") from exc


def _layouts(tensors: dict[str, np.ndarray]) -> dict[str, str]:
    return torch_state_dict_layouts({n: a.shape for n, a in tensors.items()})
