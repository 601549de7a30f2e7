"""Attribution primitives for Keras 3 on the TensorFlow and PyTorch backends. The ReLU
rule replaces, for the duration of one pass, every relu activation of the model's
layers (Dense/Conv activation=, Activation('relu'), ReLU layers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.frameworks.keras import all_layers, keras, probe_model
from weightlapse.interpret.backends import Backend, check_output


def _rule_relu(rule: str) -> Any:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def relu(x: Any) -> Any:
            def grad(g: Any) -> Any:
                if rule == "deconvnet":
                    return tf.nn.relu(g)
                if rule == "guided":
                    return tf.nn.relu(g) * tf.cast(x > 0, g.dtype)
                return g * tf.cast(x > 0, g.dtype)

            return tf.nn.relu(x), grad

        return relu
    if backend == "torch":
        from weightlapse.interpret.torch_backend import ReluRule

        return lambda x: ReluRule.apply(x, rule)
    raise WeightlapseError(
        f"Attribution on the {backend!r} Keras backend is not supported; "
        "use the TensorFlow or PyTorch backend."
    )


def _is_relu(fn: Any) -> bool:
    return _named(fn, "relu")


def _named(fn: Any, name: str) -> bool:
    return getattr(fn, "__name__", "") == name


def _leaky(layer: Any) -> str:
    """What makes a layer a ReLU the rules are not defined for ('' when none)."""
    if isinstance(layer, keras.layers.LeakyReLU):
        return "a LeakyReLU"
    if isinstance(layer, keras.layers.ReLU):
        slope = float(getattr(layer, "negative_slope", 0) or 0)
        threshold = float(getattr(layer, "threshold", 0) or 0)
        if slope or threshold:
            return f"a ReLU with negative_slope={slope:g}, threshold={threshold:g}"
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    if name in ("leaky_relu", "elu", "gelu", "silu", "selu"):
        return f"activated by {name}"
    return ""


def _clipped(relu: Any, max_value: Any) -> Any:
    """The rule's ReLU, then the layer's own clip (ReLU(max_value=...)): the forward
    pass equals the layer's; no gradient passes where it clips."""
    if max_value is None:
        return relu
    return lambda x, *args, **kwargs: keras.ops.minimum(relu(x), float(max_value))


