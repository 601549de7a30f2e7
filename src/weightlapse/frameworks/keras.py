"""Keras 3 (any backend): variable names, the model's description, layer outputs, and
the context a recorder reads weights in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, UnknownNameError, WeightlapseError
from weightlapse.frameworks.layouts import KERAS_LAYER_LAYOUTS, weight_layout
from weightlapse.store.records import TensorInfo

try:
    import keras
except ImportError as exc:  # pragma: no cover - exercised without keras installed
    raise MissingDependencyError("keras", "keras") from exc


def backend() -> str:
    return keras.backend.backend()


def tensor_names(model: keras.Model) -> dict[str, Any]:
    """Variable paths less the model's name: 'dense/kernel', not 'sequential/dense/kernel'."""
    variables = list(model.weights)
    prefix = f"{model.name}/"
    names = [v.path[len(prefix) :] if v.path.startswith(prefix) else v.path for v in variables]
    if len(set(names)) != len(names):
        names = [v.path for v in variables]
    return dict(zip(names, variables))


def describe_model(
    model: keras.Model, variables: dict[str, Any]
) -> tuple[dict[str, TensorInfo], dict[str, Any]]:
    """Tensor infos (with each kernel's axis layout) and the run's model metadata."""
    infos: dict[str, TensorInfo] = {}
    layers = []
    path_to_name = {v.path: n for n, v in variables.items()}
    for layer in model.layers:
        own = [path_to_name[v.path] for v in layer.weights if v.path in path_to_name]
        layer_class = type(layer).__name__
        layers.append({"name": layer.name, "type": layer_class, "tensors": own})
        for name in own:
            var = variables[name]
            short = name.rsplit("/", 1)[-1]
            infos[name] = TensorInfo(
                name,
                tuple(int(d) for d in var.shape),
                str(var.dtype),
                layer=layer.name,
                layout=weight_layout(layer_class, short, len(var.shape), KERAS_LAYER_LAYOUTS),
            )
    meta: dict[str, Any] = {
        "framework": "keras",
        "keras_backend": backend(),
        "keras_version": keras.__version__,
        "model": {"class": type(model).__name__, "name": model.name, "layers": layers},
    }
    try:
        shape = model.input_shape
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape[1:]):
            meta["input_shape"] = list(shape[1:])
    except (AttributeError, ValueError):
        pass
    meta["layer_inputs"] = layer_input_shapes(model)
    meta["channels"] = "last"  # Keras' (H, W, C)
    return infos, meta


def layer_input_shapes(model: keras.Model) -> dict[str, list[int]]:
    """Each weighted layer's own input shape (one sample); a Dense fed by a Flatten gets
    the shape before flattening."""
    shapes: dict[str, list[int]] = {}
    previous = None
    for layer in model.layers:
        try:
            shape = [int(d) for d in layer.input.shape[1:]]
        except (AttributeError, ValueError, TypeError):
            previous = None
            continue
        if layer.weights:
            if len(shape) == 1 and isinstance(
                previous[0] if previous else None, keras.layers.Flatten
            ):
                before = previous[1]
                if int(np.prod(before)) == shape[0]:
                    shape = before
            if len(shape) > 1 or shapes:  # not the model's own flat input (an image, maybe)
                shapes[layer.name] = shape
        previous = (layer, shape)
    return shapes


def no_grad() -> contextlib.AbstractContextManager:
    """torch.no_grad() on the torch backend (reading weights must not build a graph),
    nothing on the others."""
    if backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def all_layers(model: Any) -> Iterator[Any]:
    """Every layer, nested models' layers included."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


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
