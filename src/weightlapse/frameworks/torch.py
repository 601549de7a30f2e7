"""PyTorch: parameter names, the model's description, layer outputs, eval mode."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, UnknownNameError
from weightlapse.frameworks.layouts import TORCH_LAYER_LAYOUTS, weight_layout
from weightlapse.store.records import TensorInfo

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised without torch installed
    raise MissingDependencyError("torch", "torch") from exc


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, inside torch.compile's and (Distributed)DataParallel's wrappers:
    its parameter names are the model's own, with no '_orig_mod.' or 'module.' added."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


# What wrappers insert into names: FSDP1's unit, activation checkpointing, torch.compile.
WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def clean_name(name: str) -> str:
    """A parameter or module name as the model itself has it, wrappers left out."""
    for part in WRAPPER_PARTS:
        name = name.replace(part, "")
    for part in WRAPPER_PARTS:  # a wrapper's own name, at the end of a module's
        name = name.removesuffix(part.rstrip("."))
    return name.rstrip(".")


def named_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {clean_name(n): p for n, p in unwrap(model).named_parameters()}


def modules_by_name(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every named submodule, by its name in the unwrapped model."""
    return {clean_name(n): m for n, m in unwrap(model).named_modules() if clean_name(n)}


def describe_model(model: torch.nn.Module) -> tuple[dict[str, TensorInfo], list[dict[str, Any]]]:
    """Tensor infos (with each weight's axis layout) and a layer summary."""
    infos: dict[str, TensorInfo] = {}
    layers: list[dict[str, Any]] = []
    for raw, module in unwrap(model).named_modules():
        layer = clean_name(raw)
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        kind = type(module).__name__
        layers.append({"name": layer, "type": kind, "tensors": []})
        for pname, p in own:
            full = f"{layer}.{pname}" if layer else pname
            infos[full] = TensorInfo(
                full,
                tuple(p.shape),
                str(p.dtype).replace("torch.", ""),
                layer=layer,
                layout=weight_layout(kind, pname, p.ndim, TORCH_LAYER_LAYOUTS),
            )
            layers[-1]["tensors"].append(full)
    return infos, layers


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, BatchNorm running statistics) inside, the old mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def layer_outputs(
    model: torch.nn.Module, inputs: Any, layers: Sequence[str]
) -> dict[str, np.ndarray]:
    """The outputs of named layers for `inputs`, by forward hooks, in eval mode and
    without gradients (BatchNorm statistics and dropout are left as they were).

    >>> layer_outputs(model, x[:4], ["conv1", "fc1"])["conv1"].shape  # (4, C, H, W)
    """
    modules = modules_by_name(model)
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
    try:
        with eval_mode(model), torch.no_grad():
            device = next(model.parameters(), torch.zeros(0)).device
            model(torch.as_tensor(inputs).to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layers}


class LayerInputShapes:
    """Each layer's own input shape (one sample), read by hooks on the first forward
    pass. A dense layer fed by a Flatten gets the shape before flattening (16x7x7 conv
    features, not 784 numbers), so its weights can be drawn in that shape."""

    def __init__(self, model: torch.nn.Module, on_done: Any) -> None:
        self.seen: list[tuple[str, torch.nn.Module, tuple[int, ...]]] = []
        self.on_done = on_done
        inner = unwrap(model)
        self.handles = [
            module.register_forward_pre_hook(self._keep(name))
            for name, module in inner.named_modules()
            if name
        ]
        self.handles.append(inner.register_forward_hook(self._finish))

    def _keep(self, name: str) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor) and args[0].ndim >= 2:
                self.seen.append((name, module, tuple(int(d) for d in args[0].shape[1:])))

        return hook

    def _finish(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.remove()
        shapes: dict[str, list[int]] = {}
        for k, (name, layer, shape) in enumerate(self.seen):
            if not any(True for _ in layer.parameters(recurse=False)):
                continue
            before = self.seen[k - 1] if k else None
            flat_from = before[2] if before and isinstance(before[1], torch.nn.Flatten) else None
            if len(shape) == 1 and flat_from and int(np.prod(flat_from)) == shape[0]:
                shape = flat_from
            if len(shape) == 1 and not shapes:
                continue  # the model's own flat input: an image, maybe (meta input_shape)
            shapes[name] = list(shape)
        self.on_done(shapes)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
