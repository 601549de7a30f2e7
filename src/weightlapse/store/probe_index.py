"""Which elements of each tensor are probed: since format version 3 one array per kind
(`{kind}/probe_elements`, every tensor's flat element indices one after another, in
`kinds[kind].tensors` order; `kinds[kind].probe_counts` says how many each), not lists
in the root attributes (10,000 tensors x 32 probes made 2 MB of JSON, rewritten at every
flush). The writer appends a tensor's elements before the attributes that list it are
committed, so a reader never sees a tensor without them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import zarr

from weightlapse.store import layout

CHUNK = 65536


def probe_elements_path(kind: str) -> str:
    return f"{kind}/probe_elements"


def append(group: zarr.Group, kind: str, elements: list[np.ndarray], committed: int) -> None:
    """Writes new tensors' probe elements (in registration order) after the `committed`
    ones (the sum of the committed attributes' probe_counts). Not after the array's end:
    a flush killed before its commit may have left rows there that no tensor owns, and
    the next tensor's elements must start where the counts say they do."""
    values = np.concatenate([np.asarray(e, dtype=np.int64) for e in elements])
    path = probe_elements_path(kind)
    layout.write_int_rows(group, path, committed, values, CHUNK, (f"{kind}_probe",))


def _probed(attrs: dict[str, Any]) -> Iterator[tuple[str, str, int, int]]:
    """(kind, tensor, probed elements, elements) of every tensor a run has."""
    for kind, spec in attrs["kinds"].items():
        counts = spec.get("probe_counts") or [len(e) for e in spec.get("probe_elements", [])]
        for name, count in zip(spec["tensors"], counts):
            shape = attrs["tensors"].get(name, {}).get("shape")
            if shape is not None:
                yield kind, name, int(count), math.prod(shape)


def mismatch(attrs: dict[str, Any], max_probes: int) -> str | None:
    """Why a run cannot go on with `max_probes` (a resumed run probes each tensor it has
    as it did: min(size, max_probes) elements, the same seeded choice), or None."""
    probed = list(_probed(attrs))
    for kind, name, count, size in probed:
        if min(size, max_probes) != count:
            sampled = [c for _, _, c, n in probed if c < n]  # the run's max_probes, where it bit
            was = f"max_probes={sampled[0]}" if sampled else f"max_probes of at least {count}"
            return (
                f"it probes {count} of the {size} elements of {name!r} ({kind}), where "
                f"max_probes={max_probes} takes {min(size, max_probes)}: resume it with {was}"
            )
    return None


def read(group: zarr.Group, attrs: dict[str, Any], kind: str, row: int) -> np.ndarray:
    """Tensor `row`'s probed elements (format 1 and 2: from the attributes' lists)."""
    spec = attrs["kinds"][kind]
    if attrs.get("format_version", 1) < 3:
        return np.asarray(spec["probe_elements"][row], dtype=np.int64)
    counts = spec["probe_counts"]
    start = int(sum(counts[:row]))
    stop = start + int(counts[row])
    if start == stop:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(group[probe_elements_path(kind)][start:stop])
    if len(values) < stop - start or (values < 0).any():  # a missing chunk reads as -1
        raise ValueError(f"{probe_elements_path(kind)} lacks probes of tensor {row}")
    return values


def migrate(group: zarr.Group, attrs: dict[str, Any]) -> None:
    """A format 1 or 2 run resumed: its probe element lists move into arrays."""
    if attrs.get("format_version", 1) >= 3:
        return
    for kind, spec in attrs["kinds"].items():
        lists = spec.pop("probe_elements", [])
        if probe_elements_path(kind) in group:
            del group[probe_elements_path(kind)]
        append(group, kind, [np.asarray(e) for e in lists] or [np.zeros(0, np.int64)], 0)
