"""Reading saved weights without training: safetensors, PyTorch, Keras (.keras and legacy
.h5), ONNX, NumPy (.npy/.npz) and TensorFlow checkpoints, one reader per module.

The format is told by the file's first bytes, not its name. Nothing is unpickled unless
the caller says `trust_pickle=True`; Keras files are read as HDF5 data, never by
building the model (so no code in them runs).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from weightlapse.errors import WeightlapseError
from weightlapse.io.formats.common import Checkpoint, CheckpointError, ReadOptions, check_zip
from weightlapse.io.formats.hf_folder import INDEX_FILES, is_hf_folder, read_hf_folder
from weightlapse.io.formats.keras import read_keras
from weightlapse.io.formats.keras_h5 import read_keras_h5
from weightlapse.io.formats.numpy import read_numpy
from weightlapse.io.formats.onnx import read_onnx
from weightlapse.io.formats.pytorch import read_pytorch
from weightlapse.io.formats.safetensors import read_safetensors
from weightlapse.io.formats.tf_checkpoint import read_tf_checkpoint

READERS: dict[str, Callable[[Path, ReadOptions], Checkpoint]] = {
    "safetensors": read_safetensors,
    "pytorch": read_pytorch,
    "keras": read_keras,
    "keras-h5": read_keras_h5,
    "onnx": read_onnx,
    "npy": read_numpy,
    "npz": read_numpy,
    "tf-checkpoint": read_tf_checkpoint,
    "hf-folder": read_hf_folder,
}
FORMATS = tuple(READERS)

NOT_WEIGHTS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
}


def detect_format(path: Path) -> str:
    """The format by content (and, for ONNX and TF checkpoints, which have no magic bytes,
    by name; a folder is a Hugging Face model when it holds its weight files)."""
    if is_hf_folder(path) or path.name in INDEX_FILES:
        return "hf-folder"
    if path.is_dir() or path.suffix == ".index" or Path(f"{path}.index").exists():
        return "tf-checkpoint"
    if not path.exists():
        raise CheckpointError(f"{path}: no such file.")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); it holds no weights.")
    with open(path, "rb") as f:
        head = f.read(16)
    for magic, what in NOT_WEIGHTS.items():
        if head.startswith(magic):
            raise CheckpointError(f"{path}: this is {what}, not a weights file.")
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras-h5"
    if head.startswith(b"PK"):
        return _zip_kind(path)
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len < size:
            return "safetensors"
    if head[:1] == b"\x80" and path.suffix.lower() in (".pt", ".pth", ".bin", ".ckpt", ".pkl"):
        return "pytorch"  # the legacy (pre-zip) torch.save format: a pickle
    if path.suffix.lower() == ".onnx":
        return "onnx"
    raise CheckpointError(
        f"{path}: not a weights file this reader knows (first bytes {head[:8]!r}). Known: "
        "safetensors, PyTorch (.pt/.pth), Keras (.keras, .h5), ONNX (.onnx), NumPy (.npy, "
        ".npz), TensorFlow checkpoints."
    )


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path}: a damaged or truncated zip archive ({exc}).") from None
    unsafe = [n for n in names if n.startswith(("/", "\\")) or ".." in Path(n).parts]
    if unsafe:
        raise CheckpointError(
            f"{path}: refused, the archive has entries that point outside it ({unsafe[0]!r})."
        )
    if "model.weights.h5" in names and "config.json" in names:
        return "keras"
    if any(n.endswith("data.pkl") for n in names):
        return "pytorch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    raise CheckpointError(
        f"{path}: a zip archive, but not a Keras, PyTorch or NumPy one "
        f"(entries: {', '.join(names[:5])})."
    )


def read_checkpoint(
    path: str | Path,
    *,
    trust_pickle: bool = False,
    max_bytes: int | None = None,
    allow_external_data: bool = False,
) -> Checkpoint:
    """Reads every tensor of a saved-weights file, refusing what a hostile file could do:
    unpickling (unless `trust_pickle`), reading other files (HDF5 external links, external
    storage and virtual datasets; ONNX external data unless `allow_external_data`, and
    then only inside the model's folder), and sizes past `max_bytes` (default a quarter of
    memory) or past what the file can hold.

    >>> read_checkpoint("model.safetensors").tensors["conv1.weight"].shape
    """
    path = Path(path)
    kind = detect_format(path)
    options = ReadOptions(trust_pickle, max_bytes, allow_external_data)
    reader = READERS[kind]
    try:
        if kind in ("keras", "npz") or kind == "pytorch" and zipfile.is_zipfile(path):
            check_zip(path, options)
        checkpoint = reader(path, options)
    except (WeightlapseError, MemoryError):
        raise
    except Exception as exc:  # a library's error on a damaged file: say it in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: could not read it as {kind} ({type(exc).__name__}: {reason[:200]}). "
            "The file may be truncated or damaged."
        ) from None
    if not checkpoint.tensors:
        raise CheckpointError(f"{path}: a {kind} file, but it holds no numeric tensors.")
    return checkpoint


__all__ = [
    "FORMATS",
    "READERS",
    "Checkpoint",
    "CheckpointError",
    "detect_format",
    "read_checkpoint",
]
