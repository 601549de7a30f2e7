"""Health checks of a recorded run: what went wrong, where and when, from its statistics.

Each finding names the tensor, the kind, the first step and the statistic behind it.
Thresholds are the field's rules of thumb (update ratios near 1e-3, gradients that
grow or shrink by orders of magnitude); each is a module constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weightlapse.frameworks.layouts import unit_axis
from weightlapse.history import TensorHistory
from weightlapse.run import Run

EXPLODING_FACTOR = 100.0  # gradient L2 this many times its early level
VANISHING_FACTOR = 1e-3  # ... or this fraction of it
UPDATE_RATIO_HIGH = 1e-2  # ||dW|| / ||W|| well above the usual 1e-3: learning rate too high
UPDATE_RATIO_LOW = 1e-5  # ... well below it: too low (both judged on matrices and kernels)
DEAD_UNIT_SHARE = 0.25  # this share of a layer's units silent on every probe input
FROZEN_UNIT_SHARE = 0.10  # this share of a weight's units that stopped changing


@dataclass(frozen=True)
class Finding:
    """One problem: which tensor, from which step, by which statistic."""

    check: str
    tensor: str
    kind: str
    step: int
    statistic: str
    value: float
    message: str

    @property
    def severity(self) -> str:
        """'error' for numbers that broke (NaN/Inf, exploding gradients), else 'warning'."""
        return SEVERITY.get(self.check, "warning")

    def __str__(self) -> str:
        return f"[{self.check}] {self.tensor} ({self.kind}) from step {self.step}: {self.message}"


SEVERITY = {"nan-inf": "error", "exploding-gradient": "error"}
LEVELS = ("never", "warning", "error")


def diagnose(run: Run) -> list[Finding]:
    """Every check over every recorded tensor, ordered by the step where it starts.

    >>> for finding in diagnose(weightlapse.open("runs/x")): print(finding)
    """
    findings: list[Finding] = []
    for kind in run.kinds:
        for name in run.names(kind):
            history = run.history(name, kind)
            findings += _nonfinite(history)
            if kind == "grad":
                findings += _gradient_scale(history)
    if "update" in run.kinds:
        for name in run.names("update"):
            if _ratio_means_something(run[name]):
                findings += _update_ratio(run[name])
    types = layer_types(run)
    for name in run.tensors:
        findings += _never_moved(run[name])
        if "Embedding" not in types.get(name, ""):
            findings += _frozen_units(run[name])
    for layer in run.activations:
        findings += _dead_units(run.history(layer, "activation"))
    return sorted(findings, key=lambda f: (f.step, f.check, f.tensor))


def _nonfinite(h: TensorHistory) -> list[Finding]:
    stats = h.stats
    bad = stats["nan_count"] + stats["inf_count"]
    if not bad.any():
        return []
    i = int(np.argmax(bad > 0))
    return [
        Finding(
            "nan-inf",
            h.name,
            h.kind,
            int(stats.steps[i]),
            "nan_count+inf_count",
            float(bad[i]),
            f"{int(stats['nan_count'][i])} NaN and "
            f"{int(stats['inf_count'][i])} Inf values appeared",
        )
    ]


def _early_level(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    head = finite[: max(3, len(finite) // 10)]
    return float(np.median(head)) if head.size else float("nan")


def _gradient_scale(h: TensorHistory) -> list[Finding]:
    stats = h.stats
    l2 = stats["l2"]
    base = _early_level(l2)
    if not np.isfinite(base) or base <= 0 or len(l2) < 4:
        return []
    out = []
    big = np.flatnonzero(np.isfinite(l2) & (l2 > EXPLODING_FACTOR * base))
    if big.size:
        i = int(big[0])
        out.append(
            Finding(
                "exploding-gradient",
                h.name,
                h.kind,
                int(stats.steps[i]),
                "l2",
                float(l2[i]),
                f"gradient norm {l2[i]:.3g} is {l2[i] / base:,.0f}x its early level {base:.3g}",
            )
        )
    tail = l2[-max(2, len(l2) // 10) :]
    if np.all(np.isfinite(tail)) and np.all(tail < VANISHING_FACTOR * base):
        i = int(np.flatnonzero(~(l2 < VANISHING_FACTOR * base))[-1] + 1)
        out.append(
            Finding(
                "vanishing-gradient",
                h.name,
                h.kind,
                int(stats.steps[i]),
                "l2",
                float(l2[i]),
                f"gradient norm fell to {l2[i]:.3g}, under "
                f"{VANISHING_FACTOR:g}x its early level {base:.3g}, and stayed",
            )
        )
    return out


@dataclass(frozen=True)
class FindingGroup:
    """The findings of one check on one kind, over all the tensors it hit."""

    check: str
    kind: str
    severity: str
    step: int  # the first step any of them starts at
    findings: tuple[Finding, ...]

    @property
    def tensors(self) -> list[str]:
        return [f.tensor for f in self.findings]

    @property
    def worst(self) -> Finding:
        return max(self.findings, key=lambda f: abs(f.value) if np.isfinite(f.value) else np.inf)


def grouped(findings: list[Finding]) -> list[FindingGroup]:
    """One group per (check, kind), errors first, then by first step: a model of hundreds
    of tensors gets a line per kind of problem, not one per tensor."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.check, f.kind), []).append(f)
    out = [
        FindingGroup(
            check, kind, SEVERITY.get(check, "warning"), min(f.step for f in fs), tuple(fs)
        )
        for (check, kind), fs in groups.items()
    ]
    return sorted(out, key=lambda g: (-LEVELS.index(g.severity), g.step, g.check))


