"""Is a run whole? `check_run` verifies what readers rely on (attribute types, every
per-step array present with at least `committed_steps` rows, every chunk of those rows
and of every snapshot there and readable); `repair_run` truncates a damaged run to its
last whole step. Behind `weightlapse check RUN [--repair]`."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from weightlapse.errors import RunFormatError
from weightlapse.store import layout
from weightlapse.store.lock import LOCK_NAME
from weightlapse.store.probe_index import probe_elements_path
from weightlapse.store.snapshot_index import append_rows, index_path, read_lists

PER_KIND = ("stats", "hist", "probes")


@dataclass(frozen=True)
class Problem:
    array: str
    what: str
    whole_steps: int  # how many leading steps are still whole despite it

    def __str__(self) -> str:
        return f"{self.array}: {self.what}"


def attr_problems(attrs: Any) -> list[str]:
    """What is wrong with a run's root attributes (types, ranges, consistency)."""
    if not isinstance(attrs, dict):
        return [f"the root attribute {layout.ROOT_ATTR!r} is not an object"]
    expected = {
        "format_version": int,
        "committed_steps": int,
        "bins": int,
        "scalars": list,
        "kinds": dict,
        "tensors": dict,
        "snapshots": dict,
        "meta": dict,
        "closed": bool,
    }
    out = []
    for key, kind in expected.items():
        value = attrs.get(key)
        if not isinstance(value, kind) or kind is int and isinstance(value, bool):
            out.append(f"attribute {key!r} is {value!r}, not a {kind.__name__}")
    if out:
        return out
    if attrs["committed_steps"] < 0:
        out.append(f"committed_steps is {attrs['committed_steps']}, below 0")
    if attrs["bins"] < 1:
        out.append(f"bins is {attrs['bins']}")
    lists = ("tensors", "probe_counts") + (
        ("probe_elements",) if attrs["format_version"] < 3 else ()
    )
    for kind, spec in attrs["kinds"].items():
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), list) for k in lists):
            out.append(f"kind {kind!r} lacks its {', '.join(lists)} lists")
        elif len({len(spec[k]) for k in lists}) > 1:
            out.append(f"kind {kind!r} lists {len(spec['tensors'])} tensors but other counts")
    listed = attrs["format_version"] < 3  # older runs list steps in each entry
    for kind, entries in attrs["snapshots"].items():
        for name, entry in entries.items() if isinstance(entries, dict) else []:
            ok = isinstance(entry, dict) and isinstance(entry.get("array"), str)
            if not ok or listed and not isinstance(entry.get("steps"), list):
                out.append(f"snapshot entry {kind}/{name} is malformed")
    if not listed and not isinstance(attrs.get("snapshot_rows", {}), dict):
        out.append("attribute 'snapshot_rows' is not an object")
    return out


def per_step_arrays(attrs: dict[str, Any]) -> list[str]:
    """The per-step arrays a run with committed steps must have."""
    paths = [layout.INDEX_PATH]
    if attrs["scalars"]:
        paths.append(layout.SCALARS_PATH)
    for kind in attrs["kinds"]:
        paths += [f"{kind}/{part}" for part in PER_KIND]
    return paths


def _row_chunks(arr: zarr.Array, rows: int) -> Iterator[tuple[int, ...]]:
    """The chunk coordinates covering rows [0, rows) of an array, every column."""
    counts = [math.ceil(rows / arr.chunks[0])]
    counts += [math.ceil(n / c) if n else 0 for n, c in zip(arr.shape[1:], arr.chunks[1:])]
    yield from np.ndindex(*counts)


def _chunk_problem(arr: zarr.Array, coords: tuple[int, ...]) -> str | None:
    region = tuple(
        slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, arr.chunks, arr.shape)
    )
    key = "c/" + "/".join(map(str, coords))
    store, prefix = arr.store_path.store, arr.store_path.path
    if not zarr.core.sync.sync(store.exists(f"{prefix}/{key}")):
        return f"chunk {key} is missing"
    try:
        arr[region]
    except Exception as exc:  # truncated, garbled: the codec says so
        return f"chunk {key} cannot be read ({type(exc).__name__}: {str(exc)[:80]})"
    return None


