"""FSDP: what each rank holds of each parameter, as record/torch_shards.Shard.

FSDP2 (`fully_shard`) parameters are DTensors: a rank's part is `to_local()`, placed by
the mesh coordinate and placements (torch.chunk's split: the first ranks hold
ceil(n / ranks) rows each). FSDP1 with `use_orig_params=True` keeps each original
parameter as a flat view of the rank's slice of a FlatParameter; where that slice sits
is the handle's record of it (`_shard_param_infos`: FSDP1 is frozen, so its private
names stay). Names are the model's own (no `_fsdp_wrapped_module.`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from weightlapse.errors import WeightlapseError
from weightlapse.frameworks.torch import clean_name, torch
from weightlapse.record.torch_shards import Shard, ShardedTorchOps
from weightlapse.run_writer import RunWriter, create
from weightlapse.store.regions import FLAT_CHUNK, Region, RegionWriter, aligned_chunks


def _dtensor() -> type:
    # imported when a process group runs: it takes 0.6 s, too long for every import
    from torch.distributed.tensor import DTensor

    return DTensor


def fsdp1_modules(model: torch.nn.Module) -> list[Any]:
    if not torch.distributed.is_available():
        return []
    from torch.distributed.fsdp import FullyShardedDataParallel

    return [m for m in model.modules() if isinstance(m, FullyShardedDataParallel)]


def shard_map_of(model: torch.nn.Module) -> ShardMap | None:
    """A ShardMap when FSDP splits the model's parameters across ranks (every rank then
    records its parts), else None (one process, or DDP: rank 0 records)."""
    return ShardMap(model) if records_on_every_rank(model) else None


def records_on_every_rank(model: torch.nn.Module) -> bool:
    """Whether every rank must call watch() for this model: FSDP splits it across ranks
    (the same answer on every rank). Otherwise rank 0 alone records."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and is_sharded(model)


def is_sharded(model: torch.nn.Module) -> bool:
    """True when a parameter is split across ranks (FSDP2 or FSDP1), not replicated."""
    if fsdp1_modules(model):
        return True
    dtensor = _dtensor()
    return any(
        isinstance(p, dtensor) and any(pl.is_shard() for pl in p.placements)
        for p in model.parameters()
    )


