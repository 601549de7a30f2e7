"""Attribution methods against known answers."""

import numpy as np
import pytest

from weightlapse.errors import WeightlapseError
from weightlapse.interpret.methods import (
    Deconvnet,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackprop,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    make_method,
)

torch = pytest.importorskip("torch")


def small_cnn(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(1, 4, 3, padding=1))
    model.add_module("relu1", torch.nn.ReLU())
    model.add_module("conv2", torch.nn.Conv2d(4, 6, 3, padding=1))
    model.add_module("relu2", torch.nn.ReLU(inplace=True))
    model.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", torch.nn.Flatten())
    model.add_module("fc", torch.nn.Linear(6, 3))
    return model.double().float()


def test_saliency_equals_a_finite_difference_gradient():
    model = small_cnn()
    x = np.random.default_rng(0).normal(size=(1, 1, 6, 6)).astype(np.float32)
    grad = Saliency(model).attribute(x, target=2)
    assert grad.shape == x.shape
    model64 = small_cnn().double()
    eps = 1e-6
    x64 = torch.tensor(x, dtype=torch.float64)
    for index in [(0, 0, 0, 0), (0, 0, 2, 3), (0, 0, 5, 5), (0, 0, 3, 1)]:
        up, down = x64.clone(), x64.clone()
        up[index] += eps
        down[index] -= eps
        with torch.no_grad():
            numeric = (model64(up)[0, 2] - model64(down)[0, 2]).item() / (2 * eps)
        assert grad[index] == pytest.approx(numeric, rel=1e-3, abs=1e-6)


class OneRelu(torch.nn.Module):
    """y = w2 * relu(w1 * x): small enough to work the backward rules out by hand."""

    def __init__(self, w1, w2, functional):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.tensor(w1))
        self.w2 = torch.nn.Parameter(torch.tensor(w2))
        self.functional = functional
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        h = self.w1 * x
        h = torch.relu(h) if self.functional else self.relu(h)
        return (self.w2 * h).sum(dim=1, keepdim=True)  # one output: the score


@pytest.mark.parametrize("functional", [False, True])
def test_the_relu_rules_by_hand(functional):
    # x = [1, -1]; w1 = [1, 1] -> pre-activation [1, -1]; w2 = [-2, 3]; score = sum
    model = OneRelu([1.0, 1.0], [-2.0, 3.0], functional)
    x = np.array([[1.0, -1.0]], np.float32)
    # plain gradient: w2 * 1[h > 0] * w1 -> [-2, 0]
    np.testing.assert_allclose(Saliency(model).attribute(x, target=0), [[-2.0, 0.0]])
    # deconvnet: relu of the incoming gradient, whatever h was: [relu(-2), relu(3)] * w1
    np.testing.assert_allclose(Deconvnet(model).attribute(x, target=0), [[0.0, 3.0]])
    # guided: relu(incoming) and h > 0 -> [0, 0]
    np.testing.assert_allclose(GuidedBackprop(model).attribute(x, target=0), [[0.0, 0.0]])
    model.w2.data = torch.tensor([2.0, 3.0])
    np.testing.assert_allclose(GuidedBackprop(model).attribute(x, target=0), [[2.0, 0.0]])


def test_relu_rules_reach_modules_inplace_and_functional_relus_alike():
    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 4)
            self.c = torch.nn.Linear(4, 2)
            self.inplace = torch.nn.ReLU(inplace=True)

        def forward(self, x):
            h = self.inplace(self.a(x))
            h = torch.nn.functional.relu(self.b(h))
            return self.c(h).relu()

    torch.manual_seed(1)
    model = Mixed()
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    from weightlapse.interpret.torch_backend import ReluRuleMode

    with ReluRuleMode("deconvnet") as mode:
        model(torch.tensor(x))
    assert mode.calls == 3
    deconv = Deconvnet(model).attribute(x, target=0)
    plain = Saliency(model).attribute(x, target=0)
    assert deconv.shape == x.shape and not np.allclose(deconv, plain)


