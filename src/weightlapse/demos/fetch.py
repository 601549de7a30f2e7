"""MNIST from the network, once: the four official files, each checked against its known
MD5 (the sums torchvision checks) and cached under the user's cache folder. A mirror that
fails, times out or serves other bytes is skipped; when none works the caller hears why
and trains on the digits that ship with scikit-learn instead."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from weightlapse.errors import WeightlapseError

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MAX_BYTES = 16 * 2**20  # the largest file is 9.9 MB
MIRROR_ENV = "WEIGHTLAPSE_MNIST_MIRROR"  # one base URL to use instead of the mirrors
OFFLINE_ENV = "WEIGHTLAPSE_OFFLINE"  # "1": never fetch


class FetchError(WeightlapseError):
    """MNIST could not be fetched; the message says from where and why."""


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "weightlapse" / "mnist"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def cached_mnist(folder: Path | None = None) -> Path | None:
    """The cache folder when it holds all four files (each was checked when fetched)."""
    folder = folder or cache_folder()
    return folder if all((folder / name).is_file() for name in MNIST_FILES) else None


def fetch_mnist(
    mirrors: tuple[str, ...] | None = None, folder: Path | None = None, timeout: float = 10.0
) -> Path:
    """The folder holding the four MNIST files, fetching the ones not cached yet."""
    folder = folder or cache_folder()
    mirrors = mirrors or ((os.environ[MIRROR_ENV],) if os.environ.get(MIRROR_ENV) else MIRRORS)
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        target = folder / name
        if target.is_file():
            continue
        reasons = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                _download(url, target, md5, timeout)
                break
            except (OSError, ValueError, FetchError) as exc:
                reasons.append(f"{url}: {exc}")
        else:
            raise FetchError("could not fetch MNIST: " + "; ".join(reasons))
    return folder


def _download(url: str, target: Path, md5: str, timeout: float) -> None:
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise FetchError(f"more than {MAX_BYTES:,} bytes; not an MNIST file")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise FetchError(f"checksum {digest.hexdigest()} is not MNIST's {md5}")
        os.replace(partial, target)  # whole and checked, or not there at all
    finally:
        partial.unlink(missing_ok=True)
