"""Keras 3: `Recorder(run)`, a real `keras.callbacks.Callback`, on any backend.

No TensorFlow is imported: on the PyTorch backend the weights are torch tensors and are
summarised on their device; on TensorFlow and JAX, host weights go through NumPy and
device weights through `keras.ops`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, UnknownNameError, WeightlapseError
from weightlapse.interpret.probes import ProbeCapture
from weightlapse.record.recorder import Recorder as RecorderCore
from weightlapse.record.schedule import PerEpoch
from weightlapse.record.stats import ArrayOps, NumpyOps
from weightlapse.run import Run, create
from weightlapse.store.writer import TensorInfo

try:
    import keras
except ImportError as exc:  # pragma: no cover - exercised without keras installed
    raise MissingDependencyError("keras", "keras") from exc

_LAYOUTS = {
    "Dense": "in,out",
    "EinsumDense": "",
    "Conv1D": "w,in,out",
    "Conv2D": "h,w,in,out",
    "Conv3D": "d,h,w,in,out",
    "Conv1DTranspose": "w,out,in",
    "Conv2DTranspose": "h,w,out,in",
    "Conv3DTranspose": "d,h,w,out,in",
    "DepthwiseConv2D": "h,w,in,multiplier",
    "Embedding": "index,dim",
}


class KerasOps:
    """`ArrayOps` over `keras.ops`: statistics stay on the backend's device."""

    def __init__(self) -> None:
        self.k = keras.ops

    def flatten_concat(self, arrays: Sequence[Any]) -> Any:
        k = self.k
        return k.concatenate([k.reshape(k.cast(a, "float32"), (-1,)) for a in arrays])

    def constant(self, values: np.ndarray, like: Any) -> Any:
        return self.k.convert_to_tensor(values.astype(np.int32))

    def segment_sum(self, values: Any, segments: Any, n: int) -> Any:
        return self.k.segment_sum(values, segments, num_segments=n, sorted=False)

    def segment_count(self, mask: Any, segments: Any, n: int) -> Any:
        return self.segment_sum(self.k.cast(mask, "int32"), segments, n)

    def segment_min(self, values: Any, segments: Any, n: int) -> Any:
        return -self.k.segment_max(-values, segments, num_segments=n, sorted=False)

    def segment_max(self, values: Any, segments: Any, n: int) -> Any:
        return self.k.segment_max(values, segments, num_segments=n, sorted=False)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self.k.where(cond, a, b)

    def isfinite(self, x: Any) -> Any:
        return self.k.isfinite(x)

    def isnan(self, x: Any) -> Any:
        return self.k.isnan(x)

    def to_float(self, x: Any) -> Any:
        return self.k.cast(x, "float32")

    def bin_index(self, x: Any, n_bins: int) -> Any:
        return self.k.cast(self.k.clip(self.k.floor(x), 0, n_bins - 1), "int32")

    def take(self, values: Any, index: Any) -> Any:
        return self.k.take(values, index, axis=0)

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        # Two copies, floats and counts: float64 is not on every backend (JAX without
        # x64), and float32 would round counts past 2**24.
        k = self.k
        is_int = ["int" in str(p.dtype) for p in parts]
        groups = {}
        for want_int in (False, True):
            chosen = [k.reshape(p, (-1,)) for p, i in zip(parts, is_int) if i == want_int]
            if chosen:
                groups[want_int] = iter(
                    np.split(
                        k.convert_to_numpy(k.concatenate(chosen)).astype(np.float64),
                        np.cumsum([int(np.prod(c.shape)) for c in chosen])[:-1],
                    )
                )
        return np.concatenate([next(groups[i]) for i in is_int])

    def host_copy(self, arrays: Sequence[Any]) -> None:
        return None  # chosen for device tensors: reduce them where they are

    def to_host(self, x: Any) -> np.ndarray:
        return np.array(self.k.convert_to_numpy(x), copy=True)

    def copy(self, x: Any) -> Any:
        return self.k.copy(x)

    def device_of(self, x: Any) -> str:
        return str(getattr(x, "device", "keras"))


def _tensor_names(model: keras.Model) -> dict[str, Any]:
    """Variable paths less the model's name: 'dense/kernel', not 'sequential/dense/kernel'."""
    variables = list(model.weights)
    prefix = f"{model.name}/"
    names = [v.path[len(prefix) :] if v.path.startswith(prefix) else v.path for v in variables]
    if len(set(names)) != len(names):
        names = [v.path for v in variables]
    return dict(zip(names, variables))


