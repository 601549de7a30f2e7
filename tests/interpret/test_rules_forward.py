"""Under a ReLU rule (deconvnet, guided backprop) the forward pass is the plain forward
pass, for every way a ReLU is written; a ReLU the rules are not defined for is refused."""

from __future__ import annotations

import numpy as np
import pytest

from weightlapse.errors import WeightlapseError
from weightlapse.interpret.methods import GuidedBackprop

torch = pytest.importorskip("torch")
F = torch.nn.functional


class Form(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.kind = kind
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 3)
        self.relu = torch.nn.ReLU(inplace=kind == "inplace-module")

    def forward(self, x):
        h = self.a(x)
        if self.kind in ("module", "inplace-module"):
            h = self.relu(h)
        elif self.kind == "functional":
            h = F.relu(h)
        elif self.kind == "functional-inplace":
            h = F.relu(h, inplace=True)
        elif self.kind == "relu_-not-reassigned":
            h.relu_()
        elif self.kind == "clipped":
            h = F.relu(h).clamp(max=0.3)
        elif self.kind == "leaky":
            h = F.leaky_relu(h, 0.1)
        return self.b(h)


FORMS = [
    "module",
    "inplace-module",
    "functional",
    "functional-inplace",
    "relu_-not-reassigned",
    "clipped",
]


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
@pytest.mark.parametrize("kind", FORMS)
def test_the_forward_pass_under_a_rule_is_the_plain_one(kind, rule):
    from weightlapse.interpret.torch_backend import ReluRuleMode

    model = Form(kind)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    plain = model(x.clone())
    with ReluRuleMode(rule):
        ruled = model(x.clone().requires_grad_(True))
    torch.testing.assert_close(ruled, plain)


def test_an_inplace_relu_not_reassigned_is_rectified_for_guided_backprop():
    """One unit: h = a(x) = x < 0, h.relu_() makes it 0, so no gradient reaches x."""

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(1, 1, bias=False)
            self.b = torch.nn.Linear(1, 2, bias=False)
            with torch.no_grad():
                self.a.weight.fill_(1.0)
                self.b.weight.copy_(torch.tensor([[1.0], [-1.0]]))

        def forward(self, x):
            h = self.a(x)
            h.relu_()
            return self.b(h)

    grad = GuidedBackprop(One()).attribute(np.array([[-2.0]], np.float32), target=1)
    assert grad[0, 0] == 0.0  # it was -1: the rule saw an unrectified h


def test_a_leaky_relu_is_refused_under_a_rule():
    with pytest.raises(WeightlapseError, match="leaky_relu"):
        GuidedBackprop(Form("leaky")).attribute(np.ones((1, 4), np.float32), target=0)


def test_keras_clipped_relu_keeps_its_clip_and_leaky_is_refused():
    keras = pytest.importorskip("keras")
    from weightlapse.interpret.keras_backend import KerasBackend

    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, kernel_initializer="ones", name="d")(inputs)
    h = keras.layers.ReLU(max_value=1.0, name="clip")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="ones")(h))
    x = np.full((1, 3), 2.0, np.float32)  # pre-activations 6: clipped to 1
    plain = keras.ops.convert_to_numpy(model(x))
    backend = KerasBackend(model)
    for rule in ("deconvnet", "guided"):
        with backend._relu_rule(rule):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), plain)
    assert float(plain[0, 0]) == pytest.approx(4.0)
    leaky = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.LeakyReLU()])
    with pytest.raises(WeightlapseError, match="LeakyReLU"):
        GuidedBackprop(leaky).attribute(x, target=0)
