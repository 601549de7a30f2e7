"""Reading saved weights without training: safetensors, PyTorch, Keras (.keras and legacy
.h5), ONNX, NumPy (.npy/.npz) and TensorFlow checkpoints.

The format is told by the file's first bytes, not its name. Nothing is unpickled unless
the caller says `trust_pickle=True`; Keras files are read as HDF5 data, never by
building the model (so no code in them runs).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.run import Run, create
from weightlapse.run import open as open_run

FORMATS = ("safetensors", "pytorch", "keras", "keras-h5", "onnx", "npy", "npz", "tf-checkpoint")
# Keras 3 stores a layer's variables by position; these are their names.
KERAS_VARIABLES = {
    "Dense": ["kernel", "bias"],
    "EinsumDense": ["kernel", "bias"],
    "Conv1D": ["kernel", "bias"],
    "Conv2D": ["kernel", "bias"],
    "Conv3D": ["kernel", "bias"],
    "Conv1DTranspose": ["kernel", "bias"],
    "Conv2DTranspose": ["kernel", "bias"],
    "DepthwiseConv2D": ["kernel", "bias"],
    "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    "LayerNormalization": ["gamma", "beta"],
    "Embedding": ["embeddings"],
}
KERAS_LAYOUTS = {
    "Dense": "in,out",
    "Conv1D": "w,in,out",
    "Conv2D": "h,w,in,out",
    "Conv3D": "d,h,w,in,out",
    "Conv2DTranspose": "h,w,out,in",
}
TORCH_LAYOUTS = {2: "out,in", 3: "out,in,w", 4: "out,in,h,w", 5: "out,in,d,h,w"}


class CheckpointError(WeightlapseError):
    """A file that cannot be read as saved weights; the message says why and what to do."""


@dataclass
class Checkpoint:
    """Named arrays from one file, with what is known of each one's layer and layout."""

    path: Path
    format: str
    tensors: dict[str, np.ndarray]
    layouts: dict[str, str] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


NOT_WEIGHTS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
}


def detect_format(path: Path) -> str:
    """The format by content (and, for ONNX and TF checkpoints, which have no magic bytes,
    by name)."""
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


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> Checkpoint:
    """Reads every tensor of a saved-weights file.

    >>> read_checkpoint("model.safetensors").tensors["conv1.weight"].shape
    """
    path = Path(path)
    kind = detect_format(path)
    reader = READERS[kind]
    try:
        checkpoint = reader(path, trust_pickle)
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


def _floats(array: Any) -> np.ndarray:
    out = np.asarray(array)
    return out if out.dtype.kind in "fiub" else out.astype(np.float32)


def _read_safetensors(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise MissingDependencyError("safetensors", "inspect") from exc
    tensors: dict[str, np.ndarray] = {}
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
            try:
                tensors[name] = f.get_tensor(name)
            except (TypeError, ValueError):  # bfloat16 and friends NumPy lacks
                tensors[name] = _via_torch_safetensors(path, name)
    return Checkpoint(path, "safetensors", tensors, _torch_layouts(tensors), _parents(tensors))


def _via_torch_safetensors(path: Path, name: str) -> np.ndarray:
    try:
        from safetensors import safe_open
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("safetensors", "inspect") from exc
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name).float().numpy()
    except ImportError as exc:
        raise MissingDependencyError("torch (to read bfloat16 tensors)", "torch") from exc


def _read_pytorch(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "torch") from exc
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        if trust_pickle or "weights_only" not in str(exc) and "Unsupported" not in str(exc):
            raise
        raise CheckpointError(
            f"{path}: refused to unpickle it: it holds Python objects beyond tensors "
            "(a whole pickled model, or custom classes), and unpickling can run any code. "
            "If you trust where it came from, pass --trust-pickle (trust_pickle=True)."
        ) from None
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach()
            tensors[prefix] = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(value, (int, float, str, bool)) and prefix:
            meta[prefix] = value

    # A training checkpoint nests the weights: {"epoch": 3, "model_state_dict": {...}}.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            meta.update({k: v for k, v in loaded.items() if isinstance(v, (int, float, str))})
            loaded = loaded[key]
            break
    walk(loaded, "")
    return Checkpoint(path, "pytorch", tensors, _torch_layouts(tensors), _parents(tensors), meta)


