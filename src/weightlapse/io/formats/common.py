"""What every checkpoint reader returns, and the helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.record.recorder import parent_path


class CheckpointError(WeightlapseError):
    """A file that cannot be read as saved weights; the message says why and what to do."""


@dataclass
class Checkpoint:
    """Named arrays from one file, with what is known of each one's layer and layout."""

    path: Path
    format: str
    tensors: dict[str, np.ndarray]
    layouts: dict[str, str] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def as_numeric(array: Any) -> np.ndarray:
    """Numbers as they are; anything else (a string dataset, say) as float32."""
    out = np.asarray(array)
    return out if out.dtype.kind in "fiub" else out.astype(np.float32)


def parent_layers(tensors: dict[str, np.ndarray]) -> dict[str, str]:
    """The layer each name implies ('fc1.weight' -> 'fc1')."""
    return {n: parent_path(n) for n in tensors}


def require_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("h5py", "inspect") from exc
    return h5py
