"""What every checkpoint reader returns, and the helpers they share."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.record.arrays import parent_path


class CheckpointError(WeightlapseError):
    """A file that cannot be read as saved weights; the message says why and what to do."""


# Compressed weights shrink little (floats hardly compress); data that would expand more
# than this is a decompression bomb, not a model.
MAX_EXPANSION = 64
SMALL = 1 << 16  # uncompressed sizes under this are never worth refusing
# Constant tensors (zero biases) compress far more than MAX_EXPANSION: the bound is only
# applied past this size, where no weights file holds that much of one value.
SMALL_COMPRESSED = 64 << 20


def default_max_bytes() -> int:
    """A quarter of the machine's memory: no one file may make a reader take more."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may do: unpickle (only files the user trusts), read this many bytes
    at most, follow ONNX external data (only inside the model's own folder)."""

    trust_pickle: bool = False
    max_bytes: int | None = None
    allow_external_data: bool = False

    @property
    def limit(self) -> int:
        return self.max_bytes if self.max_bytes is not None else default_max_bytes()


def check_declared(path: Path, what: str, declared: int, options: ReadOptions) -> None:
    """Refuses `what` when the bytes it declares exceed the reading limit."""
    if declared > options.limit:
        raise CheckpointError(
            f"{path}: refused, {what} declares {declared:,} bytes, more than the "
            f"{options.limit:,} allowed; if you trust the file and have the memory, raise "
            "--max-bytes (max_bytes=)."
        )


def check_stored(path: Path, what: str, declared: int, stored: int, compressed: bool) -> None:
    """Refuses data that the file cannot hold: uncompressed data larger than what is
    stored, or compressed data that would expand more than MAX_EXPANSION times."""
    if declared <= (SMALL_COMPRESSED if compressed else SMALL):
        return
    if compressed and declared > stored * MAX_EXPANSION:
        raise CheckpointError(
            f"{path}: refused, {what} expands to {declared:,} bytes from {stored:,} stored "
            f"(over {MAX_EXPANSION}x: a decompression bomb, not weights)."
        )
    if not compressed and declared > stored:
        raise CheckpointError(
            f"{path}: refused, {what} declares {declared:,} bytes but the file holds "
            f"{stored:,} for it (a damaged or hostile file)."
        )


def check_zip(path: Path, options: ReadOptions) -> None:
    """Every entry of a zip archive against the limit and the expansion bound, from its
    directory alone (nothing is decompressed)."""
    with zipfile.ZipFile(path) as z:
        entries = z.infolist()
    total = 0
    for entry in entries:
        compressed = entry.compress_type != zipfile.ZIP_STORED
        check_stored(
            path, f"entry {entry.filename!r}", entry.file_size, entry.compress_size, compressed
        )
        total += entry.file_size
    check_declared(path, "the archive", total, options)


@dataclass
class Checkpoint:
    """Named arrays from one file, with what is known of each one's layer and layout."""

    path: Path
    format: str
    tensors: dict[str, np.ndarray]
    layouts: dict[str, str] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def as_numeric(array: Any) -> np.ndarray:
    """Numbers as they are; anything else (a string dataset, say) as float32."""
    out = np.asarray(array)
    return out if out.dtype.kind in "fiub" else out.astype(np.float32)


def parent_layers(tensors: dict[str, np.ndarray]) -> dict[str, str]:
    """The layer each name implies ('fc1.weight' -> 'fc1')."""
    return {n: parent_path(n) for n in tensors}


def h5_datasets(f: Any, path: Path, options: ReadOptions) -> list[tuple[str, Any]]:
    """Every dataset of an open HDF5 file, checked before anything is read: links to
    other files, external storage and virtual datasets (which read other files) are
    refused, and so are sizes the file cannot hold or the limit does not allow."""
    h5py = require_h5py()
    found: list[tuple[str, Any]] = []
    total = 0

    def walk(group: Any, prefix: str) -> None:
        nonlocal total
        for key in group:
            name = f"{prefix}/{key}" if prefix else key
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise CheckpointError(
                    f"{path}: refused, {name!r} links to {link.filename!r}, outside this file."
                )
            if isinstance(link, h5py.SoftLink):
                continue  # a second name for something inside: read under its own name
            item = group[key]
            if isinstance(item, h5py.Group):
                walk(item, name)
                continue
            if item.is_virtual:
                sources = {s.file_name for s in item.virtual_sources()}
                raise CheckpointError(
                    f"{path}: refused, {name!r} is a virtual dataset reading "
                    f"{', '.join(sorted(sources))}, outside this file."
                )
            if item.external:
                raise CheckpointError(
                    f"{path}: refused, {name!r} keeps its data in {item.external[0][0]!r}, "
                    "outside this file."
                )
            declared = int(item.size) * item.dtype.itemsize
            stored = int(item.id.get_storage_size())
            filtered = item.id.get_create_plist().get_nfilters() > 0  # compressed
            check_stored(path, f"dataset {name!r}", declared, stored, filtered)
            total += declared
            check_declared(path, "its datasets", total, options)
            found.append((name, item))

    walk(f, "")
    return found


def require_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("h5py", "inspect") from exc
    return h5py