def _read_keras(path: Path, trust_pickle: bool) -> Checkpoint:
    h5py = _h5py()
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    classes = _keras_classes(config)
    storage = _keras_storage_names(config)
    tensors: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    layers: dict[str, str] = {}
    with h5py.File(io.BytesIO(weights), "r") as f:
        if "layers" not in f:
            raise CheckpointError(f"{path}: model.weights.h5 has no 'layers' group.")

        def visit(group: Any, prefix: str) -> None:
            for key in group:
                item = group[key]
                if key == "vars":
                    # Keras names storage groups by class (dense, dense_1, ...), not by the
                    # layers' own names: map them back.
                    stored = prefix.rsplit("/", 1)[-1]
                    layer = storage.get(stored, stored)
                    cls = classes.get(layer, "")
                    names = KERAS_VARIABLES.get(cls, [])
                    path = prefix[: -len(stored)] + layer
                    for index in sorted(item, key=int):
                        i = int(index)
                        var = names[i] if i < len(names) else f"var{i}"
                        name = f"{path}/{var}"
                        tensors[name] = _floats(item[index][()])
                        layers[name] = path
                        if var == "kernel":
                            layouts[name] = KERAS_LAYOUTS.get(cls, "")
                elif hasattr(item, "keys"):
                    visit(item, f"{prefix}/{key}" if prefix else key)

        visit(f["layers"], "")
    return Checkpoint(
        path,
        "keras",
        tensors,
        layouts,
        layers,
        {"class": config.get("class_name", ""), "layers": classes},
    )


def _keras_classes(config: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "class_name" in node
                and isinstance(node.get("config"), dict)
                and "name" in node["config"]
            ):
                found[node["config"]["name"]] = node["class_name"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _keras_storage_names(config: dict[str, Any]) -> dict[str, str]:
    """Keras 3 stores each layer's variables under its class name in snake case, made
    unique in layer order (conv2d, conv2d_1, ...). Returns storage name -> layer name."""
    layers = config.get("config", {}).get("layers", [])
    seen: dict[str, int] = {}
    out: dict[str, str] = {}
    for layer in layers if isinstance(layers, list) else []:
        cls = layer.get("class_name", "")
        if cls == "InputLayer":
            continue
        base = _snake_case(cls)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out[base if count == 0 else f"{base}_{count}"] = layer.get("config", {}).get("name", "")
    return out


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_keras_h5(path: Path, trust_pickle: bool) -> Checkpoint:
    h5py = _h5py()
    tensors: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        classes: dict[str, str] = {}
        raw = f.attrs.get("model_config")
        if raw is not None:
            classes = _keras_classes(json.loads(raw if isinstance(raw, str) else raw.decode()))
        found: list[tuple[str, Any]] = []
        root.visititems(
            lambda name, item: (
                found.append((name, item)) if isinstance(item, h5py.Dataset) else None
            )
        )
        for full, item in found:
            parts = full.replace(":0", "").split("/")
            # model_weights/<layer>/<model>/<layer>/kernel -> <layer>/kernel
            name = f"{parts[0]}/{parts[-1]}" if len(parts) > 1 else parts[0]
            if name in tensors:
                name = full
            tensors[name] = _floats(item[()])
            if parts[-1] == "kernel":
                layouts[name] = KERAS_LAYOUTS.get(classes.get(parts[0], ""), "")
    return Checkpoint(path, "keras-h5", tensors, layouts, _parents(tensors), {"layers": classes})


def _read_onnx(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise MissingDependencyError("onnx", "inspect") from exc
    model = onnx.load(str(path), load_external_data=False)
    if not model.graph.node and not model.graph.initializer:
        raise CheckpointError(f"{path}: not an ONNX model (its graph is empty).")
    tensors = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layouts: dict[str, str] = {}
    layers: dict[str, str] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name not in tensors:
                continue
            layers[name] = node.name or name.rsplit(".", 1)[0]
            if position == 1 and node.op_type in ("Conv", "ConvTranspose"):
                base = TORCH_LAYOUTS.get(tensors[name].ndim, "")
                layouts[name] = base if node.op_type == "Conv" else base.replace("out,in", "in,out")
            elif position == 1 and node.op_type == "Gemm":
                trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
                layouts[name] = "out,in" if trans_b else "in,out"
            elif position == 1 and node.op_type == "MatMul":
                layouts[name] = "in,out"
    return Checkpoint(
        path,
        "onnx",
        tensors,
        layouts,
        layers,
        {"producer": model.producer_name, "opset": [o.version for o in model.opset_import]},
    )


def _read_numpy(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        loaded = np.load(path, allow_pickle=trust_pickle)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CheckpointError(
                f"{path}: refused to unpickle it: it holds Python objects, not plain arrays, "
                "and unpickling can run any code. If you trust it, pass --trust-pickle."
            ) from None
        raise
    if isinstance(loaded, np.ndarray):
        return Checkpoint(path, "npy", {path.stem: _floats(loaded)})
    with loaded:
        tensors = {k: _floats(loaded[k]) for k in loaded.files}
    return Checkpoint(path, "npz", tensors, {}, _parents(tensors))


def _read_tf_checkpoint(path: Path, trust_pickle: bool) -> Checkpoint:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorflow (for TensorFlow checkpoints)", "tensorflow"
        ) from exc
    prefix = str(path)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path)) or prefix
    elif path.suffix == ".index":
        prefix = str(path.with_suffix(""))
    reader = tf.train.load_checkpoint(prefix)
    tensors = {}
    for name in sorted(reader.get_variable_to_shape_map()):
        if "OPTIMIZER_SLOT" in name or name.startswith(("_CHECKPOINTABLE", "save_counter")):
            continue
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            tensors[name.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")] = value
    return Checkpoint(path, "tf-checkpoint", tensors, {}, _parents(tensors))


READERS: dict[str, Callable[[Path, bool], Checkpoint]] = {
    "safetensors": _read_safetensors,
    "pytorch": _read_pytorch,
    "keras": _read_keras,
    "keras-h5": _read_keras_h5,
    "onnx": _read_onnx,
    "npy": _read_numpy,
    "npz": _read_numpy,
    "tf-checkpoint": _read_tf_checkpoint,
}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("h5py", "inspect") from exc
    return h5py


def _torch_layouts(tensors: dict[str, np.ndarray]) -> dict[str, str]:
    """PyTorch's conventions, for files saved from it: weight is (out, in, *spatial)."""
    return {
        n: TORCH_LAYOUTS.get(a.ndim, "")
        for n, a in tensors.items()
        if n.endswith("weight") and a.ndim >= 2
    }


def _parents(tensors: dict[str, np.ndarray]) -> dict[str, str]:
    from weightlapse.record.recorder import parent_path

    return {n: parent_path(n) for n in tensors}


def log_checkpoint(run: Run, step: int, checkpoint: Checkpoint) -> None:
    """One checkpoint as one recorded step, with its layouts, snapshot included."""
    for name in checkpoint.tensors:
        run.describe(
            name, layout=checkpoint.layouts.get(name, ""), layer=checkpoint.layers.get(name, "")
        )
    run.log(step, checkpoint.tensors, snapshot=True)


def load_weights(path: str | Path, *, trust_pickle: bool = False) -> Run:
    """A saved-weights file as a Run with one step (0), so every view works on it.

    >>> run = load_weights("lenet.pth"); filter_grid(run, "conv1.weight")
    """
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    store = zarr.storage.MemoryStore()
    run = create(
        store,
        snapshots=None,
        snapshot_budget=None,
        meta={
            "framework": checkpoint.format,
            "source": str(checkpoint.path),
            "checkpoint": _json_safe(checkpoint.meta),
        },
    )
    log_checkpoint(run, 0, checkpoint)
    run.close()
    return open_run(store)


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(meta, default=str))


