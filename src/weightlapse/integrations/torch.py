"""PyTorch: `watch(model, run, optimizer=opt)` hooks the optimizer's step, so the training
loop needs no other change. Statistics are computed on the parameters' device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from weightlapse.errors import WeightlapseError
from weightlapse.frameworks.torch import describe_model, named_parameters, torch, unwrap
from weightlapse.interpret.probes import ProbeCapture
from weightlapse.record.recorder import StepRecorder
from weightlapse.record.torch_ops import OPS
from weightlapse.run_writer import RunWriter, create


class TorchWatcher:
    """Records a torch model: at every optimizer step (hooked) or at each `step()` call.

    Step 0 holds the initial weights; step k the weights after the k-th update, the
    gradients that update used (unscaled when a GradScaler is in use) and the update.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        run: RunWriter,
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
        self.recorder: StepRecorder = run.recorder
        self.global_step = 0
        self.epoch = 0
        self._grads: Any = None
        self.probes = ProbeCapture(model, probe_inputs, activations, attributions, probe_targets)
        self._handles: list[Any] = []
        infos, layers = describe_model(model)
        self.recorder.infos.update(infos)
        self._params = named_parameters(model)
        run.set_meta(
            framework="torch",
            torch_version=torch.__version__,
            model={"class": type(unwrap(model)).__name__, "layers": layers},
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


def watch(
    model: torch.nn.Module,
    run: RunWriter | str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    probe_inputs: Any = None,
    activations: Sequence[str] = (),
    attributions: Sequence[str] = (),
    probe_targets: Any = None,
    **options: Any,
) -> TorchWatcher:
    """Records `model` into `run` (a RunWriter, or a path for a new one) at every optimizer step.

    `options` are those of `weightlapse.create` (every=, snapshots=, gradients=, ...).
    `activations` names layers whose outputs for `probe_inputs` are kept at every
    snapshot step; `attributions` names maps to keep the same way ("saliency",
    "gradcam:conv2"), for `probe_targets` (default: each probe's top class).
    >>> rec = weightlapse.torch.watch(model, "runs/mlp", optimizer=opt, gradients=True)
    >>> ...train as usual...; rec.close()
    """
    if not isinstance(run, RunWriter):
        run = create(run, **options)
    elif options:
        run.configure(**options)
    return TorchWatcher(
        model,
        run,
        optimizer,
        probe_inputs=probe_inputs,
        activations=activations,
        attributions=attributions,
        probe_targets=probe_targets,
    )