class KerasBackend(Backend):
    def __init__(self, model: keras.Model, output: str = "logits") -> None:
        self.model = model
        self.output = check_output(output)
        self.name = keras.backend.backend()
        if self.name not in ("tensorflow", "torch"):
            raise WeightlapseError(
                f"Attribution on the {self.name!r} Keras backend is not "
                "supported; use TensorFlow or PyTorch."
            )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(self.model(x, training=False)))

    def _grad(self, fn: Any, x: np.ndarray) -> tuple[Any, Any]:
        """(value, d sum(value) / d x) where fn maps an input tensor to a scalar score."""
        if self.name == "tensorflow":
            import tensorflow as tf

            xt = tf.convert_to_tensor(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                score = fn(xt)
            return score, tape.gradient(score, xt)
        import torch

        xt = torch.tensor(x, requires_grad=True)
        score = fn(xt)
        (grad,) = torch.autograd.grad(score, xt)
        return score, grad

    def _score(self, out: Any, target: np.ndarray) -> Any:
        onehot = np.eye(out.shape[-1], dtype="float32")[target]
        return keras.ops.sum(out * keras.ops.convert_to_tensor(onehot))

    def input_gradient(
        self, x: np.ndarray, target: Any, rule: str, feature: tuple[str, Any] | None = None
    ) -> np.ndarray:
        if feature is None:
            target = self.resolve_target(x, target)
            with self._relu_rule(rule), self._scores():
                _, grad = self._grad(
                    lambda xt: self._score(self.model(xt, training=False), target), x
                )
            return np.asarray(keras.ops.convert_to_numpy(grad))
        layer, channels = feature
        names = [lay.name for lay in self.model.layers]
        if layer not in names:
            raise UnknownNameError(layer, names, what="layer")
        with self._relu_rule(rule, require=False):  # a first layer's map has none before it
            probe = probe_model(self.model, [layer])

            def score(xt: Any) -> Any:
                maps = probe(xt, training=False)[0]  # (N, ..., C): channels last
                picked = keras.ops.take_along_axis(
                    keras.ops.reshape(maps, (maps.shape[0], -1, maps.shape[-1])),
                    keras.ops.convert_to_tensor(np.asarray(channels).reshape(-1, 1, 1)),
                    axis=2,
                )
                return keras.ops.sum(keras.ops.max(picked, axis=(1, 2)))

            _, grad = self._grad(score, x)
        return np.asarray(keras.ops.convert_to_numpy(grad))

    def layer_gradient(
        self, x: np.ndarray, target: Any, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        names = [lay.name for lay in self.model.layers]
        if layer not in names:
            raise UnknownNameError(layer, names, what="layer")
        target = self.resolve_target(x, target)
        with self._scores():
            return self._layer_gradient(x, target, layer)

    def _layer_gradient(
        self, x: np.ndarray, target: np.ndarray, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        probe = probe_model(self.model, [layer])
        if self.name == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                acts, out = probe(tf.convert_to_tensor(x), training=False)
                score = self._score(out, target)
            grad = tape.gradient(score, acts)
        else:
            import torch

            acts, out = probe(torch.tensor(x), training=False)
            (grad,) = torch.autograd.grad(self._score(out, target), acts)
        acts_np = np.asarray(keras.ops.convert_to_numpy(acts))
        grad_np = np.asarray(keras.ops.convert_to_numpy(grad))
        if acts_np.ndim != 4:
            raise WeightlapseError(
                f"Layer {layer!r} gives maps of shape {acts_np.shape}; "
                "Grad-CAM needs a convolutional layer's (N, H, W, C)."
            )
        return np.moveaxis(acts_np, -1, 1), np.moveaxis(grad_np, -1, 1)  # to (N, C, H, W)

    @contextlib.contextmanager
    def _scores(self) -> Iterator[None]:
        """With output='logits', a final softmax (an activation or a layer) is skipped for
        the pass, so gradients are of the class scores."""
        last = self.model.layers[-1] if self.model.layers else None
        activation = getattr(last, "activation", None)
        if self.output == "model" or last is None:
            yield
        elif isinstance(last, keras.layers.Softmax) or (
            isinstance(last, keras.layers.Activation) and _named(activation, "softmax")
        ):
            original = last.call
            last.call = lambda inputs, *args, **kwargs: inputs
            try:
                yield
            finally:
                last.call = original
        elif _named(activation, "softmax"):
            last.activation = keras.activations.linear
            try:
                yield
            finally:
                last.activation = activation
        else:
            yield

    @contextlib.contextmanager
    def _relu_rule(self, rule: str, require: bool = True) -> Iterator[None]:
        if rule == "gradient":
            yield
            return
        relu = _rule_relu(rule)
        patched: list[tuple[Any, str, Any]] = []
        for layer in all_layers(self.model):
            refused = _leaky(layer)
            if refused:
                raise WeightlapseError(
                    f"The {rule} rule is defined for ReLU; layer {layer.name!r} is {refused}, "
                    "where the rule would change what the network computes. Use Saliency "
                    "or Integrated Gradients for this model."
                )
            if isinstance(layer, keras.layers.ReLU):
                patched.append((layer, "call", layer.call))
                layer.call = _clipped(relu, layer.max_value)  # the forward stays the layer's
            elif _is_relu(getattr(layer, "activation", None)):
                patched.append((layer, "activation", layer.activation))
                layer.activation = relu
        try:
            if not patched and require:
                raise WeightlapseError(
                    f"The {rule} rule changes how gradients pass ReLUs, "
                    "and this model has no relu activation to change."
                )
            yield
        finally:
            for layer, attribute, original in patched:
                setattr(layer, attribute, original)
