"""The colour policy every view shares: signed values diverge around zero on one symmetric
scale; NaN and +/-Inf get colours of their own that no finite value can take."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap

NAN_COLOR = "#00b400"  # green: absent from seismic and viridis
POSINF_COLOR = "#ff00ff"  # magenta
NEGINF_COLOR = "#00e5ff"  # cyan
NOT_RECORDED_COLOR = "#e6e6e6"  # light grey: no data at that step (not a NaN)
GAP_COLOR = "#6e6e6e"  # mid grey between cells of a mosaic: no weight takes it
DIVERGING = "seismic"
SEQUENTIAL = "viridis"


def colormap(name: str = DIVERGING) -> Colormap:
    """A copy of `name` whose bad (NaN), over (+Inf) and under (-Inf) colours are ours."""
    return colormaps[name].with_extremes(bad=NAN_COLOR, over=POSINF_COLOR, under=NEGINF_COLOR)


def symmetric_limit(values: np.ndarray) -> float:
    """max |x| over the finite values (1.0 when there are none, or all are zero)."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(finite.max()) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def for_display(values: np.ndarray, limit: float) -> np.ndarray:
    """Infs move just past +/-limit, so a colormap shows them as over/under, not as bad."""
    out = np.asarray(values, dtype=np.float64)
    past = 2.0 * abs(limit) + 1.0
    return np.where(np.isposinf(out), past, np.where(np.isneginf(out), -past, out))


def nonfinite_note(values: np.ndarray) -> str:
    """' (3 NaN, 1 Inf)' when there are any, else ''."""
    n_nan = int(np.isnan(values).sum())
    n_inf = int(np.isinf(values).sum())
    parts = [f"{n_nan} NaN"] * bool(n_nan) + [f"{n_inf} Inf"] * bool(n_inf)
    return f" ({', '.join(parts)})" if parts else ""
