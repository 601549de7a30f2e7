"""PyTorch: `watch(model, run, optimizer=opt)` hooks the optimizer's step, so the training
loop needs no other change. Statistics are computed on the parameters' device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, UnknownNameError, WeightlapseError
from weightlapse.interpret.probes import ProbeCapture
from weightlapse.record.recorder import Recorder
from weightlapse.run import Run, create
from weightlapse.store.writer import TensorInfo

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised without torch installed
    raise MissingDependencyError("torch", "torch") from exc


class TorchOps:
    """`ArrayOps` over torch tensors, on whatever device they live."""

    def flatten_concat(self, arrays: Sequence[torch.Tensor]) -> torch.Tensor:
        flat = [a.detach().reshape(-1) for a in arrays]
        return torch.cat([f if f.dtype == torch.float32 else f.float() for f in flat])

    def constant(self, values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(values, device=like.device)

    def segment_sum(self, values: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
        out = torch.zeros(n, dtype=values.dtype, device=values.device)
        return out.index_add_(0, segments, values)

    def segment_count(self, mask: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
        out = torch.zeros(n, dtype=torch.int64, device=mask.device)
        return out.index_add_(0, segments, mask.to(torch.int64))

    def segment_min(self, values: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
        out = torch.full((n,), float("inf"), dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, segments, values, "amin")

    def segment_max(self, values: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
        out = torch.full((n,), float("-inf"), dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, segments, values, "amax")

    def where(self, cond: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        return torch.where(cond, a, b)

    def isfinite(self, x: torch.Tensor) -> torch.Tensor:
        return torch.isfinite(x)

    def isnan(self, x: torch.Tensor) -> torch.Tensor:
        return torch.isnan(x)

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32)

    def bin_index(self, x: torch.Tensor, n_bins: int) -> torch.Tensor:
        return x.floor().clamp_(0, n_bins - 1).to(torch.int64)

    def take(self, values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return values.index_select(0, index)

    def pack_to_host(self, parts: Sequence[torch.Tensor]) -> np.ndarray:
        packed = torch.cat([p.reshape(-1).to(torch.float64) for p in parts])
        return packed.cpu().numpy()  # the one device-to-host copy of a step

    def host_copy(self, arrays: Sequence[torch.Tensor]) -> np.ndarray | None:
        if any(a.device.type != "cpu" for a in arrays):
            return None
        return self.flatten_concat(arrays).numpy()  # cat copies: the step may go on

    def to_host(self, x: torch.Tensor) -> np.ndarray:
        x = x.detach()
        if x.dtype in (torch.bfloat16,) or not x.dtype.is_floating_point:
            x = x.float()
        return x.cpu().numpy().copy()

    def copy(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach().clone()

    def device_of(self, x: torch.Tensor) -> str:
        return str(x.device)


OPS = TorchOps()

_LAYOUTS = {
    "Linear": "out,in",
    "Bilinear": "out,in1,in2",
    "Conv1d": "out,in,w",
    "Conv2d": "out,in,h,w",
    "Conv3d": "out,in,d,h,w",
    "ConvTranspose1d": "in,out,w",
    "ConvTranspose2d": "in,out,h,w",
    "ConvTranspose3d": "in,out,d,h,w",
    "Embedding": "index,dim",
}


def clean_name(name: str) -> str:
    """Drops the wrappers torch.compile and DataParallel put in parameter names."""
    parts = [p for p in name.split(".") if p not in ("_orig_mod", "module")]
    return ".".join(parts)


def describe_model(model: torch.nn.Module) -> tuple[dict[str, TensorInfo], list[dict[str, Any]]]:
    """Tensor infos (with each weight's axis layout) and a layer summary."""
    infos: dict[str, TensorInfo] = {}
    layers: list[dict[str, Any]] = []
    for module_name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        layer = clean_name(module_name)
        kind = type(module).__name__
        layers.append({"name": layer, "type": kind, "tensors": []})
        for pname, p in own:
            full = f"{layer}.{pname}" if layer else pname
            tensor_layout = (
                _LAYOUTS.get(kind, "")
                if pname == "weight"
                else ("out" if pname == "bias" and p.ndim == 1 else "")
            )
            infos[full] = TensorInfo(
                full,
                tuple(p.shape),
                str(p.dtype).replace("torch.", ""),
                layer=layer,
                layout=tensor_layout,
            )
            layers[-1]["tensors"].append(full)
    return infos, layers


def layer_outputs(
    model: torch.nn.Module, inputs: Any, layers: Sequence[str]
) -> dict[str, np.ndarray]:
    """The outputs of named layers for `inputs`, by forward hooks, in eval mode and
    without gradients (BatchNorm statistics and dropout are left as they were).

    >>> layer_outputs(model, x[:4], ["conv1", "fc1"])["conv1"].shape  # (4, C, H, W)
    """
    modules = {clean_name(n): m for n, m in model.named_modules() if n}
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise UnknownNameError(unknown[0], list(modules), what="layer")
    captured: dict[str, np.ndarray] = {}

    def keep(name: str) -> Any:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            captured[name] = out.detach().float().cpu().numpy()

        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters(), torch.zeros(0)).device
            model(torch.as_tensor(inputs).to(device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layers}


class TorchWatcher:
    """Records a torch model: at every optimizer step (hooked) or at each `step()` call.

    Step 0 holds the initial weights; step k the weights after the k-th update, the
    gradients that update used (unscaled when a GradScaler is in use) and the update.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        run: Run,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        probe_inputs: Any = None,
        activations: Sequence[str] = (),
        attributions: Sequence[str] = (),
        probe_targets: Any = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise WeightlapseError(
                f"watch() needs a torch.nn.Module, got {type(model).__name__}. For other "
                "frameworks use weightlapse.create(path).log(step, arrays)."
            )
        self.model = model
        self.run = run
        self.recorder: Recorder = run._require_writer()[1]
        self.global_step = 0
        self.epoch = 0
        self._grads: Any = None
        self.probes = ProbeCapture(model, probe_inputs, activations, attributions, probe_targets)
        self._handles: list[Any] = []
        infos, layers = describe_model(model)
        self.recorder.infos.update(infos)
        self._params = {clean_name(n): p for n, p in model.named_parameters()}
        run.set_meta(
            framework="torch",
            torch_version=torch.__version__,
            model={"class": type(_unwrap(model)).__name__, "layers": layers},
        )
        self._input_hook: Any = model.register_forward_pre_hook(self._capture_input_shape)
        if optimizer is not None:
            self._handles.append(optimizer.register_step_pre_hook(self._before_optimizer_step))
            self._handles.append(optimizer.register_step_post_hook(self._after_optimizer_step))
        self._record(force=True)

    # ---- hooks ------------------------------------------------------------------------
    def _capture_input_shape(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].ndim >= 2:
            self.run.set_meta(input_shape=list(args[0].shape[1:]))
            self._input_hook.remove()

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        step = self.global_step + 1
        if not self.recorder.due(step):
            return
        with torch.no_grad():
            self.recorder.before_step(step, self._params, OPS)
            if self.recorder.config.gradients:
                # Read now: some optimizers (maximize, weight decay) change .grad in place.
                grads = {n: p.grad for n, p in self._params.items() if p.grad is not None}
                if grads:
                    self._grads = self.recorder.prepare_gradients(grads, OPS)

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.global_step += 1
        self._record(grads=self._grads)
        self._grads = None

    # ---- the public face --------------------------------------------------------------
    def step(self, **scalars: Any) -> None:
        """For loops without a hooked optimizer: records the weights and current .grad now."""
        self.global_step += 1
        grads = {n: p.grad for n, p in self._params.items() if p.grad is not None}
        self._record(grads=grads, scalars=scalars)

    def log_scalars(self, **scalars: Any) -> None:
        """Loss, accuracy...: joins the step just recorded (call it after optimizer.step())."""
        self.recorder.add_scalars(scalars)

    def epoch_end(self, **scalars: Any) -> None:
        """Marks an epoch's end (per-epoch schedules record here); scalars join that step."""
        self._record(scalars=scalars, epoch_end=True)
        self.epoch += 1

    def close(self) -> None:
        for handle in [*self._handles, self._input_hook]:
            handle.remove()
        self._handles.clear()
        self.run.close()

    def __enter__(self) -> TorchWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(
        self,
        grads: Any = None,
        scalars: dict[str, Any] | None = None,
        epoch_end: bool = False,
        force: bool = False,
    ) -> None:
        captures = None
        if self.probes.active and self.recorder.config.snapshots.due(self.global_step, epoch_end):
            captures = self.probes.capture()
        with torch.no_grad():
            self.recorder.record(
                self.global_step,
                self._params,
                OPS,
                grads=grads,
                epoch=self.epoch,
                scalars=scalars,
                epoch_end=epoch_end,
                force=force,
                captures=captures,
            )


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "_orig_mod", model)


def watch(
    model: torch.nn.Module,
    run: Run | str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    probe_inputs: Any = None,
    activations: Sequence[str] = (),
    attributions: Sequence[str] = (),
    probe_targets: Any = None,
    **options: Any,
) -> TorchWatcher:
    """Records `model` into `run` (a Run, or a path for a new one) at every optimizer step.

    `options` are those of `weightlapse.create` (every=, snapshots=, gradients=, ...).
    `activations` names layers whose outputs for `probe_inputs` are kept at every
    snapshot step; `attributions` names maps to keep the same way ("saliency",
    "gradcam:conv2"), for `probe_targets` (default: each probe's top class).
    >>> rec = weightlapse.torch.watch(model, "runs/mlp", optimizer=opt, gradients=True)
    >>> ...train as usual...; rec.close()
    """
    if not isinstance(run, Run):
        run = create(run, **options)
    elif options:
        run._configure(**options)
    return TorchWatcher(
        model,
        run,
        optimizer,
        probe_inputs=probe_inputs,
        activations=activations,
        attributions=attributions,
        probe_targets=probe_targets,
    )
