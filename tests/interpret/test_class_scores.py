"""Saliency (and deconvnet, guided backprop) are gradients of the class score, the logit
before a final softmax (Simonyan et al.), not of a probability."""

from __future__ import annotations

import numpy as np
import pytest

from weightlapse.errors import WeightlapseError
from weightlapse.interpret.methods import Saliency

X = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)


def test_torch_saliency_through_a_final_softmax_is_the_logits_gradient():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for last in (torch.nn.Softmax(dim=1), torch.nn.LogSoftmax(dim=1)):
        model = torch.nn.Sequential(torch.nn.Linear(5, 4), last)
        weights = model[0].weight.detach().numpy()
        maps = Saliency(model).attribute(X, target=2)
        np.testing.assert_allclose(maps, np.tile(weights[2], (3, 1)), rtol=1e-5)  # d logit_2/dx
        probability = Saliency(model, output="model").attribute(X, target=2)
        assert not np.allclose(probability, maps)


def test_torch_functional_softmax_in_forward_is_found_too():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(5, 4)

        def forward(self, x):
            return self.fc(x).softmax(dim=-1)

    net = Net()
    maps = Saliency(net).attribute(X, target=1)
    np.testing.assert_allclose(maps, np.tile(net.fc.weight.detach().numpy()[1], (3, 1)), rtol=1e-5)


def test_keras_saliency_through_a_softmax_activation_or_layer_is_the_logits_gradient():
    keras = pytest.importorskip("keras")
    for softmax_layer in (False, True):
        if softmax_layer:
            model = keras.Sequential(
                [keras.Input((5,)), keras.layers.Dense(4), keras.layers.Softmax()]
            )
        else:
            model = keras.Sequential(
                [keras.Input((5,)), keras.layers.Dense(4, activation="softmax")]
            )
        kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)  # (in, out)
        maps = Saliency(model).attribute(X, target=3)
        np.testing.assert_allclose(maps, np.tile(kernel[:, 3], (3, 1)), rtol=1e-5)
        after = keras.ops.convert_to_numpy(model(X))
        assert np.allclose(after.sum(axis=1), 1.0)  # the softmax is back after the pass


def test_an_unknown_output_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(WeightlapseError, match="'logits'.*'model'"):
        Saliency(torch.nn.Linear(5, 2), output="probabilities")
