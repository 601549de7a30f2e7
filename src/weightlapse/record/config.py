"""What a recorder records, and when: the options of `weightlapse.create`."""

from __future__ import annotations

from dataclasses import dataclass

from weightlapse.record.schedule import (
    DEFAULT_HISTOGRAMS,
    DEFAULT_SNAPSHOTS,
    Schedule,
    as_schedule,
)
from weightlapse.record.stats import DEFAULT_BINS


@dataclass
class RecordConfig:
    """What to record and when. Schedules accept an int (every N), 'epoch', 'log',
    'every:N' or, for snapshots, 'auto' (the default: log-spaced, thinned so that the
    snapshot budget lasts a million steps of the model: schedule.BudgetedLogSpaced).

    `snapshot_budget` caps the bytes of full snapshots; past it snapshots stop (with a
    warning) while statistics go on, and room is kept for the final state's.
    """

    include: str | tuple[str, ...] | list[str] | None = None
    exclude: str | tuple[str, ...] | list[str] | None = None
    every: Schedule | int | str = 1
    snapshots: Schedule | int | str | None = DEFAULT_SNAPSHOTS
    histograms: Schedule | int | str | None = DEFAULT_HISTOGRAMS
    snapshot_budget: int | None = 2**30
    gradients: bool = False
    updates: bool = False
    bins: int = DEFAULT_BINS
    max_probes: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        self.every = as_schedule(self.every, what="every")
        self.snapshots = as_schedule(self.snapshots, what="snapshots")
        self.histograms = as_schedule(self.histograms, what="histograms")
