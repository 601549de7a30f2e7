"""PyTorch files (torch.save): state dicts and training checkpoints, unpickled only with
weights_only unless the caller trusts the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError
from weightlapse.frameworks.layouts import torch_state_dict_layouts
from weightlapse.io.formats.common import Checkpoint, CheckpointError, ReadOptions, parent_layers


def read_pytorch(path: Path, options: ReadOptions) -> Checkpoint:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "torch") from exc
    trust_pickle = options.trust_pickle
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        if trust_pickle or "weights_only" not in str(exc) and "Unsupported" not in str(exc):
            raise
        raise CheckpointError(
            f"{path}: refused to unpickle it: it holds Python objects beyond tensors "
            "(a whole pickled model, or custom classes), and unpickling can run any code. "
            "If you trust where it came from, pass --trust-pickle (trust_pickle=True)."
        ) from None
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach()
            tensors[prefix] = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(value, (int, float, str, bool)) and prefix:
            meta[prefix] = value

    # A training checkpoint nests the weights: {"epoch": 3, "model_state_dict": {...}}.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            meta.update({k: v for k, v in loaded.items() if isinstance(v, (int, float, str))})
            loaded = loaded[key]
            break
    walk(loaded, "")
    layouts = torch_state_dict_layouts({n: a.shape for n, a in tensors.items()})
    return Checkpoint(path, "pytorch", tensors, layouts, parent_layers(tensors), meta)