def layer_outputs(model: keras.Model, inputs: Any, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """The outputs of named layers for `inputs` (inference mode), on any backend.

    >>> layer_outputs(model, x[:4], ["conv2d"])["conv2d"].shape  # (4, H, W, C)
    """
    names = [layer.name for layer in model.layers]
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise UnknownNameError(unknown[0], names, what="layer")
    probe = probe_model(model, layers)
    outputs = probe(keras.ops.convert_to_tensor(np.asarray(inputs)), training=False)
    return {n: np.asarray(keras.ops.convert_to_numpy(o)) for n, o in zip(layers, outputs)}


def probe_model(model: keras.Model, layers: Sequence[str]) -> keras.Model:
    """A model from the same inputs to [each named layer's output..., the final output].

    A Sequential model is traced anew: one that was loaded from a file keeps its layers'
    first outputs in a graph its inputs no longer lead to.
    """
    try:
        if isinstance(model, keras.Sequential):
            inputs = keras.Input(
                shape=tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype
            )
            x, kept = inputs, {}
            for layer in model.layers:
                x = layer(x)
                kept[layer.name] = x
            return keras.Model(inputs, [kept[n] for n in layers] + [x])
        return keras.Model(
            model.inputs, [model.get_layer(n).output for n in layers] + [model.outputs[0]]
        )
    except (AttributeError, ValueError) as exc:
        raise WeightlapseError(
            f"Cannot read the layers of this {type(model).__name__} ({exc}). Build the model "
            "on a keras.Input (Sequential([keras.Input(shape), ...]) or the functional API)."
        ) from None


def _no_grad(ops: ArrayOps) -> contextlib.AbstractContextManager:
    """torch.no_grad() on the torch backend, nothing elsewhere."""
    if "torch" in type(ops).__module__:
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


class Recorder(keras.callbacks.Callback):
    """Records a Keras model while `fit` runs: per batch (every N) or per epoch.

    Step 0 holds the initial weights; step k the weights after k batches. With
    `gradients=True` the optimizer's `apply` is wrapped to keep the (unscaled) gradients
    it receives, on the TensorFlow and PyTorch backends.
    >>> model.fit(x, y, callbacks=[weightlapse.keras.Recorder("runs/mlp", snapshots="epoch")])
    """

    def __init__(
        self,
        run: Run | str | Path,
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
        if isinstance(run, Run):
            if options:
                run._configure(**options)
            self.run = run
        else:
            self.run = create(run, **options)
        self.core: RecorderCore = self.run._require_writer()[1]
        self.device_stats = device_stats
        self.global_step = 0
        self.epoch = 0
        self._variables: dict[str, Any] = {}
        self._grad_slots: dict[str, Any] = {}
        self._ops: ArrayOps = NumpyOps()
        self._epoch_started = 0.0
        self._started = False

    # ---- callback hooks ---------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._started:  # a second fit() goes on counting steps
            return
        self._started = True
        self.probes.model = self.model
        self._variables = _tensor_names(self.model)
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
        self._record(scalars=scalars, epoch_end=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.run.flush()

    def close(self) -> None:
        """Ends the run (the callback flushes after each fit; close when done with it)."""
        self.run.close()

    # ---- how --------------------------------------------------------------------------
    def _choose_ops(self) -> ArrayOps:
        backend = keras.backend.backend()
        if backend == "torch":
            from weightlapse.integrations.torch import OPS

            return OPS
        on_device = self.device_stats
        if on_device is None:
            first = next(iter(self._variables.values()), None)
            device = str(getattr(getattr(first, "value", None), "device", "cpu")).lower()
            on_device = "gpu" in device or "cuda" in device or "tpu" in device
        return KerasOps() if on_device else NumpyOps()

    def _weights(self) -> dict[str, Any]:
        if isinstance(self._ops, NumpyOps):
            return {n: v.numpy() for n, v in self._variables.items()}
        return {n: v.value for n, v in self._variables.items()}

    def _grads(self) -> dict[str, Any]:
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
    ) -> None:
        core = self.core
        if not (force or core.due(self.global_step, epoch_end)):
            if scalars:
                core.add_scalars(scalars)
            return
        weights = self._weights()
        grads = self._grads() if self._grad_slots and self.global_step > 0 else None
        captures = None
        if self.probes.active and core.config.snapshots.due(self.global_step, epoch_end):
            captures = self.probes.capture()
        with _no_grad(self._ops):
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
                captures=captures,
            )

    def _describe(self) -> None:
        layers = []
        path_to_name = {v.path: n for n, v in self._variables.items()}
        for layer in self.model.layers:
            own = [path_to_name[v.path] for v in layer.weights if v.path in path_to_name]
            layers.append({"name": layer.name, "type": type(layer).__name__, "tensors": own})
            for name in own:
                var = self._variables[name]
                short = name.rsplit("/", 1)[-1]
                tensor_layout = (
                    _LAYOUTS.get(type(layer).__name__, "")
                    if short == "kernel"
                    else ("out" if short == "bias" else "")
                )
                self.core.infos[name] = TensorInfo(
                    name,
                    tuple(int(d) for d in var.shape),
                    str(var.dtype),
                    layer=layer.name,
                    layout=tensor_layout,
                )
        meta: dict[str, Any] = {
            "framework": "keras",
            "keras_backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "model": {
                "class": type(self.model).__name__,
                "name": self.model.name,
                "layers": layers,
            },
        }
        try:
            shape = self.model.input_shape
            if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape[1:]):
                meta["input_shape"] = list(shape[1:])
        except (AttributeError, ValueError):
            pass
        self.run.set_meta(**meta)

    def _capture_gradients(self) -> None:
        if keras.backend.backend() == "jax":
            raise WeightlapseError(
                "gradients=True is not available on the JAX backend (its train step is a "
                "pure function with no place to keep them). Use the TensorFlow or PyTorch "
                "backend, or log JAX gradients with run.log(step, params, grads=...)."
            )
        optimizer = self.model.optimizer
        if optimizer is None:
            raise WeightlapseError("gradients=True needs a compiled model (model.compile(...)).")
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # past loss scaling
        by_path = {v.path: n for n, v in self._variables.items()}
        slots = {
            n: keras.Variable(
                np.zeros(v.shape, dtype="float32"), trainable=False, name=f"weightlapse_grad_{i}"
            )
            for i, (n, v) in enumerate(self._variables.items())
            if v.trainable
        }
        self._grad_slots = slots
        original_apply = inner.apply

        def apply(grads: Any, trainable_variables: Any = None) -> Any:
            variables = trainable_variables or inner._trainable_variables
            for grad, var in zip(grads, variables):
                name = by_path.get(var.path)
                if name in slots and grad is not None:
                    slots[name].assign(keras.ops.cast(grad, "float32"))
            return original_apply(grads, trainable_variables)

        inner.apply = apply


__all__ = ["KerasOps", "Recorder"]
