"""Deep architectures on CPU: every layer's activations and a Grad-CAM of the last conv
stage come back, with the right shapes. No weights are downloaded. (How long they take
is bench/interpret.py's business, not a test's.)"""

import numpy as np
import pytest

from weightlapse.interpret.activations import activations
from weightlapse.interpret.methods import GradCAM, GuidedBackprop

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_resnet18_every_layer_gradcam_and_guided_backprop():
    from tests.interpret.resnet import resnet18

    torch.manual_seed(0)
    model = resnet18()
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    names = [n for n, _ in model.named_modules() if n and "." not in n]
    acts = activations(model, x, names)
    cam = GradCAM(model).attribute(x, layer="layer4")
    guided = GuidedBackprop(model).attribute(x)  # in-place ReLUs inside every block
    assert acts["layer4"].shape == (1, 512, 7, 7) and acts["fc"].shape == (1, 1000)
    assert cam.shape == (1, 7, 7) and np.isfinite(cam).all()
    assert guided.shape == x.shape and np.abs(guided).sum() > 0


@pytest.mark.slow
def test_keras_inception_v3_every_layer_and_gradcam():
    keras = pytest.importorskip("keras")
    model = keras.applications.InceptionV3(weights=None)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) >= 48
    x = np.random.default_rng(0).random((1, 299, 299, 3)).astype(np.float32)
    acts = activations(model, x, [layer.name for layer in model.layers[1:]])
    cam = GradCAM(model).attribute(x, layer="mixed10")
    assert len(acts) == len(model.layers) - 1
    assert acts["mixed10"].shape == (1, 8, 8, 2048)
    assert cam.shape == (1, 8, 8) and np.isfinite(cam).all()
