"""What a tensor's axes mean, as a comma-separated layout ('out,in,h,w', 'h,w,in,out'):
the one table for every framework, and the conversion views need (a conv kernel as
(out, in, *spatial)). Pure NumPy: no framework is imported here."""

from __future__ import annotations

import numpy as np

from weightlapse.errors import WeightlapseError

# Weight layouts by layer class. PyTorch keeps (out, in, *spatial), transposed convs
# (in, out, *spatial); Keras keeps (*spatial, in, out), transposed convs (*spatial, out, in).
TORCH_LAYER_LAYOUTS = {
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
KERAS_LAYER_LAYOUTS = {
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
# A weight of this rank saved from PyTorch with no layer class known (a state dict).
TORCH_LAYOUT_BY_RANK = {2: "out,in", 3: "out,in,w", 4: "out,in,h,w", 5: "out,in,d,h,w"}
SPATIAL = ("d", "h", "w")


def weight_layout(layer_class: str, variable: str, ndim: int, table: dict[str, str]) -> str:
    """A variable's layout: the layer's weight layout for its kernel, 'out' for a bias."""
    if variable in ("weight", "kernel"):
        return table.get(layer_class, "")
    return "out" if variable == "bias" and ndim == 1 else ""


def torch_state_dict_layouts(shapes: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """PyTorch's conventions for names in a state dict: '*weight' is (out, in, *spatial)."""
    return {
        n: TORCH_LAYOUT_BY_RANK.get(len(s), "")
        for n, s in shapes.items()
        if n.endswith("weight") and len(s) >= 2
    }


def axes_of(layout: str) -> list[str]:
    return [a for a in layout.split(",") if a] if layout else []


def to_out_in_spatial(kernel: np.ndarray, layout: str = "") -> np.ndarray:
    """A conv kernel as (out, in, *spatial), from its layout, or guessed without one."""
    axes = axes_of(layout)
    if len(axes) == kernel.ndim and "out" in axes and "in" in axes:
        spatial = [axes.index(a) for a in axes if a in SPATIAL]
        if len(spatial) == kernel.ndim - 2:
            return np.transpose(kernel, [axes.index("out"), axes.index("in"), *spatial])
    if kernel.ndim not in (3, 4, 5):
        raise WeightlapseError(
            f"A kernel of shape {kernel.shape} is not a conv kernel (want 3 to 5 axes). "
            "Dense weights are drawn by weight_images or heatmap."
        )
    # No layout recorded: square spatial axes at the end mean PyTorch's order,
    # square ones in front Keras' (h, w, in, out); else assume PyTorch.
    spatial_last = kernel.shape[-1] == kernel.shape[-2]
    keras_like = kernel.ndim >= 4 and kernel.shape[0] == kernel.shape[1] and not spatial_last
    keras_order = {4: (3, 2, 0, 1), 5: (4, 3, 0, 1, 2)}
    return np.transpose(kernel, keras_order[kernel.ndim] if keras_like else range(kernel.ndim))


def input_axis(layout: str) -> int | None:
    """Which axis of a dense weight holds its inputs, when the layout says."""
    axes = axes_of(layout)
    return axes.index("in") if "in" in axes else None


def unit_axis(layout: str, default: int = 0) -> int:
    """Which axis of a dense weight holds its output units."""
    axes = axes_of(layout)
    return axes.index("out") if "out" in axes else default
