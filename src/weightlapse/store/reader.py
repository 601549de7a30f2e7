"""Reading a run, also while it is being written: trust the committed marker, not shapes."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from weightlapse.errors import RunFormatError
from weightlapse.store import layout


class StoreReader:
    """Read-only view of a run's Zarr group; `refresh()` picks up newly committed steps."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self.attrs: dict[str, Any] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Re-reads the committed marker; True when something new was committed."""
        try:
            group = zarr.open_group(self.path, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as exc:
            raise RunFormatError(
                f"No weightlapse run at {self.path!s} ({exc.__class__.__name__}). Give the "
                "path of a run made by weightlapse.create or a recorder."
            ) from None
        attrs = dict(group.attrs).get(layout.ROOT_ATTR)
        if not isinstance(attrs, dict):
            raise RunFormatError(
                f"{self.path!s} is a Zarr group but not a weightlapse run (its attributes "
                f"have no {layout.ROOT_ATTR!r} entry)."
            )
        version = attrs.get("format_version")
        if not isinstance(version, int) or version > layout.FORMAT_VERSION:
            raise RunFormatError(
                f"{self.path!s} has run format version {version!r}; this weightlapse reads "
                f"versions up to {layout.FORMAT_VERSION}. Upgrade weightlapse to read it."
            )
        changed = attrs != self.attrs
        if changed:
            self.attrs = attrs
            self._group = group
            self._arrays.clear()  # an open handle keeps its old shape
        return changed

    @property
    def committed_steps(self) -> int:
        return int(self.attrs["committed_steps"])

    def array(self, path: str) -> zarr.Array | None:
        arr = self._arrays.get(path)
        if arr is None:
            try:
                arr = self._group[path]
            except KeyError:
                return None
            self._arrays[path] = arr
        return arr

    def rows(self, path: str, columns: Any = slice(None)) -> np.ndarray | None:
        """The committed rows of a per-step array (None when it was never written)."""
        arr = self.array(path)
        n = self.committed_steps
        if arr is None:
            return None
        if isinstance(columns, tuple):
            return arr[(slice(0, n), *columns)]
        return arr[0:n, columns]
