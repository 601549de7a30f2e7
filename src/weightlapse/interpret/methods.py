"""What a network responds to: one interface, many methods, PyTorch and Keras alike.

    saliency = Saliency(model)
    maps = saliency.attribute(x, target=3)          # shaped like x
    cam = GradCAM(model).attribute(x, layer="conv2")  # shaped like the layer's maps (N, H, W)

Every method is built from a model and answers `attribute(inputs, target=..., layer=...)`
with NumPy arrays. Gradients are of the class score: the logit before a final softmax
(module, functional or Keras activation), as Simonyan et al. define it, not of a
probability, whose gradient vanishes as the model grows sure. `Method(model,
output="model")` attributes to the model's own output instead. `target` is a class
index (or one per input); None takes each input's top class. The frameworks differ only
in a small backend (gradients, layer hooks and the ReLU backward rule): see
`weightlapse.interpret.backends`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.frameworks import framework_of
from weightlapse.interpret.backends import Backend


def backend_for(model: Any, output: str = "logits") -> Backend:
    """The gradient backend of the model's framework (imported only when used)."""
    if framework_of(model) == "torch":
        from weightlapse.interpret.torch_backend import TorchBackend

        return TorchBackend(model, output)
    from weightlapse.interpret.keras_backend import KerasBackend

    return KerasBackend(model, output)