def check_run(path: Any) -> list[Problem]:
    """Every problem of a run; empty when it is whole. Reads every committed chunk."""
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as exc:
        return [Problem("zarr.json", f"the run's group cannot be opened ({exc})", 0)]
    attrs = dict(group.attrs).get(layout.ROOT_ATTR)
    found = [Problem("attributes", p, 0) for p in attr_problems(attrs)]
    if found:
        return found
    committed = attrs["committed_steps"]
    if committed == 0:
        return []
    for name in per_step_arrays(attrs):
        try:
            arr = group[name]
        except KeyError:
            found.append(Problem(name, "the array (or its zarr.json) is missing", 0))
            continue
        if arr.shape[0] < committed:
            found.append(
                Problem(
                    name, f"has {arr.shape[0]} rows, committed_steps says {committed}", arr.shape[0]
                )
            )
        for coords in _row_chunks(arr, min(committed, arr.shape[0])):
            problem = _chunk_problem(arr, coords)
            if problem:
                found.append(Problem(name, problem, coords[0] * arr.chunks[0]))
    if not found:
        index = group[layout.INDEX_PATH][:committed, 0]
        if np.isnan(index).any() or np.any(np.diff(index) <= 0):
            found.append(Problem(layout.INDEX_PATH, "its steps are not increasing numbers", 0))
    for kind, spec in attrs["kinds"].items() if attrs["format_version"] >= 3 else ():
        path = probe_elements_path(kind)
        needed = int(sum(spec["probe_counts"]))
        try:
            values = group[path][:needed] if needed else np.zeros(0)
            if len(values) < needed or (np.asarray(values) < 0).any():
                found.append(Problem(path, f"holds fewer than the {needed} probes listed", 0))
        except Exception as exc:  # missing, or its chunks unreadable
            what = "the array is missing" if isinstance(exc, KeyError) else str(exc)[:120]
            found.append(Problem(path, what, 0))
    checked: set[tuple[str, int]] = set()  # a packed row is checked once, not per tensor
    for kind, entries in attrs["snapshots"].items():
        try:
            lists = read_lists(group, attrs, kind)
        except Exception as exc:  # missing, short, or its chunks unreadable
            what = "the array is missing" if isinstance(exc, KeyError) else str(exc)[:120]
            found.append(Problem(index_path(kind), what, committed))
            continue
        for tensor, entry in entries.items():
            try:
                arr = group[entry["array"]]
            except KeyError:
                found.append(
                    Problem(entry["array"], f"snapshots of {tensor!r} are missing", committed)
                )
                continue
            rows = lists.get(tensor, ([], []))[1]
            if any(r >= arr.shape[0] for r in rows):
                found.append(Problem(entry["array"], "has fewer snapshots than listed", committed))
            for k, row in enumerate(rows):
                chunk = row // arr.chunks[0]  # a chunk may hold several snapshots
                if row >= arr.shape[0] or (entry["array"], chunk) in checked:
                    continue
                checked.add((entry["array"], chunk))
                problem = _chunk_problem(arr, (chunk,) + (0,) * (arr.ndim - 1))
                if problem:
                    found.append(
                        Problem(entry["array"], f"snapshot {k} of {tensor!r}: {problem}", committed)
                    )
    return found


def repair_run(path: Any) -> int:
    """Truncates a damaged run to its last whole step; returns the steps kept. Snapshots
    that are unreadable or after that step are dropped from the lists."""
    problems = check_run(path)
    group = zarr.open_group(path, mode="r+")
    attrs = dict(group.attrs).get(layout.ROOT_ATTR)
    bad_attrs = [p for p in problems if p.array in ("attributes", "zarr.json")]
    if bad_attrs:
        raise RunFormatError(
            f"{path}: cannot repair: {bad_attrs[0]}. The root attributes are what a repair "
            "keeps; without them nothing says what the arrays hold."
        )
    whole = min([attrs["committed_steps"], *(p.whole_steps for p in problems)])
    last = int(group[layout.INDEX_PATH][whole - 1, 0]) if whole else -1
    broken = {p.array for p in problems}
    if attrs["format_version"] < 3:
        for entries in attrs["snapshots"].values():
            for entry in entries.values():
                keep = 0 if entry["array"] in broken else len(entry["steps"])
                entry["steps"] = [s for s in entry["steps"][:keep] if s <= last]
                if "rows" in entry:
                    entry["rows"] = entry["rows"][: len(entry["steps"])]
    else:
        _repair_index(group, attrs, broken, last)
    attrs["committed_steps"] = whole
    group.attrs[layout.ROOT_ATTR] = attrs
    return whole


def _repair_index(group: zarr.Group, attrs: dict[str, Any], broken: set[str], last: int) -> None:
    """Keeps the index rows of snapshots that are readable and at or before `last`."""
    for kind, entries in attrs["snapshots"].items():
        n = int(attrs.get("snapshot_rows", {}).get(kind, 0))
        if not n:
            continue
        if index_path(kind) in broken:
            attrs["snapshot_rows"][kind] = 0
            continue
        table = np.asarray(group[index_path(kind)][:n])
        tensors = attrs["kinds"][kind]["tensors"]
        unreadable = {
            t for t, name in enumerate(tensors) if entries.get(name, {}).get("array") in broken
        }
        keep = table[(table[:, 1] <= last) & ~np.isin(table[:, 0], list(unreadable))]
        attrs["snapshot_rows"][kind] = 0
        if len(keep):
            append_rows(group, attrs, kind, keep)


def remove_partial_files(path: Any) -> int:
    """Deletes the temporary files a killed writer left (Zarr's `*.partial`)."""
    if not isinstance(path, (str, os.PathLike)) or not Path(path).is_dir():
        return 0
    stray = list(Path(path).rglob("*.partial"))
    for file in stray:
        file.unlink(missing_ok=True)
    return len(stray)


def remove_unlisted_snapshots(group: zarr.Group, attrs: dict[str, Any]) -> list[str]:
    """Deletes the snapshot arrays no committed entry lists: a flush killed before its
    commit made them (a new tensor's, a new pack, a sharded or direct write's). Nothing
    refers to them, and the resumed writer makes new tensors' arrays at such paths."""
    listed = {e["array"] for entries in attrs["snapshots"].values() for e in entries.values()}
    removed = []
    with warnings.catch_warnings():  # Zarr warns of the lock file beside the kinds' groups
        warnings.filterwarnings("ignore", message=f".*{re.escape(LOCK_NAME)}")
        kinds = list(group.group_keys())
    for kind in kinds:
        if f"{kind}/snapshots" not in group:
            continue
        for name in group[f"{kind}/snapshots"].array_keys():
            path = f"{kind}/snapshots/{name}"
            if path not in listed:
                del group[path]
                removed.append(path)
    return removed
