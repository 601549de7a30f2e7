"""When to record: every N steps, once per epoch, or log-spaced (dense early, sparse late)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from weightlapse.errors import WeightlapseError


class Schedule:
    """Decides, for each step, whether it is recorded."""

    def due(self, step: int, epoch_end: bool = False) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Every(Schedule):
    """Every `n` steps, starting at step 0."""

    n: int = 1

    def __post_init__(self) -> None:
        if self.n < 1:
            raise WeightlapseError(f"every={self.n} is not a step interval; give an integer >= 1.")

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return step % self.n == 0


@dataclass(frozen=True)
class PerEpoch(Schedule):
    """At the end of each epoch (the integrations say when one ends)."""

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return epoch_end


@dataclass(frozen=True)
class LogSpaced(Schedule):
    """Dense early, where weights move fastest: about `per_decade` steps per power of ten.

    Step s is due when floor(per_decade * log10(s + 1)) moved since step s - 1, so the
    first steps are all recorded and the gaps then grow geometrically.
    """

    per_decade: int = 20

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return log_spaced_due(step, self.per_decade)


def log_spaced_due(step: int, per_decade: int) -> bool:
    """LogSpaced's rule, for any density (BudgetedLogSpaced changes its own)."""
    if step <= 0:
        return True
    k = per_decade
    return math.floor(k * math.log10(step + 1)) > math.floor(k * math.log10(step))


# A run this many decades of steps long (a million) is what the default snapshot schedule
# spreads the snapshot budget over.
RUN_DECADES = 6


@dataclass
class BudgetedLogSpaced(Schedule):
    """The default ('auto'): log-spaced like LogSpaced(most), thinned for a model whose
    snapshots are big next to the snapshot budget, so that the budget lasts a run of a
    million steps instead of running out in its first steps (a 25M-parameter model, 100 MB
    a snapshot, spent a 1 GiB budget on steps 0 to 9 at 20 a decade). The recorder calls
    `fit` with a snapshot's bytes when it first sees the tensors: per decade, the
    snapshots the budget holds (less one, kept for the final state) over RUN_DECADES, at
    most `most`, at least 1."""

    most: int = 20
    per_decade: int = 20
    fitted: bool = False

    def fit(self, snapshot_bytes: int, budget: int | None) -> None:
        self.fitted = True
        if budget is None or snapshot_bytes <= 0:
            return
        affordable = budget // snapshot_bytes - 1
        self.per_decade = max(1, min(self.most, affordable // RUN_DECADES))

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return log_spaced_due(step, self.per_decade)


@dataclass(frozen=True)
class Always(Schedule):
    """Every step (for example: a snapshot forced by run.log(snapshot=True))."""

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return True


@dataclass(frozen=True)
class Never(Schedule):
    """Never (for example: no snapshots)."""

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return False


@dataclass(frozen=True)
class Either(Schedule):
    """Due when either schedule is: 'log+every:100' is every step early, then every 100th."""

    first: Schedule
    second: Schedule

    def due(self, step: int, epoch_end: bool = False) -> bool:
        return self.first.due(step, epoch_end) or self.second.due(step, epoch_end)

    @property
    def fitted(self) -> bool:
        return getattr(self.first, "fitted", True) and getattr(self.second, "fitted", True)

    def fit(self, snapshot_bytes: int, budget: int | None) -> None:
        for part in (self.first, self.second):
            fit_to_budget(part, snapshot_bytes, budget)


def fit_to_budget(schedule: Schedule, snapshot_bytes: int, budget: int | None) -> None:
    """Tells a schedule that adapts to the snapshot budget (BudgetedLogSpaced) what a
    snapshot of the run's tensors takes; others do not change."""
    fit = getattr(schedule, "fit", None)
    if fit is not None:
        fit(snapshot_bytes, budget)


# Full snapshots by default: log-spaced, dense early where weights move fastest (20 a
# decade), thinner for a model too big for that within the snapshot budget.
DEFAULT_SNAPSHOTS = "auto"
# Histograms by default: log-spaced early, then every 10th recorded step. A histogram
# costs more than all the statistics of a step (a pass to bin, a bincount); steps
# without one keep every statistic and probe.
DEFAULT_HISTOGRAMS = "log+every:10"


def as_schedule(value: Schedule | int | str | None, *, what: str = "schedule") -> Schedule:
    """Accepts a Schedule, an int (every N steps), 'epoch', 'log', 'auto' (log-spaced,
    fitted to the snapshot budget), 'every:N', None (never), or two of them joined by '+'
    (due when either is)."""
    if isinstance(value, Schedule):
        return value
    if value is None:
        return Never()
    if isinstance(value, bool):
        raise WeightlapseError(f"{what}={value!r}: give an int, 'epoch', 'log' or 'every:N'.")
    if isinstance(value, int):
        return Every(value)
    text = str(value).strip().lower()
    if "+" in text:
        first, _, second = text.partition("+")
        return Either(as_schedule(first, what=what), as_schedule(second, what=what))
    if text == "epoch":
        return PerEpoch()
    if text == "log":
        return LogSpaced()
    if text == "auto":
        return BudgetedLogSpaced()
    if text.startswith("every:") and text[6:].isdigit():
        return Every(int(text[6:]))
    if text.startswith("log:") and text[4:].isdigit():
        return LogSpaced(int(text[4:]))
    raise WeightlapseError(
        f"{what}={value!r} is not a schedule; give an int N (every N steps), "
        "'every:N', 'epoch', 'log', 'log:PER_DECADE' or 'auto', or two joined by '+'."
    )
