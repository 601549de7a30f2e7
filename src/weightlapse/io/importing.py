"""Checkpoints as runs: one file as a one-step run every view can draw, and a folder of
checkpoints saved during training as a run with a step per file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import zarr

from weightlapse.io.formats import Checkpoint, CheckpointError, read_checkpoint
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.run_writer import RunWriter, create


def log_checkpoint(run: RunWriter, step: int, checkpoint: Checkpoint) -> None:
    """One checkpoint as one recorded step, with its layouts, snapshot included."""
    for name in checkpoint.tensors:
        run.describe(
            name, layout=checkpoint.layouts.get(name, ""), layer=checkpoint.layers.get(name, "")
        )
    run.log(step, checkpoint.tensors, snapshot=True)


def load_weights(
    path: str | Path,
    *,
    trust_pickle: bool = False,
    max_bytes: int | None = None,
    allow_external_data: bool = False,
) -> Run:
    """A saved-weights file as a Run with one step (0), so every view works on it. The
    options are `read_checkpoint`'s.

    >>> run = load_weights("lenet.pth"); filter_grid(run, "conv1.weight")
    """
    checkpoint = read_checkpoint(
        path,
        trust_pickle=trust_pickle,
        max_bytes=max_bytes,
        allow_external_data=allow_external_data,
    )
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
    max_bytes: int | None = None,
    allow_external_data: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
) -> Run:
    """A folder of checkpoints saved during training (epoch_1.pt, epoch_2.pt, ...) as a run:
    one step per file, in natural order, the step taken from the number in its name.
    `overwrite` replaces a run (never anything else, never the folder being imported);
    `resume` adds the checkpoints to an existing run, after its last step.

    >>> import_checkpoints("checkpoints/", "runs/imported")
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder of checkpoints.")
    target = Path(run_path).resolve()
    if target == folder.resolve() or target in folder.resolve().parents:
        raise CheckpointError(
            f"{run_path}: refused, it holds the checkpoints being imported ({folder}); "
            "give the run a path of its own."
        )
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
        resume=resume,
        meta={"framework": "checkpoints", "source": str(folder)},
    ) as run:
        for step, file in items:
            checkpoint = read_checkpoint(
                file,
                trust_pickle=trust_pickle,
                max_bytes=max_bytes,
                allow_external_data=allow_external_data,
            )
            log_checkpoint(run, step, checkpoint)
    return open_run(run_path)
