"""A saved model and an input for `weightlapse explain`, loaded safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.io.formats import read_checkpoint

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_model(
    path: str | Path, *, trust_pickle: bool = False, max_bytes: int | None = None
) -> Any:
    """A Keras .keras/.h5 model (safe mode: no arbitrary code), a TorchScript file, or a
    whole pickled PyTorch model (only with trust_pickle)."""
    path = Path(path)
    if not path.exists():
        raise WeightlapseError(f"{path}: no such file.")
    if path.suffix in (".keras", ".h5"):
        # Keras' own reader follows HDF5 links out of the file and reads any size: the
        # checkpoint reader refuses those first (one line saying which).
        read_checkpoint(path, max_bytes=max_bytes)
        try:
            import keras
        except ImportError as exc:
            raise MissingDependencyError("keras", "keras") from exc
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "torch") from exc
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError:
        pass  # not TorchScript: a torch.save'd object
    if not trust_pickle:
        raise WeightlapseError(
            f"{path}: a pickled PyTorch model; loading it runs code from the file. If you "
            "trust it, pass --trust-pickle. (A state dict holds no architecture: load it "
            "into your model in Python and use weightlapse.interpret there.)"
        )
    model = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(model, torch.nn.Module):
        raise WeightlapseError(f"{path}: holds a {type(model).__name__}, not a whole model.")
    return model


def load_input(path: str | Path, channels_last: bool) -> np.ndarray:
    """An image or a .npy as a batch of one (or the .npy's own batch), float32."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float32)
        return x
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise WeightlapseError(
            f"{path}: give an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy array."
        )
    import imageio.v3 as iio

    image = iio.imread(path).astype(np.float32) / 255.0
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim == 2:
        image = image[..., None]
    batch = image[None]
    return batch if channels_last else np.moveaxis(batch, -1, 1)


def fit_batch(x: np.ndarray, model: Any, channels_last: bool) -> np.ndarray:
    """Adds the batch axis a single .npy sample lacks, judged by the model's input rank."""
    rank = None
    if channels_last:
        shape = getattr(model, "input_shape", None)
        rank = len(shape) if isinstance(shape, tuple) else None
    if rank is not None and x.ndim == rank - 1:
        return x[None]
    if rank is None and x.ndim in (1, 3):  # torch: (features,) or (C, H, W)
        return x[None]
    return x
