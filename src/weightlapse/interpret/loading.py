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


def fit_to_model(x: np.ndarray, model: Any, *, name: str = "the input") -> np.ndarray:
    """An image batch in the channels and size the model takes: RGB to gray (luminance),
    gray to RGB, resized (bilinear) to a Keras model's fixed input size; else one line
    saying what the model expects."""
    from weightlapse.frameworks import framework_of

    if x.ndim != 4:
        return x
    last = framework_of(model) == "keras"
    have = x.shape[-1] if last else x.shape[1]
    want, size = _expected(model, last)
    if want is not None and want != have:
        if have == 3 and want == 1:
            x = _luminance(x, last)
        elif have == 1 and want == 3:
            x = np.repeat(x, 3, axis=-1 if last else 1)
        else:
            raise WeightlapseError(
                f"{name} has {have} channels; the model takes {want}. Give an image or array "
                f"with {want} channel(s)."
            )
    if size is not None and tuple(x.shape[1:3] if last else x.shape[2:4]) != size:
        x = _resize(x, size, last)
    return x


def _expected(model: Any, last: bool) -> tuple[int | None, tuple[int, int] | None]:
    if last:
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and None not in shape[1:]:
            return int(shape[3]), (int(shape[1]), int(shape[2]))
        return None, None
    for module in model.modules():
        if hasattr(module, "in_channels"):
            return int(module.in_channels), None
    return None, None


def _luminance(x: np.ndarray, last: bool) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if last:
        return (x * weights).sum(axis=-1, keepdims=True)
    return (x * weights[None, :, None, None]).sum(axis=1, keepdims=True)


def _resize(x: np.ndarray, size: tuple[int, int], last: bool) -> np.ndarray:
    """Bilinear resampling of (N, H, W, C) or (N, C, H, W) to `size`."""
    images = x if last else np.moveaxis(x, 1, -1)
    n, h, w, c = images.shape
    ys = np.linspace(0, h - 1, size[0])
    xs = np.linspace(0, w - 1, size[1])
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    out = (top * (1 - wy) + bottom * wy).astype(np.float32)
    return out if last else np.moveaxis(out, -1, 1)
