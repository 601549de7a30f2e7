"""A read-only local store that serves no file outside a given folder, whatever symlinks
inside a run point at (the dashboard opens every run through it)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zarr.storage import LocalStore


class OutsideRunsFolder(PermissionError):
    """A key of a run resolved to a file outside the folder the store is confined to."""


class ConfinedStore(LocalStore):
    """`LocalStore` at `path`, read-only, refusing keys whose real path leaves `allowed`."""

    def __init__(self, path: str | Path, allowed: str | Path) -> None:
        super().__init__(path, read_only=True)
        self.allowed = os.path.realpath(allowed)

    def _check(self, key: str) -> None:
        real = os.path.realpath(os.path.join(self.root, key))
        if os.path.commonpath([self.allowed, real]) != self.allowed:
            raise OutsideRunsFolder(f"{key!r} resolves outside the runs folder")

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        self._check(key)
        return await super().get(key, prototype, byte_range)

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        self._check(key)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def get_partial_values(
        self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]
    ) -> list[Any]:
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check(key)
        return await super().get_partial_values(prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        self._check(key)
        return await super().exists(key)
