"""Checkpoints as runs: one file as a one-step run every view can draw, and a folder of
checkpoints saved during training as a run with a step per file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zarr

from weightlapse.io.formats import Checkpoint, CheckpointError, read_checkpoint
from weightlapse.io.formats.common import ReadOptions
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


def checkpoint_entries(folder: Path) -> list[tuple[str, Callable[[ReadOptions], Checkpoint]]]:
    """The checkpoints in a folder, in natural order, each as (name, how to read it): a
    file; the shards of one checkpoint (`model-00001-of-00003.safetensors`, ...) as one;
    a Hugging Face model folder inside it (`checkpoint-500/`) as one."""
    from weightlapse.io.formats.hf_folder import SHARD, check_complete, is_hf_folder, read_shards

    def reader(path: Path) -> Callable[[ReadOptions], Checkpoint]:
        return lambda options: read_checkpoint(path, **vars(options))

    entries: dict[str, Callable[[ReadOptions], Checkpoint]] = {}
    shards: dict[tuple[str, str, str], list[Path]] = {}
    for path in sorted(folder.iterdir(), key=natural_key):
        match = SHARD.match(path.name)
        if path.is_file() and match:
            shards.setdefault((match["stem"], match["total"], match["ext"]), []).append(path)
        elif path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
            entries[path.name] = reader(path)
        elif path.is_dir() and is_hf_folder(path):
            entries[path.name] = reader(path)
    for (stem, total, ext), files in shards.items():
        check_complete(folder, stem, int(total), ext, files)
        entries[stem] = lambda options, files=sorted(files): read_shards(files, options)
    return sorted(entries.items(), key=lambda e: natural_key(Path(e[0])))


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
    entries = checkpoint_entries(folder)
    if not entries:
        raise CheckpointError(
            f"{folder}: no checkpoint files (looked for {', '.join(CHECKPOINT_SUFFIXES)}, "
            "sharded checkpoints and Hugging Face model folders)."
        )
    numbers = [re.findall(r"\d+", name) for name, _ in entries]
    steps = [int(n[-1]) for n in numbers] if all(numbers) else list(range(len(entries)))
    if len(set(steps)) != len(steps):
        steps = list(range(len(entries)))
    items = zip(steps, [read for _, read in entries])
    if progress:
        from rich.progress import track

        items = track(list(items), description="importing")
    options = ReadOptions(trust_pickle, max_bytes, allow_external_data)
    with create(
        run_path,
        snapshots=None,
        snapshot_budget=None,
        overwrite=overwrite,
        resume=resume,
        meta={"framework": "checkpoints", "source": str(folder)},
    ) as run:
        for step, read in items:
            log_checkpoint(run, step, read(options))
    return open_run(run_path)
