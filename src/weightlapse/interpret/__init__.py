"""What a network responds to: layer activations and attribution maps, PyTorch and Keras.

>>> from weightlapse.interpret import GradCAM, Saliency
>>> Saliency(model).attribute(x, target=3)
"""

from weightlapse.interpret.activations import activations
from weightlapse.interpret.methods import (
    METHODS,
    Deconvnet,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackprop,
    IntegratedGradients,
    Method,
    Saliency,
    SmoothGrad,
    make_method,
)

__all__ = [
    "METHODS",
    "Deconvnet",
    "GradCAM",
    "GradCAMPlusPlus",
    "GuidedBackprop",
    "IntegratedGradients",
    "Method",
    "Saliency",
    "SmoothGrad",
    "activations",
    "make_method",
]
