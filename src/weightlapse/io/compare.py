"""Two checkpoints of one model compared: which tensors moved, and how much."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weightlapse.errors import WeightlapseError
from weightlapse.io.formats import Checkpoint


@dataclass(frozen=True)
class TensorChange:
    name: str
    shape: tuple[int, ...]
    relative: float  # ||B - A|| / ||A||
    max_abs: float  # largest |B - A|


@dataclass
class Comparison:
    changes: list[TensorChange]  # most moved first
    only_in_a: list[str]
    only_in_b: list[str]
    shape_changed: list[str]


def compare(a: Checkpoint, b: Checkpoint) -> Comparison:
    """Relative change of every tensor both checkpoints hold, largest first.

    >>> compare(read_checkpoint("epoch_1.pt"), read_checkpoint("epoch_9.pt")).changes[0]
    """
    changes, reshaped = [], []
    for name, before in a.tensors.items():
        after = b.tensors.get(name)
        if after is None:
            continue
        if after.shape != before.shape:
            reshaped.append(name)
            continue
        before64, after64 = before.astype(np.float64), after.astype(np.float64)
        delta = after64 - before64
        norm = float(np.linalg.norm(before64))
        change = float(np.linalg.norm(delta))
        relative = change / norm if norm > 0 else (0.0 if change == 0 else float("inf"))
        max_abs = float(np.max(np.abs(delta))) if delta.size else 0.0
        changes.append(TensorChange(name, tuple(before.shape), relative, max_abs))
    changes.sort(key=lambda c: -c.relative if np.isfinite(c.relative) else -np.inf)
    return Comparison(
        changes=changes,
        only_in_a=[n for n in a.tensors if n not in b.tensors],
        only_in_b=[n for n in b.tensors if n not in a.tensors],
        shape_changed=reshaped,
    )


def largest_matrix_change(
    comparison: Comparison, a: Checkpoint, b: Checkpoint
) -> tuple[str, np.ndarray]:
    """The most moved tensor of two or more axes, and its change B - A (for a heat map)."""
    moved = [c for c in comparison.changes if len(c.shape) >= 2]
    if not moved:
        raise WeightlapseError("No tensor of two or more axes to draw a difference of.")
    name = moved[0].name
    return name, b.tensors[name].astype(float) - a.tensors[name].astype(float)
