"""Which tensors to record, chosen by name globs."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def as_patterns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class NameFilter:
    """Keeps a name when it matches any `include` glob and no `exclude` glob.

    >>> NameFilter(include="*kernel").keeps("dense/kernel")
    True
    """

    def __init__(
        self, include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None
    ) -> None:
        self.include = as_patterns(include) or ("*",)
        self.exclude = as_patterns(exclude)
        self._cache: dict[str, bool] = {}

    def keeps(self, name: str) -> bool:
        kept = self._cache.get(name)
        if kept is None:  # asked at every step for the same names: match each once
            kept = any(fnmatch.fnmatchcase(name, p) for p in self.include) and not any(
                fnmatch.fnmatchcase(name, p) for p in self.exclude
            )
            self._cache[name] = kept
        return kept

    @property
    def keeps_all(self) -> bool:
        return self.include == ("*",) and not self.exclude

    def kept(self, tensors: Mapping[str, Any]) -> Mapping[str, Any]:
        """The entries whose names it keeps (the mapping itself when it keeps all)."""
        if self.keeps_all:
            return tensors
        return {n: t for n, t in tensors.items() if self.keeps(n)}

    def select(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.keeps(n)]
