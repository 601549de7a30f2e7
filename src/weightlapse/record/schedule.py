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
        if step <= 0:
            return True
        k = self.per_decade
        return math.floor(k * math.log10(step + 1)) > math.floor(k * math.log10(step))


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


# Full snapshots by default: log-spaced, dense early where weights move fastest.
DEFAULT_SNAPSHOTS = "log"
# Histograms by default: log-spaced early, then every 10th recorded step. A histogram
# costs more than all the statistics of a step (a pass to bin, a bincount); steps
# without one keep every statistic and probe.
DEFAULT_HISTOGRAMS = "log+every:10"


def as_schedule(value: Schedule | int | str | None, *, what: str = "schedule") -> Schedule:
    """Accepts a Schedule, an int (every N steps), 'epoch', 'log', 'every:N', None (never),
    or two of them joined by '+' (due when either is)."""
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
    if text.startswith("every:") and text[6:].isdigit():
        return Every(int(text[6:]))
    if text.startswith("log:") and text[4:].isdigit():
        return LogSpaced(int(text[4:]))
    raise WeightlapseError(
        f"{what}={value!r} is not a schedule; give an int N (every N steps), "
        "'every:N', 'epoch', 'log' or 'log:PER_DECADE', or two joined by '+'."
    )
