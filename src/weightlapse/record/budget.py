"""The snapshot budget: full snapshots stop (with one warning) once the bytes they would
take pass `snapshot_budget`; statistics go on."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from weightlapse.store.layout import snapshot_nbytes


class SnapshotBudget:
    """Bytes of snapshots taken so far (as stored), against the budget."""

    def __init__(self, budget: int | None, spent: int = 0) -> None:
        self.budget = budget
        self.spent = spent
        self._sizes: dict[tuple, int] = {}  # bytes a snapshot of these tensors takes
        self._warned = False

    def allows(self, tensors: Mapping[str, Any]) -> bool:
        """Whether a snapshot of `tensors` fits (it warns, once, when one no longer does)."""
        if self.budget is None:
            return True
        key = (tuple(tensors), tuple(t.dtype for t in tensors.values()))
        size = self._sizes.get(key)
        if size is None:
            size = self._sizes[key] = sum(snapshot_nbytes(t) for t in tensors.values())
        if self.spent + size <= self.budget:
            return True
        if not self._warned:
            warnings.warn(
                f"weightlapse: the snapshot budget of {self.budget:,} bytes is reached; "
                "statistics go on, full snapshots stop. Raise snapshot_budget or snapshot "
                "less often.",
                RuntimeWarning,
                stacklevel=4,
            )
            self._warned = True
        return False
