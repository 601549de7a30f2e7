"""Hugging Face model folders: config.json beside `model.safetensors`, or shards listed by
`model.safetensors.index.json` (or `pytorch_model.bin[.index.json]`, read under the
pickle rules), read as one model. The index may only name files inside the folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.frameworks.layouts import torch_state_dict_layouts
from weightlapse.io.formats.common import Checkpoint, CheckpointError, ReadOptions, parent_layers

SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SHARD = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.(?P<ext>safetensors|bin)$")
MAX_INDEX_BYTES = 64 * 2**20


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (
        any((path / f).is_file() for f in (*SINGLE_FILES, *INDEX_FILES))
        or any(SHARD.match(p.name) for p in path.iterdir() if p.is_file())
    )


def read_hf_folder(path: Path, options: ReadOptions) -> Checkpoint:
    """Every tensor of the model in a folder (or named by its index file)."""
    folder = path.parent if path.is_file() else path
    index = (
        path
        if path.is_file()
        else next((folder / f for f in INDEX_FILES if (folder / f).is_file()), None)
    )
    if index is not None:
        files, expected = _from_index(folder, index)
    else:
        single = next((folder / f for f in SINGLE_FILES if (folder / f).is_file()), None)
        files = [single] if single else shard_files(folder)
        expected = None
    if not files:
        raise CheckpointError(
            f"{folder}: a model folder with no weights (looked for {', '.join(SINGLE_FILES)}, "
            f"{', '.join(INDEX_FILES)} and *-00001-of-0000N shards)."
        )
    checkpoint = read_shards(files, options, expected)
    config = _config(folder)
    architectures = config.get("architectures") or [""]
    checkpoint.path = folder
    checkpoint.meta.update({"class": architectures[0], "model_type": config.get("model_type", "")})
    return checkpoint


def shard_files(folder: Path) -> list[Path]:
    """The shards of one checkpoint in a folder, in order; an incomplete set is an error."""
    groups: dict[tuple[str, str, str], list[Path]] = {}
    for p in folder.iterdir():
        m = SHARD.match(p.name)
        if m and p.is_file():
            groups.setdefault((m["stem"], m["total"], m["ext"]), []).append(p)
    if len(groups) > 1:
        raise CheckpointError(
            f"{folder}: shards of {len(groups)} checkpoints "
            f"({', '.join(sorted(g[0] for g in groups))}); give one of them its own folder."
        )
    for (stem, total, ext), files in groups.items():
        check_complete(folder, stem, int(total), ext, files)
        return sorted(files)
    return []


def check_complete(folder: Path, stem: str, total: int, ext: str, files: list[Path]) -> None:
    have = {int(SHARD.match(p.name)["part"]) for p in files}
    missing = sorted(set(range(1, total + 1)) - have)
    if missing:
        raise CheckpointError(
            f"{folder}: {stem} has {total} shards but {len(missing)} are missing "
            f"(first: {stem}-{missing[0]:05d}-of-{total:05d}.{ext}); a model read without "
            "them would be missing tensors."
        )


def read_shards(
    files: list[Path], options: ReadOptions, expected: set[str] | None = None
) -> Checkpoint:
    """The shards of one checkpoint as one: every name once, all of them present."""
    from weightlapse.io.formats.pytorch import read_pytorch
    from weightlapse.io.formats.safetensors import read_safetensors

    total = sum(p.stat().st_size for p in files)
    if total > options.limit:
        raise CheckpointError(
            f"{files[0].parent}: the shards hold {total:,} bytes, over the limit of "
            f"{options.limit:,}; pass a larger max_bytes (--max-bytes) to read them."
        )
    tensors: dict[str, np.ndarray] = {}
    for file in files:
        read = read_safetensors if file.suffix == ".safetensors" else read_pytorch
        for name, array in read(file, options).tensors.items():
            if name in tensors:
                raise CheckpointError(f"{file}: {name!r} is also in an earlier shard.")
            tensors[name] = array
    if expected is not None and set(tensors) != expected:
        lost = sorted(expected - set(tensors))
        extra = sorted(set(tensors) - expected)
        raise CheckpointError(
            f"{files[0].parent}: the shards do not hold what the index lists "
            f"(missing {lost[:3]}, not listed {extra[:3]})."
        )
    fmt = "safetensors" if files[0].suffix == ".safetensors" else "pytorch"
    layouts = torch_state_dict_layouts({n: a.shape for n, a in tensors.items()})
    meta: dict[str, Any] = {"shards": len(files)}
    return Checkpoint(files[0], f"hf-{fmt}", tensors, layouts, parent_layers(tensors), meta)


def _from_index(folder: Path, index: Path) -> tuple[list[Path], set[str]]:
    if index.stat().st_size > MAX_INDEX_BYTES:
        raise CheckpointError(f"{index}: an index of {index.stat().st_size:,} bytes; refused.")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = {str(k): str(v) for k, v in weight_map.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{index}: not a shard index ({type(exc).__name__}).") from None
    files = []
    for shard in dict.fromkeys(names.values()):
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(
                f"{index}: refused, it names {shard!r}, a file outside the model's folder."
            )
        if not (folder / shard).is_file():
            raise CheckpointError(f"{index}: lists {shard}, which is not in {folder}.")
        files.append(folder / shard)
    return files, set(names)


def _config(folder: Path) -> dict[str, Any]:
    config = folder / "config.json"
    try:
        if config.is_file() and config.stat().st_size < MAX_INDEX_BYTES:
            loaded = json.loads(config.read_text())
            return loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    return {}
