"""The snapshot budget: full snapshots stop (with one warning) once the bytes they would
take pass `snapshot_budget`; statistics go on."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from weightlapse.store.layout import snapshot_nbytes


class SnapshotBudget:
    """Bytes of snapshots taken so far (as stored), against the budget. Snapshots during
    the run leave room for one more: the final state, taken at close, always fits when
    any snapshot does (a big model used to spend the budget on its first steps, and
    then had no snapshot of the trained model)."""

    def __init__(self, budget: int | None, spent: int = 0) -> None:
        self.budget = budget
        self.spent = spent
        self._sizes: dict[tuple, int] = {}  # bytes a snapshot of these tensors takes
        self._warned = False

    def size_of(self, tensors: Mapping[str, Any]) -> int:
        """Bytes a snapshot of `tensors` takes, as stored."""
        key = (tuple(tensors), tuple(t.dtype for t in tensors.values()))
        size = self._sizes.get(key)
        if size is None:
            size = self._sizes[key] = sum(snapshot_nbytes(t) for t in tensors.values())
        return size

    def allows(self, tensors: Mapping[str, Any], final: bool = False) -> bool:
        """Whether a snapshot of `tensors` fits, with room left for the final one unless
        it is the `final` one (it warns, once, when one no longer does)."""
        if self.budget is None:
            return True
        size = self.size_of(tensors)
        if self.spent + size * (1 if final else 2) <= self.budget:
            return True
        if not self._warned:
            warnings.warn(
                f"weightlapse: the snapshot budget of {self.budget:,} bytes is reached; "
                "statistics go on, full snapshots stop (room is kept for the final "
                "state's, at close). Raise snapshot_budget or snapshot less often.",
                RuntimeWarning,
                stacklevel=4,
            )
            self._warned = True
        return False
