"""A batch of step records as the blocks of rows each per-step array receives: pure
NumPy, no store, so the layout of a flush can be read and tested on its own."""

from __future__ import annotations

from typing import Any

import numpy as np

from weightlapse.store import layout
from weightlapse.store.layout import STAT_NAMES
from weightlapse.store.records import KindRows, StepRecord


def index_block(records: list[StepRecord]) -> np.ndarray:
    """(n, len(INDEX_COLUMNS)): step, epoch, batch, wall time."""
    return np.array([[r.step, r.epoch, r.batch, r.wall_time] for r in records], dtype=np.float64)


def scalar_block(records: list[StepRecord], names: list[str]) -> np.ndarray | None:
    """(n, len(names)) with NaN where a scalar was not logged. Names new in this batch
    are appended to `names` (the run's scalar columns, in first-seen order)."""
    for r in records:
        for key in r.scalars:
            if key not in names:
                names.append(key)
    if not names:
        return None
    column = {k: i for i, k in enumerate(names)}
    block = np.full((len(records), len(names)), np.nan)
    for i, r in enumerate(records):
        for key, value in r.scalars.items():
            block[i, column[key]] = value
    return block


def kind_blocks(
    records: list[StepRecord], kind: str, spec: dict[str, Any], bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stats (n, T, n_stats), counts (n, T, bins), probes (n, P)) of one kind, NaN (or 0
    counts) where a tensor was not recorded at a step."""
    n = len(records)
    n_tensors = len(spec["tensors"])
    probe_offsets = np.concatenate([[0], np.cumsum(spec["probe_counts"])]).astype(int)
    stats = np.full((n, n_tensors, len(STAT_NAMES)), np.nan)
    counts = np.zeros((n, n_tensors, bins), dtype=np.uint32)
    probes = np.full((n, int(probe_offsets[-1])), np.nan, dtype=np.float64)
    for i, r in enumerate(records):
        rows = r.kinds.get(kind)
        if rows is None:
            continue
        assert isinstance(rows, KindRows), "deferred rows are resolved before a flush"
        stats[i, rows.rows] = rows.stats
        counts[i, rows.rows] = rows.counts
        probes[i, probe_columns(probe_offsets, rows.rows)] = rows.probes
    return stats, counts, probes


def probe_columns(offsets: np.ndarray, tensors: np.ndarray) -> np.ndarray:
    """The probe columns of these tensors (rows), in order: each one's range
    [offsets[t], offsets[t + 1]), all at once (10,000 tensors: no 10,000 aranges)."""
    tensors = np.asarray(tensors, dtype=np.int64)
    starts = offsets[tensors]
    lengths = offsets[tensors + 1] - starts
    before = np.cumsum(lengths) - lengths  # where each tensor's columns start in the result
    return np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))


def step_blocks(
    records: list[StepRecord], kinds: dict[str, Any], scalar_names: list[str], bins: int
) -> dict[str, np.ndarray]:
    """Every per-step array's new rows for one flush, by array path."""
    blocks = {layout.INDEX_PATH: index_block(records)}
    scalars = scalar_block(records, scalar_names)
    if scalars is not None:
        blocks[layout.SCALARS_PATH] = scalars
    for kind, spec in kinds.items():
        stats, counts, probes = kind_blocks(records, kind, spec, bins)
        blocks[layout.stats_path(kind)] = stats
        blocks[layout.hist_path(kind)] = counts
        blocks[layout.probes_path(kind)] = probes
    return blocks