def natural_key(path: Path) -> list[Any]:
    """epoch_2 before epoch_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


CHECKPOINT_SUFFIXES = (
    ".pt",
    ".pth",
    ".bin",
    ".ckpt",
    ".safetensors",
    ".keras",
    ".h5",
    ".onnx",
    ".npz",
    ".npy",
)


def import_checkpoints(
    folder: str | Path,
    run_path: str | Path,
    *,
    trust_pickle: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> Run:
    """A folder of checkpoints saved during training (epoch_1.pt, epoch_2.pt, ...) as a run:
    one step per file, in natural order, the step taken from the number in its name.

    >>> import_checkpoints("checkpoints/", "runs/imported")
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder of checkpoints.")
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES), key=natural_key
    )
    if not files:
        raise CheckpointError(
            f"{folder}: no checkpoint files (looked for {', '.join(CHECKPOINT_SUFFIXES)})."
        )
    numbers = [re.findall(r"\d+", p.stem) for p in files]
    steps = [int(n[-1]) for n in numbers] if all(numbers) else list(range(len(files)))
    if len(set(steps)) != len(steps):
        steps = list(range(len(files)))
    items = zip(steps, files)
    if progress:
        from rich.progress import track

        items = track(list(items), description="importing")
    with create(
        run_path,
        snapshots=None,
        snapshot_budget=None,
        overwrite=overwrite,
        meta={"framework": "checkpoints", "source": str(folder)},
    ) as run:
        for step, file in items:
            log_checkpoint(run, step, read_checkpoint(file, trust_pickle=trust_pickle))
    return open_run(run_path)
