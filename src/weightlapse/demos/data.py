"""Digit images for the demos, offline: MNIST when the user has it, else scikit-learn's digits."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weightlapse.errors import MissingDependencyError, WeightlapseError


@dataclass
class Digits:
    """Flattened images in [0, 1] with integer labels, split for training and validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    image_shape: tuple[int, int]
    source: str


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or not): big-endian header, then uint8 payload."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    magic = int.from_bytes(raw[0:4], "big")
    if magic == 2051:
        n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)
    if magic == 2049:
        return np.frombuffer(raw, np.uint8, offset=8)
    raise WeightlapseError(f"{path} is not an MNIST IDX file (magic {magic}, want 2051 or 2049).")


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).exists():
            return folder / name
    return None


def _split(x: np.ndarray, y: np.ndarray, n_train: int, seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def load_mnist_folder(folder: Path, seed: int = 0) -> Digits:
    """MNIST from IDX files or a Keras `mnist.npz`; only the test set: 8,000/2,000 split."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".npz":
        with np.load(folder, allow_pickle=False) as f:
            x_tr, y_tr, x_te, y_te = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        return Digits(
            _flat(x_tr),
            y_tr.astype(np.int64),
            _flat(x_te),
            y_te.astype(np.int64),
            (28, 28),
            f"MNIST (Keras mnist.npz at {folder})",
        )
    test_x, test_y = (
        _find(folder, "t10k-images-idx3-ubyte"),
        _find(folder, "t10k-labels-idx1-ubyte"),
    )
    train_x, train_y = (
        _find(folder, "train-images-idx3-ubyte"),
        _find(folder, "train-labels-idx1-ubyte"),
    )
    if train_x and train_y and test_x and test_y:
        x_tr, x_te = _flat(read_idx(train_x)), _flat(read_idx(test_x))
        return Digits(
            x_tr,
            read_idx(train_y).astype(np.int64),
            x_te,
            read_idx(test_y).astype(np.int64),
            (28, 28),
            f"MNIST ({len(x_tr):,} train / {len(x_te):,} test from {folder})",
        )
    if test_x and test_y:
        x_tr, y_tr, x_va, y_va = _split(
            _flat(read_idx(test_x)), read_idx(test_y).astype(np.int64), 8000, seed
        )
        return Digits(
            x_tr,
            y_tr,
            x_va,
            y_va,
            (28, 28),
            f"MNIST test set (10,000 images from {folder}, split 8,000 / 2,000)",
        )
    raise WeightlapseError(
        f"No MNIST files in {folder}. Want t10k-images-idx3-ubyte[.gz] and "
        "t10k-labels-idx1-ubyte[.gz] (and optionally the train-* pair), or a Keras mnist.npz."
    )


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def load_digits(data: str | Path | None = None, seed: int = 0, fetch: bool = False) -> Digits:
    """`data` if given; else MNIST cached by an earlier fetch (or Keras's download); else,
    with `fetch`, MNIST from the network (checksummed, cached); else, or when that fails,
    scikit-learn's 8x8 digits, and `source` says why."""
    from weightlapse.demos.fetch import FetchError, cached_mnist, fetch_mnist, offline

    if data is not None:
        return load_mnist_folder(Path(data), seed)
    folder = cached_mnist()
    if folder is not None:
        return load_mnist_folder(folder, seed)
    keras_cache = Path.home() / ".keras" / "datasets" / "mnist.npz"
    if keras_cache.exists():
        return load_mnist_folder(keras_cache, seed)
    why = "pass --data DIR for MNIST"
    if fetch and not offline():
        try:
            return load_mnist_folder(fetch_mnist(), seed)
        except FetchError as exc:
            why = f"MNIST could not be fetched ({str(exc)[:300]}); pass --data DIR"
    elif fetch:
        why = "offline: MNIST not fetched; pass --data DIR for MNIST"
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise MissingDependencyError("scikit-learn (its bundled digits)", "demo") from exc
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    x_tr, y_tr, x_va, y_va = _split(x, bunch.target.astype(np.int64), 1437, seed)
    return Digits(
        x_tr,
        y_tr,
        x_va,
        y_va,
        (8, 8),
        f"scikit-learn's 8x8 digits (1,797 images, split 1,437 / 360); {why}",
    )
