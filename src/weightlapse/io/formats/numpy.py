"""NumPy .npy and .npz files (pickled objects only when the caller trusts the file). Every
array's header is read first: the size it declares must fit in the file and the limit."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from weightlapse.io.formats.common import (
    Checkpoint,
    CheckpointError,
    ReadOptions,
    as_numeric,
    check_declared,
    check_stored,
    parent_layers,
)


def read_numpy(path: Path, options: ReadOptions) -> Checkpoint:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for entry in z.infolist():
                with z.open(entry) as f:
                    _check_header(path, f"array {entry.filename!r}", f, entry.file_size, options)
    else:
        with open(path, "rb") as f:
            _check_header(path, "the array", f, path.stat().st_size, options)
    try:
        loaded = np.load(path, allow_pickle=options.trust_pickle)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CheckpointError(
                f"{path}: refused to unpickle it: it holds Python objects, not plain arrays, "
                "and unpickling can run any code. If you trust it, pass --trust-pickle."
            ) from None
        raise
    if isinstance(loaded, np.ndarray):
        return Checkpoint(path, "npy", {path.stem: as_numeric(loaded)})
    with loaded:
        tensors = {k: as_numeric(loaded[k]) for k in loaded.files}
    return Checkpoint(path, "npz", tensors, {}, parent_layers(tensors))


def _check_header(path: Path, what: str, f: IO[bytes], size: int, options: ReadOptions) -> None:
    """The shape and dtype a .npy header declares, against the bytes that follow it."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f, max_header_size=1 << 20)
    except ValueError:
        return  # not a plain .npy: np.load says what it is
    if dtype.hasobject:
        return  # pickled objects: refused by np.load unless trusted
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    check_declared(path, what, declared, options)
    check_stored(path, what, declared, max(0, size - f.tell()), compressed=False)
