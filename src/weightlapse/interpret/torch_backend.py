"""Attribution primitives for PyTorch. The ReLU rule reaches module ReLUs, in-place ReLUs
and functional calls (F.relu, torch.relu, Tensor.relu) alike, through a TorchFunctionMode."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.frameworks.torch import eval_mode, modules_by_name, unwrap
from weightlapse.interpret.backends import Backend, check_output


def _rule_gradient(rule: str, grad: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    if rule == "deconvnet":  # only positive gradients, whatever the input was
        return grad.clamp(min=0)
    if rule == "guided":  # positive gradients where the input was positive
        return grad.clamp(min=0) * positive
    return grad * positive


class ReluRule(torch.autograd.Function):
    """max(x, 0) forward, exactly as the plain ReLU; backward by the chosen rule."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str) -> torch.Tensor:
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        ctx.rule = rule
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        return _rule_gradient(ctx.rule, grad, out > 0), None


class InplaceReluRule(ReluRule):
    """ReLU in place, as `relu_` and `inplace=True` do: code that does not reassign
    (`h.relu_(); return fc(h)`) must see the rectified `h` under the rule too. The
    backward is ReluRule's."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str) -> torch.Tensor:
        x.clamp_(min=0)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)  # positive after the clamp iff positive before it
        ctx.rule = rule
        return x


RELU_FUNCTIONS = {torch.relu, F.relu, torch.Tensor.relu}
INPLACE_RELU_FUNCTIONS = {torch.relu_, F.relu_, torch.Tensor.relu_}
# The rules are defined for ReLU; on these they would silently change the function.
REFUSED = {F.leaky_relu, F.leaky_relu_, torch.nn.functional.elu, F.gelu, F.silu, F.prelu}


class ReluRuleMode(TorchFunctionMode):
    """Every ReLU call inside it backpropagates by `rule`; the forward pass is unchanged
    (in-place ReLUs stay in place). A leaky or smooth ReLU is refused."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self.calls = 0

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        inplace = func in INPLACE_RELU_FUNCTIONS or (
            func is F.relu and (kwargs.get("inplace") or (len(args) > 1 and args[1]))
        )
        if inplace:
            self.calls += 1
            return InplaceReluRule.apply(args[0], self.rule)
        if func in RELU_FUNCTIONS:
            self.calls += 1
            return ReluRule.apply(args[0], self.rule)
        if func in REFUSED:
            raise WeightlapseError(
                f"The {self.rule} rule is defined for ReLU; this model also uses "
                f"{getattr(func, '__name__', func)}, where the rule would change what the "
                "network computes. Use Saliency or Integrated Gradients for it."
            )
        return func(*args, **kwargs)


SOFTMAX_FUNCTIONS = {
    torch.softmax,
    F.softmax,
    torch.Tensor.softmax,
    torch.log_softmax,
    F.log_softmax,
    torch.Tensor.log_softmax,
}


