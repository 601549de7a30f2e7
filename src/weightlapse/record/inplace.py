"""Host tensors summarised in their own memory, on the calling thread, with no copy of
them: always for tensors too big to copy (a step's worth at or past BIG_BYTES, also
snapshotted from their memory at once, so recording a 200M-element tensor never holds a
copy of it), and for any step whose copy nobody needs when the writer thread is behind
(the training thread would compute the statistics from the copy itself anyway)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weightlapse.record.stats import ArrayOps, Segments, Summary, summarize_host
from weightlapse.store.layout import STAT_NAMES, snapshot_nbytes

# A host tensor this big (or a step's tensors together) is not copied: its statistics are
# taken on the calling thread, and its snapshot written from it, at once (a 200M-element
# tensor peaked at 3.8x its size with copies, 1.3x without; bench/many_and_big.py).
BIG_BYTES = 64 * 2**20


def is_big(tensor: Any) -> bool:
    return snapshot_nbytes(tensor) >= BIG_BYTES


def host_views(arrays: Sequence[Any], ops: ArrayOps) -> list[np.ndarray] | None:
    """The tensors' own memory as flat host arrays, when every one of them has it."""
    views = [ops.host_view(a) for a in arrays]
    return None if any(v is None for v in views) else views  # type: ignore[return-value]


def big_views(arrays: Sequence[Any], ops: ArrayOps, elements: int) -> list[np.ndarray] | None:
    """The tensors' own memory, when together (`elements` of them) they are too big to
    copy and all have it."""
    if elements * 8 < BIG_BYTES:  # no stored dtype is wider: no need to add up bytes
        return None
    if sum(snapshot_nbytes(a) for a in arrays) < BIG_BYTES:
        return None
    return host_views(arrays, ops)


def summarize_in_place(
    views: Sequence[np.ndarray], segments: Segments, bins: int, histograms: bool = True
) -> Summary:
    """`summarize_host` of tensors in their own memory: each big one where it lies, the
    small ones (up to SMALL elements) gathered into one small array and summarised
    together, as the copy path does (a pass per tensor would cost ~20 NumPy calls each).
    """
    groups = segments.host_groups
    if len(groups) == 1 and len(groups[0][0]) == 1:  # one tensor: its summary as it is
        return summarize_host(views[0], segments, bins, histograms)
    n = len(views)
    stats = np.empty((n, len(STAT_NAMES)))
    counts = np.zeros((n, bins), dtype=np.int64)
    probes = np.empty(len(segments.probe_index))
    for chosen, part_segments, probes_at in groups:
        if len(chosen) == 1:  # (an int index and slices: a third of the fancy indexing's cost)
            t = int(chosen[0])
            part = summarize_host(views[t], part_segments, bins, histograms)
            stats[t], counts[t] = part.stats[0], part.counts[0]
            if len(probes_at):  # one tensor's probes sit side by side
                first = int(probes_at[0])
                probes[first : first + len(probes_at)] = part.probes
            continue
        flat = np.concatenate([views[t] for t in chosen])
        part = summarize_host(flat, part_segments, bins, histograms)
        stats[chosen], counts[chosen] = part.stats, part.counts
        probes[probes_at] = part.probes
    return Summary(stats=stats, counts=counts, probes=probes)
