"""Making a run's Zarr group: a new one (refusing to replace anything but a run, and
keeping the writer's lock file), or the one a resumed writer goes on with."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import zarr

from weightlapse.errors import RunFormatError, WeightlapseError
from weightlapse.store import layout, probe_index
from weightlapse.store.location import delete, holds_anything, zarr_store
from weightlapse.store.lock import clear_folder_but_lock, is_local, only_the_lock


def create_group(path: Any, overwrite: bool, storage_options: dict | None = None) -> zarr.Group:
    exists = RunFormatError(
        f"Something already exists at {path!s}; a new run needs a fresh path. Pass "
        "overwrite=True (--overwrite) to delete the run there and start anew, or "
        "resume=True (--resume) to go on recording into it, after its last step."
    )
    if overwrite:
        _check_replaceable(path, storage_options)
    if isinstance(path, str) and not is_local(path):  # an object store: a prefix of keys
        if holds_anything(path, storage_options):
            if not overwrite:
                raise exists
            delete(path, storage_options)  # a run (checked above), and only a run
        return zarr.open_group(zarr_store(path, storage_options), mode="w")
    if not is_local(path):  # a zarr Store object: its own modes say what may be replaced
        try:
            return zarr.open_group(path, mode="w" if overwrite else "w-")
        except (FileExistsError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
            raise exists from None
    # A local folder holds our lock file, which must stay: we clear it ourselves.
    folder = Path(path)
    if folder.is_dir() and not only_the_lock(folder):
        if not overwrite:
            raise exists
        clear_folder_but_lock(folder)
    elif folder.exists() and not folder.is_dir():
        raise exists
    return zarr.open_group(path, mode="a")


def _check_replaceable(path: Any, storage_options: dict | None = None) -> None:
    """overwrite=True only ever deletes a weightlapse run: any other folder, file or
    object-store prefix at the path stays, and the caller hears why."""
    if isinstance(path, str) and not is_local(path):
        if not holds_anything(path, storage_options):
            return
    elif not is_local(path):
        return  # a zarr Store object: what is there is for Zarr to check
    else:
        local = Path(path)
        if not local.exists() or local.is_dir() and only_the_lock(local):
            return
    from weightlapse.store.reader import StoreReader

    try:
        StoreReader(path, storage_options)
    except RunFormatError:
        raise RunFormatError(
            f"{path}: refused to overwrite, it is not a weightlapse run; overwrite only "
            "ever replaces a run. Give the run another path."
        ) from None


def open_for_resume(
    path: Any, storage_options: dict | None = None
) -> tuple[zarr.Group, dict[str, Any]]:
    from weightlapse.store.reader import StoreReader

    attrs = StoreReader(path, storage_options).attrs  # a clear error when it is not a run
    return zarr.open_group(zarr_store(path, storage_options), mode="r+"), dict(attrs)


def check_resumable(path: Any, attrs: dict[str, Any], bins: int, max_probes: int | None) -> None:
    """Refuses to resume a run with options that would record it differently: another
    bin count, or a max_probes that probes its tensors otherwise (None: not checked)."""
    if int(attrs["bins"]) != bins:
        raise WeightlapseError(
            f"{path!s} records {attrs['bins']}-bin histograms, and a run keeps one bin "
            f"count: resume it with bins={attrs['bins']}, not {bins}. Nothing in it was "
            "changed."
        )
    differs = None if max_probes is None else probe_index.mismatch(attrs, max_probes)
    if differs:
        raise WeightlapseError(
            f"{path!s} cannot be resumed so: {differs}. Nothing in it was changed."
        )


def last_step(group: zarr.Group, attrs: dict[str, Any]) -> int | None:
    n = int(attrs["committed_steps"])
    if n == 0:
        return None
    return int(group[layout.INDEX_PATH][n - 1, 0])


def writer_identity() -> dict[str, Any]:
    """Who writes the run: readers call a run ended when this process is gone (same host)
    or its heartbeat is older than LIVE_TIMEOUT (see docs/format.md)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}
