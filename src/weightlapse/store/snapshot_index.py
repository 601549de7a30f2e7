"""Which snapshot steps each tensor has, and where each snapshot lies: since format
version 3 an array per kind (`{kind}/snapshot_index`, rows of tensor, step, array row)
instead of lists in the root attributes, which every flush rewrote whole and every
reader parsed (10,000 tensors with a few snapshots each made it megabytes).

`attrs.snapshot_rows[kind]` says how many index rows are committed; it is written with
`committed_steps`, so a reader never sees an index row of a step it cannot see.
Runs of format 1 and 2 keep the lists in `attrs.snapshots` entries (`steps`, `rows`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from weightlapse.store import layout

COLUMNS = ("tensor", "step", "row")
CHUNK_ROWS = 4096

Lists = dict[str, tuple[list[int], list[int]]]  # tensor -> (steps, rows)


def index_path(kind: str) -> str:
    return f"{kind}/snapshot_index"


def lists_from_attrs(attrs: dict[str, Any], kind: str) -> Lists:
    """Format 1 and 2: the lists kept in each entry (`rows` only for packed tensors)."""
    out: Lists = {}
    for name, entry in attrs["snapshots"].get(kind, {}).items():
        steps = [int(s) for s in entry.get("steps", [])]
        out[name] = (steps, [int(r) for r in entry.get("rows", range(len(steps)))])
    return out


def lists_from_index(table: np.ndarray, tensors: list[str]) -> Lists:
    """Format 3: the committed index rows, grouped by tensor (in step order)."""
    out: Lists = {}
    for t, step, row in table.tolist():
        steps, rows = out.setdefault(tensors[int(t)], ([], []))
        steps.append(int(step))
        rows.append(int(row))
    return out


def read_lists(group: zarr.Group, attrs: dict[str, Any], kind: str) -> Lists:
    """Every tensor's snapshot steps and rows of `kind`, whichever the run's format."""
    if attrs.get("format_version", 1) < 3:
        return lists_from_attrs(attrs, kind)
    n = int(attrs.get("snapshot_rows", {}).get(kind, 0))
    if n == 0:
        return {}
    table = np.asarray(group[index_path(kind)][:n])
    if len(table) < n or (table < 0).any():  # a missing chunk reads as fill (-1)
        raise ValueError(f"{index_path(kind)} lacks some of its {n} committed rows")
    return lists_from_index(table, attrs["kinds"][kind]["tensors"])


def append_rows(group: zarr.Group, attrs: dict[str, Any], kind: str, rows: np.ndarray) -> None:
    """Writes index rows after the committed ones; the caller commits the new count
    (`attrs.snapshot_rows[kind]`) with the step they belong to."""
    counts = attrs.setdefault("snapshot_rows", {})
    start = int(counts.get(kind, 0))
    names = (f"{kind}_snapshot", "snapshot_column")
    layout.write_int_rows(group, index_path(kind), start, rows, CHUNK_ROWS, names)
    counts[kind] = start + len(rows)


def migrate(group: zarr.Group, attrs: dict[str, Any]) -> None:
    """A format 1 or 2 run resumed: its lists move into index arrays (the attributes
    change only when the resumed writer next commits, so a crash before leaves the run
    as it was; the writer then sets the version)."""
    if attrs.get("format_version", 1) >= 3:
        return
    attrs["snapshot_rows"] = {}
    for kind in attrs["snapshots"]:
        tensors = {
            name: t for t, name in enumerate(attrs["kinds"].get(kind, {}).get("tensors", []))
        }
        table = [
            (tensors[name], step, row)
            for name, (steps, rows) in lists_from_attrs(attrs, kind).items()
            if name in tensors
            for step, row in zip(steps, rows)
        ]
        if index_path(kind) in group:
            del group[index_path(kind)]
        if table:
            table.sort(key=lambda r: r[1])
            append_rows(group, attrs, kind, np.asarray(table, dtype=np.int64))
        for entry in attrs["snapshots"][kind].values():
            entry.pop("steps", None)
            if entry.pop("rows", None) is not None:
                entry["packed"] = True  # version 2 told packs by their rows