class FinalSoftmax(TorchFunctionMode):
    """Remembers what each softmax was given, so a model's output that is a softmax can be
    traced back to its scores (module, functional or method softmax alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.given: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in SOFTMAX_FUNCTIONS:
            self.given[id(out)] = (out, args[0])
        return out

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        pair = self.given.get(id(out))
        return pair[1] if pair is not None and pair[0] is out else out


class TorchBackend(Backend):
    def __init__(self, model: torch.nn.Module, output: str = "logits") -> None:
        self.model = model
        self.output = check_output(output)
        try:
            self.device = next(model.parameters()).device
        except StopIteration:
            self.device = torch.device("cpu")

    def _tensor(self, x: np.ndarray, grad: bool = False) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.float32, device=self.device, requires_grad=grad)

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad(), eval_mode(self.model):
            return self.model(self._tensor(x)).float().cpu().numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output, or with output='logits' the scores a final softmax took."""
        if self.output == "model":
            return self.model(x)
        with FinalSoftmax() as softmax:
            out = self.model(x)
        return softmax.scores(out)

    def _score(self, out: torch.Tensor, target: np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(target, device=out.device)[:, None]
        return out.reshape(len(out), -1).gather(1, index).sum()

    def input_gradient(
        self, x: np.ndarray, target: Any, rule: str, feature: tuple[str, Any] | None = None
    ) -> np.ndarray:
        kept: list[torch.Tensor] = []
        handle = None
        if feature is not None:
            handle = self._module(feature[0]).register_forward_hook(
                lambda m, a, out: kept.append(out)
            )
        else:
            target = self.resolve_target(x, target)
        xt = self._tensor(x, grad=True)
        try:
            with eval_mode(self.model):
                if rule == "gradient":
                    out = self._forward(xt)
                else:
                    with ReluRuleMode(rule) as mode, _unreached_relus(self.model, mode):
                        out = self._forward(xt)
                    if mode.calls == 0 and feature is None:
                        raise WeightlapseError(
                            f"The {rule} rule changes how gradients pass ReLUs, "
                            "and this model ran no ReLU."
                        )
                score = (
                    self._score(out, target)
                    if feature is None
                    else strongest(kept[0], feature[1], channel_axis=1)
                )
                (grad,) = torch.autograd.grad(score, xt)
        finally:
            if handle is not None:
                handle.remove()
        return grad.cpu().numpy()

    def _module(self, layer: str) -> torch.nn.Module:
        modules = modules_by_name(self.model)
        if layer not in modules:
            raise UnknownNameError(layer, list(modules), what="layer")
        return modules[layer]

    def layer_gradient(
        self, x: np.ndarray, target: Any, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        modules = modules_by_name(self.model)
        if layer not in modules:
            raise UnknownNameError(layer, list(modules), what="layer")
        target = self.resolve_target(x, target)
        kept: list[torch.Tensor] = []
        try:
            handle = modules[layer].register_forward_hook(lambda m, a, out: kept.append(out))
        except RuntimeError as exc:  # TorchScript modules run no hooks
            raise WeightlapseError(
                f"Cannot read layer {layer!r} of this {type(self.model).__name__} ({exc}); "
                "layer methods need the eager model."
            ) from None
        try:
            with eval_mode(self.model):
                out = self._forward(self._tensor(x))
                (grad,) = torch.autograd.grad(self._score(out, target), kept[0])
        finally:
            handle.remove()
        acts = kept[0].detach()
        if acts.ndim != 4:
            raise WeightlapseError(
                f"Layer {layer!r} gives maps of shape {tuple(acts.shape)}; "
                "Grad-CAM needs a convolutional layer's (N, C, H, W)."
            )
        return acts.cpu().numpy(), grad.cpu().numpy()


def strongest(maps: Any, channels: Any, channel_axis: int) -> Any:
    """Zeiler and Fergus' start for a projection: of each input's chosen feature map
    (`channels`, one per input), its strongest activation; summed over inputs."""
    moved = maps.movedim(channel_axis, 1) if channel_axis != 1 else maps
    index = torch.as_tensor(np.asarray(channels), device=maps.device)
    chosen = moved[torch.arange(len(moved), device=maps.device), index]
    return chosen.reshape(len(chosen), -1).max(dim=1).values.sum()


class _unreached_relus:
    """Names any nn.ReLU module that ran without its ReLU passing through the mode."""

    def __init__(self, model: torch.nn.Module, mode: ReluRuleMode) -> None:
        self.mode, self.missed = mode, []
        self.handles = []
        for name, module in unwrap(model).named_modules():
            if isinstance(module, torch.nn.ReLU):
                self.handles.append(module.register_forward_pre_hook(self._before))
                self.handles.append(module.register_forward_hook(self._after(name)))

    def _before(self, module: Any, args: Any) -> None:
        module._weightlapse_calls = self.mode.calls

    def _after(self, name: str) -> Any:
        def hook(module: Any, args: Any, out: Any) -> None:
            if self.mode.calls == getattr(module, "_weightlapse_calls", -1):
                self.missed.append(name)

        return hook

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        if self.missed and exc[0] is None:
            raise WeightlapseError(
                f"The ReLU rule could not reach {', '.join(self.missed)} (compiled or "
                "scripted code bypasses Python function calls). Attribute the eager model."
            )
