"""weightlapse's own exceptions, and the warning a recorder gives when a problem stops it:
each message says what was wrong and what would be right."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable
from typing import Any


class WeightlapseError(Exception):
    """Base class of every error weightlapse raises on purpose."""


class RunFormatError(WeightlapseError):
    """A path is not a weightlapse run, or one written by a newer format version."""


class UnknownNameError(WeightlapseError, KeyError):
    """A name (of a view, statistic, scalar, layer...) that is not among the known ones."""

    def __init__(self, name: str, known: Iterable[str], what: str = "name") -> None:
        known = list(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        if not close:
            close = [k for k in known if name.lower() in k.lower()][:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        listing = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        message = f"No {what} named {name!r}.{hint} Known: {listing or 'none'}."
        super().__init__(message)
        self.name = name
        self.close_matches = close

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class UnknownTensorError(UnknownNameError):
    """A tensor name that the run does not hold."""

    def __init__(self, name: str, known: Iterable[str], what: str = "tensor") -> None:
        super().__init__(name, known, what)


class StepNotRecordedError(WeightlapseError, LookupError):
    """A step at which the asked-for data was not recorded."""


class MissingDependencyError(WeightlapseError, ImportError):
    """An optional framework or library that a feature needs is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"This needs {module}, which is not installed. "
            f"Install it with: pip install 'weightlapse[{extra}]'"
        )


class RecordingError(WeightlapseError):
    """Recording could not go on; what was committed before stays readable."""


def warn_recording_stopped(path: Any, step: int, exc: BaseException) -> None:
    """What a framework recorder says, once, when a problem inside training stops it."""
    warnings.warn(
        f"weightlapse stopped recording {path!s} at step {step}: {exc} Training goes on; "
        "the steps recorded before stay readable.",
        RuntimeWarning,
        stacklevel=4,
    )