class ShardMap:
    """Names each parameter by the model's own name and gives its (and its gradient's)
    shard on this rank."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.params: dict[str, torch.nn.Parameter] = {}
        self._places: dict[str, Callable[[torch.Tensor], Shard]] = {}
        flat = _fsdp1_places(model)
        dtensor = _dtensor()
        for raw, p in model.named_parameters():
            name = clean_name(raw)
            self.params[name] = p
            if isinstance(p, dtensor):
                self._places[name] = _dtensor_place(name, p)
            elif name in flat:
                self._places[name] = flat[name]
            else:
                self._places[name] = _whole(p, name)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: place(None).shape for n, place in self._places.items()}

    def shards(self) -> dict[str, Shard]:
        return {n: self._places[n](p) for n, p in self.params.items()}

    def grad_shards(self, names: Any = None) -> dict[str, Shard]:
        """Gradients' shards. A rank holding nothing of a parameter (FSDP1) has no .grad
        for it; it still takes part, with an empty part, when others have one."""
        out = {}
        for n in names if names is not None else self.params:
            p = self.params[n]
            grad = p.grad
            if grad is None and (p.requires_grad and p.numel() == 0):
                grad = torch.zeros(0, dtype=p.dtype, device=p.device)
            if grad is not None:
                out[n] = self._places[n](grad)
        return out


def _dtensor_place(name: str, p: Any) -> Callable[[Any], Shard]:
    shape = tuple(int(d) for d in p.shape)
    mesh_shape = tuple(int(d) for d in p.device_mesh.shape)
    coordinate = p.device_mesh.get_coordinate()
    start, size, counts = _mesh_region(name, shape, mesh_shape, coordinate, p.placements)
    _, largest, _ = _mesh_region(name, shape, mesh_shape, [0] * len(mesh_shape), p.placements)
    chunks = aligned_chunks(largest, p.element_size())
    region = Region(start, size, chunks, flat=False)
    if tuple(p.to_local().shape) != size:
        raise WeightlapseError(
            f"{name!r}: its local shard has shape {tuple(p.to_local().shape)}, but its "
            f"placements {p.placements} give {size}; weightlapse records DTensors split "
            "the way torch.chunk splits (FSDP2's default). Leave this parameter out "
            "(exclude=...) or record it unsharded."
        )

    def place(tensor: Any) -> Shard:
        local = region_local(tensor)
        return Shard(local, shape, region, counts)

    return place


def region_local(tensor: Any) -> Any:
    if tensor is None:
        return torch.zeros(0)
    return tensor.to_local() if isinstance(tensor, _dtensor()) else tensor


def _mesh_region(
    name: str, shape: tuple[int, ...], mesh_shape: tuple[int, ...], coordinate: Any, placements: Any
) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
    """(start, size) of the part at `coordinate` of the mesh, and whether it counts (the
    first replica along every replicated mesh axis does)."""
    start, size, counts = [0] * len(shape), list(shape), True
    for ranks, at, placement in zip(mesh_shape, coordinate, placements):
        if placement.is_shard():
            axis = placement.dim % max(len(shape), 1)
            n = size[axis]
            chunk = -(-n // ranks)
            first = min(at * chunk, n)
            start[axis] += first
            size[axis] = min(n, first + chunk) - first
        elif placement.is_replicate():
            counts = counts and at == 0
        else:
            raise WeightlapseError(
                f"{name!r} has placement {placement} (a reduction still pending): record "
                "after the optimizer step, when parameters are Shard or Replicate."
            )
    return tuple(start), tuple(size), counts


def _fsdp1_places(model: torch.nn.Module) -> dict[str, Callable[[Any], Shard]]:
    places: dict[str, Callable[[Any], Shard]] = {}
    prefixes = {id(m): n for n, m in model.named_modules()}
    for module in fsdp1_modules(model):
        handle = getattr(module, "_handle", None)
        if handle is None:
            continue
        flat = handle.flat_param
        if not getattr(module, "_use_orig_params", False):
            raise WeightlapseError(
                "FSDP1 without use_orig_params=True hides the parameters in flat buffers; "
                "wrap with FullyShardedDataParallel(..., use_orig_params=True), or use "
                "FSDP2 (fully_shard)."
            )
        prefix = prefixes.get(id(module), "")
        infos = flat._shard_param_infos
        for fqn, shape, info in zip(flat._fqns, flat._shapes, infos):
            name = clean_name(f"{prefix}.{fqn}" if prefix else fqn)
            places[name] = _flat_place(tuple(int(d) for d in shape), info)
    return places


def _flat_place(shape: tuple[int, ...], info: Any) -> Callable[[Any], Shard]:
    numel = 1
    for d in shape:
        numel *= d
    start = int(info.intra_param_start_idx) if info.in_shard else 0
    size = int(info.numel_in_shard) if info.in_shard else 0
    region = Region((start,), (size,), (min(FLAT_CHUNK, max(numel, 1)),), flat=True)

    def place(tensor: Any) -> Shard:
        local = tensor.reshape(-1)[:size] if tensor is not None else torch.zeros(0)
        return Shard(local, shape, region)

    return place


def _whole(p: torch.nn.Parameter, name: str) -> Callable[[Any], Shard]:
    """A parameter FSDP left whole on every rank (ignored, or outside any FSDP unit):
    rank 0 counts it."""
    shape = tuple(int(d) for d in p.shape)
    rank = torch.distributed.get_rank()
    region = Region((0,) * len(shape), shape, aligned_chunks(shape, p.element_size()), False)

    def place(tensor: Any) -> Shard:
        local = tensor if tensor is not None else torch.zeros(0)
        return Shard(local, shape, region, counts=rank == 0)

    return place


def start_sharded(run: Any, options: dict[str, Any]) -> tuple[RunWriter, ShardedTorchOps]:
    """Every rank's run and ops for a sharded model: rank 0 makes (or resumes) the run;
    the others get a peer run with the same options. Rank 0 then tells everyone whether
    it started, the step it goes on from and the snapshot rows already taken, so every
    rank decides the same steps (a rank that decided otherwise would wait forever in a
    collective)."""
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    if isinstance(run, RunWriter):
        if rank != 0:
            raise WeightlapseError(
                "Under FSDP every rank calls watch() with the run's path (rank 0 writes "
                "it; the others write their snapshot shards into it), not a RunWriter."
            )
        path = run.path
    else:
        path = run
    told: list[Any] = [None]
    if rank == 0:
        try:
            if not isinstance(run, RunWriter):
                run = create(path, **options)
            told[0] = {"error": None, **_taken(run)}
        except Exception as exc:
            told[0] = {"error": exc}
    dist.broadcast_object_list(told, src=0)
    news = told[0]
    if news["error"] is not None:
        if rank == 0:
            raise news["error"]
        raise WeightlapseError(f"rank 0 could not start the run: {news['error']}")
    if rank != 0:
        peer_options = {k: v for k, v in options.items() if k not in ("overwrite", "resume")}
        run = create(path, peer=True, **peer_options)
        run.last_step = news["last_step"]
    ops = ShardedTorchOps(RegionWriter(run.store.target, rank, world, dist.barrier))
    ops.regions.rows.update(news["rows"])
    ops.name_paths(news["paths"])
    return run, ops


def _taken(run: RunWriter) -> dict[str, Any]:
    """What a resumed run has: its last step, and its sharded snapshot arrays with the
    rows each already has (rows past the listed ones were written, never committed)."""
    attrs = run.store.attrs
    rows, paths = {}, {}
    for kind, entries in attrs.get("snapshots", {}).items():
        for name, entry in entries.items():
            arr = run.store.group[entry["array"]]
            if arr.attrs.get("sharded"):
                rows[entry["array"]] = int(arr.shape[0])
                paths[(kind, name)] = entry["array"]
    return {"last_step": run.last_step, "rows": rows, "paths": paths}
