"""How a run, a tensor's history and its statistics show in a notebook: small HTML
tables with a sparkline of each series. Names are escaped; nothing here reads more than
the statistics."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """A series in eight block heights, sampled down to `width` points."""
    finite = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if not finite:
        return ""
    step = max(1, math.ceil(len(values) / width))
    sampled = [values[i] for i in range(0, len(values), step)]
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    return "".join(
        SPARK[min(7, int((v - lo) / span * 8))] if math.isfinite(v) else " " for v in sampled
    )


def table(caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return (
        f"<table><caption style='text-align:left'>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def stats_html(stats: Any, caption: str) -> str:
    rows = []
    for name in stats:
        series = [float(v) for v in stats[name]]
        last = series[-1] if series else float("nan")
        rows.append((name, last, sparkline(series)))
    return table(caption, ("statistic", "last", f"over {len(stats.steps)} steps"), rows)


def run_html(run: Any) -> str:
    steps = run.steps
    span = f"steps {int(steps[0])}..{int(steps[-1])}" if len(steps) else "no steps yet"
    rows = []
    for name in run.tensors:
        history = run[name]
        l2 = [float(v) for v in history.stats["l2"]]
        rows.append(
            (
                name,
                "x".join(map(str, history.shape)),
                history.dtype,
                len(history.snapshot_steps),
                l2[-1] if l2 else float("nan"),
                sparkline(l2),
            )
        )
    state = "live" if run.is_live else "ended"
    caption = f"{run.path} — {len(steps)} recorded {span}, {state}; scalars: " + (
        ", ".join(run.scalar_names) or "none"
    )
    return table(caption, ("tensor", "shape", "dtype", "snapshots", "last L2", "L2"), rows)
