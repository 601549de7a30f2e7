"""Host tensors too big to copy (a step's worth at or past BIG_BYTES): summarised in
their own memory on the calling thread, and snapshotted from it at once, so recording a
200M-element tensor never holds a copy of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weightlapse.record.stats import ArrayOps, Segments, Summary, summarize_host
from weightlapse.store.layout import snapshot_nbytes

# A host tensor this big (or a step's tensors together) is not copied: its statistics are
# taken on the calling thread, and its snapshot written from it, at once (a 200M-element
# tensor peaked at 3.8x its size with copies, 1.3x without; bench/many_and_big.py).
BIG_BYTES = 64 * 2**20


def is_big(tensor: Any) -> bool:
    return snapshot_nbytes(tensor) >= BIG_BYTES


def big_views(arrays: Sequence[Any], ops: ArrayOps) -> list[np.ndarray] | None:
    """The tensors' own memory, when together they are too big to copy and all have it."""
    if sum(snapshot_nbytes(a) for a in arrays) < BIG_BYTES:
        return None
    views = [ops.host_view(a) for a in arrays]
    return None if any(v is None for v in views) else views  # type: ignore[return-value]


def summarize_views(
    views: Sequence[np.ndarray], segments: Segments, bins: int, histograms: bool = True
) -> Summary:
    """`summarize_host` of each tensor in its own memory (no concatenated copy): for
    tensors too big to copy, on the calling thread."""
    offsets = np.concatenate([[0], np.cumsum(segments.sizes)[:-1]])
    firsts = np.concatenate([[0], np.cumsum(segments.probe_counts)]).astype(np.int64)
    parts = []
    for t, view in enumerate(views):
        elements = segments.probe_index[firsts[t] : firsts[t + 1]] - offsets[t]
        one = Segments(segments.sizes[t : t + 1], elements, segments.probe_counts[t : t + 1])
        parts.append(summarize_host(view, one, bins, histograms))
    return Summary(
        stats=np.concatenate([p.stats for p in parts]),
        counts=np.concatenate([p.counts for p in parts]),
        probes=np.concatenate([p.probes for p in parts]),
    )
