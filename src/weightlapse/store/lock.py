"""One writer per run: an OS lock (`flock`) on a file inside the run's folder, held for
as long as a writer records into it and let go by the OS when its process ends, even at
`kill -9`. A second writer (another rank, a second script, a retry with overwrite=True
while the first still runs) hears who holds the run, and nothing is deleted or written.

The lock file is never removed while a run exists: overwrite deletes everything in the
folder but it, so two processes always lock the same file.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from weightlapse.errors import RunFormatError

LOCK_NAME = ".weightlapse-writer.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; writers are trusted
    fcntl = None  # type: ignore[assignment]


def is_local(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and "://" not in str(path)


class WriterLock:
    """Held by the one writer of the run at `path` (a local folder; object stores have no
    such lock)."""

    def __init__(self, path: Any) -> None:
        self._fd: int | None = None
        if fcntl is None or not is_local(path):
            return
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            return  # not a folder: the store's own error says what is there
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunFormatError(
                f"{path!s} is being recorded by {holder}: a run has one writer at a time. "
                "Record into another path; under torch.distributed let one rank write "
                "(the default of weightlapse's recorders)."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing lets the lock go
            self._fd = None


def _holder(fd: int) -> str:
    """Who holds the lock, as it wrote it (it may be a moment from writing it)."""
    for _ in range(20):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.025)
    return "another process"


def clear_folder_but_lock(path: Any) -> None:
    """Deletes a run's contents for overwrite=True, keeping the lock file (held by us)."""
    for entry in Path(path).iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def only_the_lock(path: Path) -> bool:
    """A folder holding nothing but a lock file: an empty run folder."""
    return all(entry.name == LOCK_NAME for entry in path.iterdir())
