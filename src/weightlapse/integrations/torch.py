"""PyTorch: `watch(model, run, optimizer=opt)` hooks the optimizer's step, so the training
loop needs no other change. Statistics are computed on the parameters' device."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weightlapse.errors import WeightlapseError, warn_recording_stopped
from weightlapse.frameworks.torch import (
    LayerInputShapes,
    describe_model,
    named_parameters,
    torch,
    unwrap,
)
from weightlapse.integrations.fsdp import shard_map_of, start_sharded
from weightlapse.interpret.probes import ProbeCapture
from weightlapse.record.recorder import StepRecorder
from weightlapse.record.schedule import Never
from weightlapse.record.torch_ops import OPS
from weightlapse.run_writer import RunWriter, create


class TorchWatcher:
    """Records a torch model: at every optimizer step (hooked) or at each `step()` call.

    Step 0 holds the initial weights; step k the weights after the k-th update and the
    gradients that update used: read after backward, clipping and unscaling; under
    `optimizer.step(closure)` read when the closure returns (its first call, for
    optimizers like LBFGS that call it again at trial points). At close (or when the
    script exits) the trained model is snapshotted. A recording problem inside training
    warns once and stops recording; it never stops training.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        run: RunWriter,
        optimizer: Any = None,
        *,
        probe_inputs: Any = None,
        activations: Sequence[str] = (),
        attributions: Sequence[str] = (),
        probe_targets: Any = None,
        sharded: tuple[Any, Any] | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise WeightlapseError(
                f"watch() needs a torch.nn.Module, got {type(model).__name__}. For other "
                "frameworks use weightlapse.create(path).log(step, arrays)."
            )
        self.model = model
        self.run = run
        self.recorder: StepRecorder = run.recorder
        resumed = run.last_step is not None
        self.global_step = run.last_step or 0
        self.epoch = 0
        self._grads: Any = None
        self._stopped = False
        self._starting = False
        self.probes = ProbeCapture(model, probe_inputs, activations, attributions, probe_targets)
        self._handles: list[Any] = []
        infos, layers = describe_model(model)
        self._params = named_parameters(model)
        # Sharded (FSDP): every rank records its parts, with collective ops.
        self._shards, self.ops = sharded or (None, OPS)
        if self._shards is not None:
            for name, shape in self._shards.shapes.items():
                infos[name].shape = shape  # the whole tensor's, not this rank's part
        self.recorder.infos.update(infos)
        run.set_meta(
            framework="torch",
            torch_version=torch.__version__,
            model={"class": type(unwrap(model)).__name__, "layers": layers},
        )
        self._input_hook: Any = model.register_forward_pre_hook(self._capture_input_shape)
        # channels first: torch's (C, H, W)
        self._layer_inputs = LayerInputShapes(
            model, lambda shapes: run.set_meta(layer_inputs=shapes, channels="first")
        )
        optimizers = as_optimizers(optimizer)
        # With several optimizers (a GAN), a step's gradients are those of the parameters
        # the stepping optimizer updates; the others' .grad may be stale.
        by_id = {id(p): n for n, p in self._params.items()}
        self._updated_by = {
            id(opt): [by_id[id(p)] for g in opt.param_groups for p in g["params"] if id(p) in by_id]
            for opt in optimizers
        }
        try:
            for opt in optimizers:
                self._handles.append(opt.register_step_pre_hook(self._before_optimizer_step))
                self._handles.append(opt.register_step_post_hook(self._after_optimizer_step))
            if not resumed:
                self._starting = True  # a problem now is the caller's error, not a warning
                self._record(force=True)
                self._starting = False
        except BaseException:
            self._remove_hooks()  # nothing of ours stays on the model or the optimizer
            raise
        run.before_close(self._snapshot_final_state)
        self.recorder.final_snapshot_elsewhere = True  # taken from the live model

    # ---- hooks ------------------------------------------------------------------------
    def _capture_input_shape(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].ndim >= 2:
            self.run.set_meta(input_shape=list(args[0].shape[1:]))
            self._input_hook.remove()

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> Any:
        config = self.recorder.config
        if not (config.updates or config.gradients):
            return None  # nothing to read before the step (the defaults)
        step = self.global_step + 1
        if self._stopped or not self.recorder.due(step):
            return None
        with self._guard(), torch.no_grad():
            self.recorder.before_step(step, self._tensors(), self.ops)
        if not self.recorder.config.gradients:
            return None
        # args[0] is the optimizer itself; a closure comes next, or by keyword
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:  # backward, clipping and unscaling are done: read them now
            self._read_gradients(optimizer)
            return None
        return self._with_recording_closure(optimizer, closure, args, kwargs)

    def _with_recording_closure(self, optimizer: Any, closure: Any, args: Any, kwargs: Any) -> Any:
        """The closure runs backward inside step(): read the gradients when it returns."""
        first = True

        def recording_closure() -> Any:
            nonlocal first
            loss = closure()
            if first:  # later calls (LBFGS line search) evaluate trial points
                first = False
                self._read_gradients(optimizer)
            return loss

        if "closure" in kwargs:
            return args, {**kwargs, "closure": recording_closure}
        return (args[0], recording_closure, *args[2:]), kwargs

    def _read_gradients(self, optimizer: Any) -> None:
        # Summarised now: some optimizers (maximize, weight decay) change .grad in place.
        names = self._updated_by.get(id(optimizer), self._params)
        with self._guard(), torch.no_grad():
            grads = self._gradients(names)
            if grads:
                step = self.global_step + 1
                self._grads = self.recorder.prepare_gradients(grads, self.ops, step=step)

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.global_step += 1
        self._record(grads=self._grads)
        self._grads = None

    # ---- the public face --------------------------------------------------------------
    def step(self, **scalars: Any) -> None:
        """For loops without a hooked optimizer: records the weights and current .grad now."""
        self.global_step += 1
        self._record(grads=self._gradients(self._params), scalars=scalars)

    def log_scalars(self, **scalars: Any) -> None:
        """Loss, accuracy...: join the step just taken (call it after optimizer.step()),
        if that step is recorded."""
        self.recorder.add_scalars(self.global_step, scalars)

    def epoch_end(self, **scalars: Any) -> None:
        """Marks an epoch's end (per-epoch schedules record here); scalars join that step,
        which is recorded when there are any."""
        self._record(scalars=scalars, epoch_end=True, force=bool(scalars))
        self.epoch += 1

    def close(self) -> None:
        """Snapshots the trained model, removes the hooks and closes the run."""
        self._remove_hooks()
        self.run.close()

    def __enter__(self) -> TorchWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- how --------------------------------------------------------------------------
    def _tensors(self) -> dict[str, Any]:
        """The parameters: whole, or (sharded) this rank's parts of them."""
        return self._params if self._shards is None else self._shards.shards()

    def _gradients(self, names: Any) -> dict[str, Any]:
        if self._shards is not None:
            return self._shards.grad_shards(names)
        params = self._params
        return {n: params[n].grad for n in names if params[n].grad is not None}

    def _remove_hooks(self) -> None:
        for handle in [*self._handles, self._input_hook]:
            handle.remove()
        self._handles.clear()
        self._layer_inputs.remove()

    def _snapshot_final_state(self) -> None:
        if not isinstance(self.recorder.config.snapshots, Never):
            self._record(force=True, snapshot=True, final=True)

    def _record(
        self,
        grads: Any = None,
        scalars: dict[str, Any] | None = None,
        epoch_end: bool = False,
        force: bool = False,
        snapshot: bool | None = None,
        final: bool = False,
    ) -> None:
        if self._stopped:
            return
        with self._guard():
            captures = None
            wants_snapshot = self.recorder.config.snapshots.due(self.global_step, epoch_end)
            if self.probes.active and (wants_snapshot or snapshot):
                captures = self.probes.capture()
            with torch.no_grad():
                self.recorder.record(
                    self.global_step,
                    self._tensors(),
                    self.ops,
                    grads=grads,
                    epoch=self.epoch,
                    scalars=scalars,
                    epoch_end=epoch_end,
                    force=force,
                    snapshot=snapshot,
                    captures=captures,
                    final=final,
                )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Inside training, a recording problem warns once and stops recording."""
        try:
            yield
        except Exception as exc:
            if self._starting:
                raise
            self._stopped = True
            warn_recording_stopped(self.run.path, self.global_step, exc)


def watch(
    model: torch.nn.Module,
    run: RunWriter | str | Path,
    optimizer: Any = None,
    *,
    probe_inputs: Any = None,
    activations: Sequence[str] = (),
    attributions: Sequence[str] = (),
    probe_targets: Any = None,
    rank_zero_only: bool = True,
    **options: Any,
) -> TorchWatcher | IdleWatcher:
    """Records `model` into `run` (a RunWriter, or a path for a new one) at every optimizer step.

    `optimizer`: a torch optimizer, a wrapper of one (accelerate, Lightning, DeepSpeed), or
    a list of them. `options` are those of `weightlapse.create` (every=, snapshots=,
    gradients=, ...). `activations` names layers whose outputs for `probe_inputs` are kept
    at every snapshot step; `attributions` names maps to keep the same way ("saliency",
    "gradcam:conv2"), for `probe_targets` (default: each probe's top class).
    Under torch.distributed only rank 0 records (DDP's replicas are equal; the others get
    an idle watcher), unless `rank_zero_only=False` (then give each rank its own path).
    >>> rec = weightlapse.torch.watch(model, "runs/mlp", optimizer=opt, gradients=True)
    >>> ...train as usual...; rec.close()
    """
    if not isinstance(model, torch.nn.Module):
        raise WeightlapseError(
            f"watch() needs a torch.nn.Module, got {type(model).__name__}. For other "
            "frameworks use weightlapse.create(path).log(step, arrays)."
        )
    optimizers = as_optimizers(optimizer)
    rank = distributed_rank()
    sharded = shard_map_of(model)
    if rank_zero_only and rank != 0 and sharded is None:
        return IdleWatcher(rank)
    made_here = not isinstance(run, RunWriter)
    if sharded is not None:
        run, ops = start_sharded(run, options)
        sharded = (sharded, ops)
    elif made_here:
        run = create(run, **options)
    elif options:
        run.configure(**options)
    try:
        return TorchWatcher(
            model,
            run,
            optimizers,
            probe_inputs=probe_inputs,
            activations=activations,
            attributions=attributions,
            probe_targets=probe_targets,
            sharded=sharded,
        )
    except BaseException:
        if made_here:  # no half-made run behind: a retry must not find it "exists"
            run.discard()
        raise


class IdleWatcher:
    """What `watch` returns on a rank that does not record: the same calls, doing nothing."""

    run = None

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def step(self, **scalars: Any) -> None:
        pass

    def log_scalars(self, **scalars: Any) -> None:
        pass

    def epoch_end(self, **scalars: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> IdleWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def distributed_rank() -> int:
    """This process's rank under torch.distributed (0 when it is not initialised)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return 0


def as_optimizers(optimizer: Any) -> list[torch.optim.Optimizer]:
    """None, one optimizer or a list of them (wrapped or not) as torch optimizers."""
    if optimizer is None:
        return []
    if isinstance(optimizer, (list, tuple)):
        return [unwrap_optimizer(o) for o in optimizer]
    return [unwrap_optimizer(optimizer)]


@dataclass(frozen=True)
class Probes:
    """watch()'s probe arguments, as the training-framework callbacks carry them."""

    inputs: Any = None
    activations: Sequence[str] = ()
    attributions: Sequence[str] = ()
    targets: Any = None

    def watch_options(self) -> dict[str, Any]:
        return {
            "probe_inputs": self.inputs,
            "activations": self.activations,
            "attributions": self.attributions,
            "probe_targets": self.targets,
        }


# Where wrappers keep the optimizer they wrap: accelerate's AcceleratedOptimizer and
# DeepSpeed-style wrappers (.optimizer), Lightning's LightningOptimizer (._optimizer).
WRAPPED = ("optimizer", "_optimizer")


def unwrap_optimizer(optimizer: Any) -> Any:
    """The torch optimizer inside wrappers (whose step hooks are the real ones). A wrapper
    may subclass torch's Optimizer without being one (accelerate's never runs its
    __init__, so it has no hooks): what counts is having step hooks of its own."""
    seen = 0
    while optimizer is not None and not _has_step_hooks(optimizer):
        inner = next((getattr(optimizer, a) for a in WRAPPED if hasattr(optimizer, a)), None)
        if inner is None or seen > 8:
            raise WeightlapseError(
                f"optimizer={type(optimizer).__name__} is not a torch.optim.Optimizer and "
                "wraps none (looked for .optimizer and ._optimizer). Pass the torch optimizer."
            )
        optimizer, seen = inner, seen + 1
    return optimizer


def _has_step_hooks(optimizer: Any) -> bool:
    return isinstance(optimizer, torch.optim.Optimizer) and hasattr(
        optimizer, "_optimizer_step_pre_hooks"
    )