class Method:
    """Base of every attribution method: holds the model's backend, checks the options."""

    name = "method"
    needs_layer = False
    takes_layer = False  # projects one feature map of a chosen layer when given one
    options: tuple[str, ...] = ()  # the method's own keyword options

    def __init__(self, model: Any, *, output: str = "logits") -> None:
        self.model = model
        self.backend: Backend = backend_for(model, output)

    def attribute(
        self, inputs: Any, target: Any = None, layer: str | None = None, **options: Any
    ) -> np.ndarray:
        """The attribution of `inputs` to `target` (a class, one per input, or None for
        each input's top class); `layer` for layer methods; the method's own options."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise WeightlapseError(
                f"{type(self).__name__}.attribute got unknown option(s) {', '.join(unknown)}; "
                f"its options are: {known}."
            )
        if layer is not None and not (self.needs_layer or self.takes_layer):
            raise WeightlapseError(
                f"{type(self).__name__} attributes the class score to the input and takes no "
                "layer; a layer is for Deconvnet and GuidedBackprop (one of its feature maps) "
                "and for GradCAM and GradCAM++."
            )
        return self._attribute(np.asarray(inputs, np.float32), target, layer, **options)

    def _attribute(
        self, inputs: np.ndarray, target: Any, layer: str | None, **options: Any
    ) -> np.ndarray:
        raise NotImplementedError

    def _check_layer(self, layer: str | None) -> str:
        if layer is None:
            raise WeightlapseError(
                f"{type(self).__name__} attributes to a layer: pass layer="
                "the name of a convolutional layer (the last one, usually)."
            )
        return layer


class Saliency(Method):
    """Vanilla gradient of the class score with respect to the input.

    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising
    Image Classification Models and Saliency Maps", ICLR workshop 2014.
    arXiv:1312.6034. Returns the signed gradient; views show its magnitude.
    """

    name = "saliency"

    def _attribute(self, inputs: np.ndarray, target: Any, layer: str | None) -> np.ndarray:
        return self.backend.input_gradient(inputs, target, "gradient")


class SmoothGrad(Method):
    """The gradient averaged over noisy copies of the input (sigma: a share of its range).

    Smilkov, Thorat, Kim, Viegas & Wattenberg, "SmoothGrad: removing noise by adding
    noise", 2017. arXiv:1706.03825.
    """

    name = "smoothgrad"
    options = ("samples", "noise", "seed")

    def _attribute(
        self,
        inputs: np.ndarray,
        target: Any,
        layer: str | None,
        *,
        samples: int = 25,
        noise: float = 0.15,
        seed: int = 0,
    ) -> np.ndarray:
        x = inputs
        target = self.backend.resolve_target(x, target)
        sigma = noise * float(np.ptp(x)) if np.ptp(x) > 0 else noise
        rng = np.random.default_rng(seed)
        noisy = x[None] + rng.normal(0, sigma, (samples, *x.shape)).astype(np.float32)
        return _gradients_along(self.backend, noisy, target).mean(axis=0)


class Deconvnet(Method):
    """The deconvnet backward pass: through a ReLU only positive gradients go on,
    whatever the forward input was. Of the class score by default; with `layer=` (and
    `channel=`, else each input's most active one) the projection of that feature map's
    strongest activation back to the input, as in the paper's figures.

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
    arXiv:1311.2901.
    """

    name = "deconvnet"
    rule = "deconvnet"
    takes_layer = True
    options = ("channel",)

    def _attribute(
        self, inputs: np.ndarray, target: Any, layer: str | None, *, channel: Any = None
    ) -> np.ndarray:
        if layer is None:
            return self.backend.input_gradient(inputs, target, self.rule)
        channels = _channels(self.model, inputs, layer, channel)
        return self.backend.input_gradient(inputs, None, self.rule, feature=(layer, channels))


class GuidedBackprop(Deconvnet):
    """Guided backpropagation: through a ReLU a gradient goes on only where it is
    positive and the forward input was positive. `layer=` and `channel=` as Deconvnet.

    Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All
    Convolutional Net", ICLR workshop 2015. arXiv:1412.6806.
    """

    name = "guided"
    rule = "guided"


def _channels(model: Any, inputs: np.ndarray, layer: str, channel: Any) -> np.ndarray:
    """One channel per input: the given one(s), or each input's most active one."""
    from weightlapse.frameworks import framework_of
    from weightlapse.interpret.activations import activations

    if channel is not None:
        return np.broadcast_to(np.asarray(channel, dtype=np.int64), (len(inputs),)).copy()
    maps = np.asarray(activations(model, inputs, layer))
    axis = -1 if framework_of(model) == "keras" else 1
    per_channel = np.moveaxis(maps, axis, 1).reshape(len(inputs), maps.shape[axis], -1)
    return per_channel.max(axis=2).argmax(axis=1)


class IntegratedGradients(Method):
    """Gradients averaged along the straight path from a baseline to the input, times
    (input - baseline); they sum to f(input) - f(baseline) (completeness).

    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    arXiv:1703.01365. Trapezoid rule over `steps` points.
    """

    name = "integrated"
    options = ("baseline", "steps")

    def _attribute(
        self,
        inputs: np.ndarray,
        target: Any,
        layer: str | None,
        *,
        baseline: Any = None,
        steps: int = 64,
    ) -> np.ndarray:
        x = inputs
        base = (
            np.zeros_like(x)
            if baseline is None
            else np.broadcast_to(np.asarray(baseline, np.float32), x.shape)
        )
        target = self.backend.resolve_target(x, target)
        alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
        weights = np.full(steps + 1, 1.0 / steps, dtype=np.float32)
        weights[[0, -1]] /= 2
        shape = (-1,) + (1,) * x.ndim
        path = base[None] + alphas.reshape(shape) * (x - base)[None]
        grads = _gradients_along(self.backend, path, target)
        return (x - base) * (weights.reshape(shape) * grads).sum(axis=0)


class GradCAM(Method):
    """Class activation maps from a layer's feature maps weighted by the spatial mean of
    their gradients, then rectified. Returns (N, H, W) at the layer's resolution.

    Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual Explanations
    from Deep Networks via Gradient-based Localization", ICCV 2017. arXiv:1610.02391.
    """

    name = "gradcam"
    needs_layer = True

    def _attribute(self, inputs: np.ndarray, target: Any, layer: str | None) -> np.ndarray:
        acts, grads = self.backend.layer_gradient(inputs, target, self._check_layer(layer))
        weights = grads.mean(axis=(2, 3), keepdims=True)
        return np.maximum((weights * acts).sum(axis=1), 0.0)


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++: per-location weights from second and third powers of the gradient,
    better when a class shows up more than once.

    Chattopadhyay, Sarkar, Howlader & Balasubramanian, "Grad-CAM++: Improved Visual
    Explanations for Deep Convolutional Networks", WACV 2018. arXiv:1710.11063.
    """

    name = "gradcam++"

    def _attribute(self, inputs: np.ndarray, target: Any, layer: str | None) -> np.ndarray:
        acts, grads = self.backend.layer_gradient(inputs, target, self._check_layer(layer))
        g2, g3 = grads**2, grads**3
        denom = 2 * g2 + acts.sum(axis=(2, 3), keepdims=True) * g3
        alpha = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
        weights = (alpha * np.maximum(grads, 0.0)).sum(axis=(2, 3), keepdims=True)
        return np.maximum((weights * acts).sum(axis=1), 0.0)


def _gradients_along(
    backend: Backend, inputs: np.ndarray, target: np.ndarray, batch: int = 32
) -> np.ndarray:
    """Gradients for K versions of an N-input batch, (K, N, ...): about `batch` inputs a
    pass (one pass per version is several times slower)."""
    k, n = inputs.shape[:2]
    flat = inputs.reshape(k * n, *inputs.shape[2:])
    targets = np.tile(target, k)
    per_pass = max(n, batch // max(n, 1) * n)
    grads = [
        backend.input_gradient(flat[i : i + per_pass], targets[i : i + per_pass], "gradient")
        for i in range(0, k * n, per_pass)
    ]
    return np.concatenate(grads).reshape(inputs.shape)


METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (
        Saliency,
        SmoothGrad,
        Deconvnet,
        GuidedBackprop,
        IntegratedGradients,
        GradCAM,
        GradCAMPlusPlus,
    )
}


def make_method(name: str, model: Any) -> Method:
    """A method by its short name: saliency, smoothgrad, deconvnet, guided, integrated,
    gradcam, gradcam++."""
    if name not in METHODS:
        raise UnknownNameError(name, METHODS, what="attribution method")
    return METHODS[name](model)