def test_a_relu_the_rule_cannot_reach_is_named():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    scripted = torch.jit.script(model)
    with pytest.raises(Exception, match="ReLU|relu"):
        Deconvnet(scripted).attribute(np.ones((1, 3), np.float32), target=0)


def test_integrated_gradients_are_complete():
    model = small_cnn(3)
    x = np.random.default_rng(3).normal(size=(2, 1, 6, 6)).astype(np.float32)
    attributions = IntegratedGradients(model).attribute(x, target=1, steps=128)
    with torch.no_grad():
        fx = model(torch.tensor(x))[:, 1].numpy()
        f0 = model(torch.zeros_like(torch.tensor(x)))[:, 1].numpy()
    sums = attributions.reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(sums, fx - f0, rtol=0.01, atol=1e-4)


def test_smoothgrad_is_the_mean_of_noisy_gradients():
    model = small_cnn()
    x = np.random.default_rng(0).normal(size=(1, 1, 6, 6)).astype(np.float32)
    one = SmoothGrad(model).attribute(x, target=0, samples=1, noise=0.0)
    np.testing.assert_allclose(one, Saliency(model).attribute(x, target=0), rtol=1e-5)
    many = SmoothGrad(model).attribute(x, target=0, samples=8)
    assert many.shape == x.shape and not np.allclose(many, one)


def square_data(n, rng, size=12):
    """Half the images hold a bright 3x3 square somewhere on noise; class 1 = square."""
    x = rng.normal(0, 0.3, size=(n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 2, n)
    where = rng.integers(0, size - 3, size=(n, 2))
    for i in np.flatnonzero(y):
        r, c = where[i]
        x[i, 0, r : r + 3, c : c + 3] += 3.0
    return x, y, where


def test_gradcam_of_a_square_detector_peaks_inside_the_square():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(1, 8, 3, padding=1))
    model.add_module("relu1", torch.nn.ReLU())
    model.add_module("conv2", torch.nn.Conv2d(8, 8, 3, padding=1))
    model.add_module("relu2", torch.nn.ReLU())
    model.add_module("pool", torch.nn.AdaptiveMaxPool2d(1))
    model.add_module("flat", torch.nn.Flatten())
    model.add_module("fc", torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y, _ = square_data(512, rng)
    for _ in range(150):
        idx = rng.integers(0, 512, 64)
        loss = torch.nn.functional.cross_entropy(model(torch.tensor(x[idx])), torch.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_x, test_y, where = square_data(40, np.random.default_rng(1))
    with torch.no_grad():
        accuracy = (model(torch.tensor(test_x)).argmax(1).numpy() == test_y).mean()
    assert accuracy > 0.9
    squares = np.flatnonzero(test_y)
    for method in (GradCAM(model), GradCAMPlusPlus(model)):
        cams = method.attribute(test_x[squares], target=1, layer="relu2")
        assert cams.shape == (len(squares), 12, 12)
        hits = 0
        for cam, (r, c) in zip(cams, where[squares]):
            pr, pc = np.unravel_index(np.argmax(cam), cam.shape)
            hits += r - 1 <= pr <= r + 3 and c - 1 <= pc <= c + 3
        assert hits >= 0.9 * len(squares), (type(method).__name__, hits, len(squares))


def test_methods_by_name_and_a_layer_method_without_a_layer():
    model = small_cnn()
    assert isinstance(make_method("gradcam++", model), GradCAMPlusPlus)
    with pytest.raises(Exception, match="Did you mean: saliency"):
        make_method("salency", model)
    with pytest.raises(Exception, match="layer="):
        GradCAM(model).attribute(np.zeros((1, 1, 6, 6), np.float32))


def test_a_misspelt_option_is_refused_not_swallowed():
    model = small_cnn()
    x = np.zeros((1, 1, 6, 6), np.float32)
    with pytest.raises(WeightlapseError, match="sampels.*samples, noise, seed"):
        SmoothGrad(model).attribute(x, sampels=5)
    with pytest.raises(WeightlapseError, match="its options are: none"):
        Saliency(model).attribute(x, steps=3)
