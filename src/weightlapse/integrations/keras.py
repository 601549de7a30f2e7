"""Keras 3: `Recorder(run)`, a real `keras.callbacks.Callback`, on any backend.

No TensorFlow is imported: on the PyTorch backend the weights are torch tensors and are
summarised on their device; on TensorFlow and JAX, host weights go through NumPy and
device weights through `keras.ops`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError, warn_recording_stopped
from weightlapse.frameworks.keras import backend, describe_model, keras, no_grad, tensor_names
from weightlapse.interpret.probes import ProbeCapture
from weightlapse.record.keras_ops import KerasOps
from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.recorder import StepRecorder
from weightlapse.record.schedule import Never, PerEpoch
from weightlapse.record.stats import ArrayOps
from weightlapse.run_writer import RunWriter, create


class Recorder(keras.callbacks.Callback):
    """Records a Keras model while `fit` runs: per batch (every N) or per epoch.

    Step 0 holds the initial weights; step k the weights after k batches. With
    `gradients=True` the optimizer's `apply` is wrapped to keep the (unscaled) gradients
    it receives in variables of ours; on the JAX backend, whose train step is a pure
    function, those variables join the optimizer's state for the length of `fit`, so the
    jitted step carries them out. When `fit` ends, the trained
    model is snapshotted and the run closed; a later `fit` goes on recording into it.
    A recording problem inside `fit` warns once and stops recording, never training.
    >>> model.fit(x, y, callbacks=[weightlapse.keras.Recorder("runs/mlp", snapshots="epoch")])
    """

    def __init__(
        self,
        run: RunWriter | str | Path,
        *,
        per: str = "batch",
        device_stats: bool | None = None,
        probe_inputs: Any = None,
        activations: Sequence[str] = (),
        attributions: Sequence[str] = (),
        probe_targets: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        # The model is known once fit() starts; the options are checked now.
        self.probes = ProbeCapture(None, probe_inputs, activations, attributions, probe_targets)
        if per not in ("batch", "epoch"):
            raise WeightlapseError(f"per={per!r}: record per 'batch' or per 'epoch'.")
        if per == "epoch":
            options.setdefault("every", PerEpoch())
        if isinstance(run, RunWriter):
            if options:
                run.configure(**options)
            self.run = run
        else:
            self.run = create(run, **options)
        self.core: StepRecorder = self.run.recorder
        self.core.final_snapshot_elsewhere = True  # close() snapshots the live model
        self.device_stats = device_stats
        self.global_step = 0
        self.epoch = 0
        self._variables: dict[str, Any] = {}
        self._grad_slots: dict[str, Any] = {}
        self._optimizer: Any = None
        self._ops: ArrayOps = NumpyOps()
        self._epoch_started = 0.0
        self._started = False
        self._stopped = False

    # ---- callback hooks ---------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._started:  # a second fit() goes on recording, counting steps on
            self.run.reopen()
            self._lend_grad_slots()
            return
        self._started = True
        self.probes.model = self.model
        self._variables = tensor_names(self.model)
        self._ops = self._choose_ops()
        self._describe()
        if self.core.config.gradients:
            self._capture_gradients()
        self._record(force=True)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch
        self._epoch_started = time.perf_counter()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.core.config.updates:
            self.core.before_step(self.global_step + 1, self._weights(), self._ops)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1
        self._record(batch=batch, scalars=logs)

    def _epoch_seconds(self) -> float:
        return time.perf_counter() - self._epoch_started

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        scalars = dict(logs or {})
        scalars["epoch_seconds"] = self._epoch_seconds()
        # An epoch's end is always recorded: its validation metrics belong to this step.
        self._record(scalars=scalars, epoch_end=True, force=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()
        self._take_back_grad_slots()

    def close(self) -> None:
        """Snapshots the trained model and closes the run (done when `fit` ends)."""
        if self.run.closed:
            return
        if (
            not self._stopped
            and self._started
            and not isinstance(self.core.config.snapshots, Never)
        ):
            self._record(force=True, snapshot=True, final=True)
        self.run.close()

    # ---- how --------------------------------------------------------------------------
    def _choose_ops(self) -> ArrayOps:
        if backend() == "torch":
            from weightlapse.record.torch_ops import OPS

            return OPS
        on_device = self.device_stats
        if on_device is None:
            first = next(iter(self._variables.values()), None)
            device = str(getattr(getattr(first, "value", None), "device", "cpu")).lower()
            on_device = "gpu" in device or "cuda" in device or "tpu" in device
        return KerasOps() if on_device else NumpyOps()

    def _sync(self) -> None:
        """On JAX, fit keeps the state outside the variables between epochs (and purges
        them): bring it back before reading. Elsewhere this does nothing."""
        sync = getattr(self._model, "jax_state_sync", None)
        if sync is not None and backend() == "jax":
            sync()

    def _weights(self) -> dict[str, Any]:
        self._sync()
        if isinstance(self._ops, NumpyOps):
            return {n: v.numpy() for n, v in self._variables.items()}
        return {n: v.value for n, v in self._variables.items()}

    def _grads(self) -> dict[str, Any]:
        self._sync()
        if isinstance(self._ops, NumpyOps):
            return {n: s.numpy() for n, s in self._grad_slots.items()}
        return {n: s.value for n, s in self._grad_slots.items()}

    def _record(
        self,
        *,
        batch: int = -1,
        scalars: dict[str, Any] | None = None,
        epoch_end: bool = False,
        force: bool = False,
        snapshot: bool | None = None,
        final: bool = False,
    ) -> None:
        core = self.core
        if self._stopped:
            return
        if not (force or snapshot or core.due(self.global_step, epoch_end)):
            if scalars:
                core.add_scalars(self.global_step, scalars)
            return
        weights = self._weights()
        grads = self._grads() if self._grad_slots and self.global_step > 0 else None
        captures = None
        if self.probes.active and (
            snapshot or core.config.snapshots.due(self.global_step, epoch_end)
        ):
            captures = self.probes.capture()
        try:
            self._record_now(
                weights, grads, batch, scalars, epoch_end, force, snapshot, captures, final
            )
        except Exception as exc:  # inside fit(): warn once, stop recording, train on
            self._stopped = True
            warn_recording_stopped(self.run.path, self.global_step, exc)

    def _record_now(
        self,
        weights: dict[str, Any],
        grads: dict[str, Any] | None,
        batch: int,
        scalars: dict[str, Any] | None,
        epoch_end: bool,
        force: bool,
        snapshot: bool | None,
        captures: Any,
        final: bool,
    ) -> None:
        core = self.core
        with no_grad():
            core.record(
                self.global_step,
                weights,
                self._ops,
                grads=grads,
                epoch=self.epoch,
                batch=batch,
                scalars=scalars,
                epoch_end=epoch_end,
                force=force,
                snapshot=snapshot,
                captures=captures,
                final=final,
            )

    def _describe(self) -> None:
        infos, meta = describe_model(self.model, self._variables)
        self.core.infos.update(infos)
        self.run.set_meta(**meta)

    def _capture_gradients(self) -> None:
        optimizer = self.model.optimizer
        if optimizer is None:
            raise WeightlapseError("gradients=True needs a compiled model (model.compile(...)).")
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # past loss scaling
        if backend() == "jax" and inner is not optimizer:
            raise WeightlapseError(
                "gradients=True on the JAX backend does not reach inside a "
                f"{type(optimizer).__name__}; record without gradients, or use the "
                "TensorFlow or PyTorch backend for this model."
            )
        if not inner.built:
            inner.build(self.model.trainable_variables)
        by_path = {v.path: n for n, v in self._variables.items()}
        slots = {
            n: keras.Variable(
                np.zeros(v.shape, dtype="float32"), trainable=False, name=f"weightlapse_grad_{i}"
            )
            for i, (n, v) in enumerate(self._variables.items())
            if v.trainable
        }
        self._grad_slots = slots
        self._optimizer = inner
        original_apply = inner.apply

        def apply(grads: Any, trainable_variables: Any = None) -> Any:
            variables = trainable_variables or inner._trainable_variables
            for grad, var in zip(grads, variables):
                name = by_path.get(var.path)
                if name in slots and grad is not None:
                    slots[name].assign(keras.ops.cast(grad, "float32"))
            return original_apply(grads, trainable_variables)

        inner.apply = apply
        self._lend_grad_slots()

    def _lend_grad_slots(self) -> None:
        """JAX: the jitted step returns only the optimizer's variables; ours ride there."""
        if backend() == "jax" and self._grad_slots:
            self._optimizer._variables.extend(self._grad_slots.values())

    def _take_back_grad_slots(self) -> None:
        """...and leave when fit ends, so a saved optimizer holds only its own state."""
        if backend() == "jax" and self._grad_slots:
            ours = {id(v) for v in self._grad_slots.values()}
            kept = [v for v in self._optimizer._variables if id(v) not in ours]
            self._optimizer._variables[:] = kept


__all__ = ["KerasOps", "Recorder"]
