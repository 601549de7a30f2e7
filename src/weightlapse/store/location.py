"""Where runs live: a folder on this machine, or a prefix of an object store (any URL
fsspec knows: s3://, gs://, az://, memory://). Everything that lists runs, measures them
or deletes one goes through here, so nothing of ours assumes a local directory.

Credentials and endpoints come from `storage_options` or, as fsspec does, from the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), so that `weightlapse view
s3://bucket/runs` works with the same settings as the script that wrote the runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

RUN_MARK = b'"weightlapse"'  # in a run's root zarr.json (its attributes)


def is_url(path: Any) -> bool:
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def zarr_store(path: Any, storage_options: dict[str, Any] | None = None) -> Any:
    """What zarr.open_group takes for a run: the path itself, or (with storage options)
    an fsspec store built from them."""
    if storage_options and is_url(path):
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(path, storage_options=dict(storage_options))
    return path


class RunsRoot:
    """A folder or object-store prefix that holds runs, each under a relative name."""

    def __init__(self, root: str | os.PathLike, storage_options: dict | None = None) -> None:
        self.text = str(root)
        self.remote = is_url(self.text)
        if self.remote:
            from fsspec.core import url_to_fs

            self.fs, self.base = url_to_fs(self.text, **(storage_options or {}))
            self.base = self.base.rstrip("/")
        else:
            self.path = Path(root)

    def __str__(self) -> str:
        return self.text

    def exists(self) -> bool:
        if self.remote:
            return _listed(self.fs, self.base)
        return self.path.is_dir()

    def _key(self, name: str) -> str:
        return f"{self.base}/{name}".rstrip("/")

    def run_path(self, name: str) -> Any:
        """What `weightlapse.open` takes for the run `name` under this root."""
        if self.remote:
            return self.fs.unstrip_protocol(self._key(name)) if name else self.text
        return self.path / name

    def is_run(self, name: str) -> bool:
        try:
            if self.remote:
                head = self.fs.cat_file(f"{self._key(name)}/zarr.json", start=0, end=10**6)
            else:
                head = (self.path / name / "zarr.json").read_bytes()[: 10**6]
        except (OSError, ValueError):
            return False
        return RUN_MARK in head

    def find_runs(self) -> list[str]:
        """The runs under the root, by relative name (a run's own arrays are not runs)."""
        if not self.remote:
            return _local_runs(self.path)
        marks = [p for p in self.fs.find(self.base) if p.endswith("/zarr.json")]
        found: list[str] = []
        for mark in sorted(marks, key=len):  # a run before anything inside it
            name = mark[len(self.base) + 1 : -len("/zarr.json")]
            if any(name.startswith(run + "/") for run in found):
                continue
            if any(part.startswith(".") for part in name.split("/")):
                continue
            if self.is_run(name):
                found.append(name)
        return sorted(found)

    def size(self, name: str) -> int:
        if self.remote:
            return int(self.fs.du(self._key(name)))
        return sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(self.path / name)
            for f in files
        )


def _local_runs(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "zarr.json" in filenames and RunsRoot(here).is_run(""):
            found.append(here.relative_to(root).as_posix())
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return sorted(found)


def holds_anything(path: str, storage_options: dict | None = None) -> bool:
    """Whether an object-store prefix holds any object."""
    from fsspec.core import url_to_fs

    fs, base = url_to_fs(path, **(storage_options or {}))
    return _listed(fs, base.rstrip("/"))


def _listed(fs: Any, base: str) -> bool:
    """Whether a prefix lists anything (one listing, not a walk of everything under it)."""
    try:
        return bool(fs.ls(base, detail=False))
    except (FileNotFoundError, NotADirectoryError):
        return False


def delete(path: str, storage_options: dict | None = None) -> None:
    """Deletes everything under an object-store prefix (a run being discarded)."""
    from fsspec.core import url_to_fs

    fs, base = url_to_fs(path, **(storage_options or {}))
    if fs.exists(base):
        fs.rm(base.rstrip("/"), recursive=True)