def layer_types(run: Run) -> dict[str, str]:
    """Each tensor's layer type (Linear, Embedding, ...) as the recorder described the
    model; empty when it did not."""
    model = run.meta.get("model")
    layers = model.get("layers", []) if isinstance(model, dict) else []
    return {
        tensor: str(layer.get("type", ""))
        for layer in layers
        if isinstance(layer, dict)
        for tensor in layer.get("tensors", [])
    }


def _ratio_means_something(h: TensorHistory) -> bool:
    """The 1e-3 rule of thumb is about weight matrices and kernels. A vector (a bias, a
    norm's gain at 1.0) moves by about the learning rate whatever its size, and a tensor
    that starts at zero (biases, LoRA's B) has ||dW||/||W|| as large as it likes while it
    grows from nothing: neither says anything of the learning rate, so neither is judged."""
    l2 = h.stats["l2"]
    return len(h.shape) >= 2 and bool(len(l2)) and float(l2[0]) != 0.0


def _update_ratio(h: TensorHistory) -> list[Finding]:
    ratio = h.update_ratio
    values = ratio.values
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return []
    typical = float(np.median(finite))
    if typical == 0:
        return []  # it does not move at all: never-moved reports that
    if typical > UPDATE_RATIO_HIGH:
        i = int(np.argmax(values > UPDATE_RATIO_HIGH))
        return [
            Finding(
                "update-ratio-high",
                h.name,
                "update",
                int(ratio.steps[i]),
                "update_ratio",
                typical,
                f"||dW||/||W|| is {typical:.2g} (median), far "
                "above the usual 1e-3: the learning rate is likely too high",
            )
        ]
    if typical < UPDATE_RATIO_LOW:
        i = int(np.argmax(values < UPDATE_RATIO_LOW))
        return [
            Finding(
                "update-ratio-low",
                h.name,
                "update",
                int(ratio.steps[i]),
                "update_ratio",
                typical,
                f"||dW||/||W|| is {typical:.2g} (median), far "
                "below the usual 1e-3: the learning rate is likely too low",
            )
        ]
    return []


def _never_moved(h: TensorHistory) -> list[Finding]:
    stats = h.stats
    if len(stats.steps) < 3:
        return []
    table = stats.table[:, :6]
    if np.all(np.isfinite(table)) and np.all(table == table[0]):
        return [
            Finding(
                "never-moved",
                h.name,
                "param",
                int(stats.steps[0]),
                "l2",
                float(stats["l2"][0]),
                f"unchanged over all {len(stats.steps)} recorded "
                "steps (frozen, not given to the optimizer, or no gradient reaches it)",
            )
        ]
    return []


def _frozen_units(h: TensorHistory) -> list[Finding]:
    """Units (rows of a dense weight, by its layout) whose incoming weights stopped
    changing while the rest of the tensor moved: dead ReLUs get no gradient."""
    steps = h.snapshot_steps
    if len(h.shape) != 2 or len(steps) < 2:
        return []
    before, after = h.at(steps[-2]), h.at(steps[-1])
    change = np.abs(after - before).sum(axis=1 - unit_axis(h.layout))
    if not np.any(change > 0):
        return []  # the whole tensor stood still: never-moved says so
    frozen = change == 0
    share = float(frozen.mean())
    if share < FROZEN_UNIT_SHARE:
        return []
    return [
        Finding(
            "frozen-units",
            h.name,
            "param",
            int(steps[-2]),
            "unit_change",
            share,
            f"{int(frozen.sum())} of {len(frozen)} units' weights stopped changing "
            f"between steps {steps[-2]} and {steps[-1]} (dead units?)",
        )
    ]


def _dead_units(h: TensorHistory) -> list[Finding]:
    """Channels (or units) that are zero or below on every probe input."""
    for step in h.snapshot_steps:
        batch = h.at(step)
        if batch.ndim < 2 or np.nanmin(batch) < 0:
            continue  # only outputs that cannot go negative (ReLU-like) can be dead
        channel_axis = 1 if h.run.meta.get("framework") != "keras" else batch.ndim - 1
        moved = np.moveaxis(batch, channel_axis, 0).reshape(batch.shape[channel_axis], -1)
        dead = np.all(moved <= 0, axis=1)
        share = float(dead.mean())
        if share >= DEAD_UNIT_SHARE:
            return [
                Finding(
                    "dead-units",
                    h.name,
                    "activation",
                    int(step),
                    "dead_share",
                    share,
                    f"{int(dead.sum())} of {len(dead)} units output nothing for every "
                    "probe input (dead ReLUs)",
                )
            ]
    return []
