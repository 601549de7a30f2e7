"""Activation grids equal the layer's real outputs, in PyTorch and in Keras."""

import numpy as np
import pytest

import weightlapse
from weightlapse.views.activations import activation_panels


def test_torch_activations_equal_the_layer_output_and_fill_the_grid(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(1, 6, 3))
    model.add_module("relu", torch.nn.ReLU())
    model.add_module("flat", torch.nn.Flatten())
    model.add_module("fc", torch.nn.Linear(6 * 6 * 6, 4))
    model.train()
    x = torch.randn(2, 1, 8, 8)
    got = weightlapse.activations(model, x, "conv1")
    with torch.no_grad():
        want = model.conv1(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert model.training  # left as it was
    panels = activation_panels(got[1])
    assert panels.titles == [f"Filter {i}" for i in range(6)]
    for i, image in enumerate(panels.images):
        np.testing.assert_allclose(image, want[1, i], rtol=1e-6)
    dense = activation_panels(weightlapse.activations(model, x, "fc")[0])
    assert dense.images[0].shape == (1, 4) and "4 units" in dense.title
    with pytest.raises(weightlapse.UnknownNameError, match="Did you mean: conv1"):
        weightlapse.activations(model, x, "conv")


def test_recorded_probe_activations_equal_the_layer_output_at_that_step(tmp_path):
    torch = pytest.importorskip("torch")
    from weightlapse.torch import watch

    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(1, 4, 3))
    model.add_module("relu", torch.nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    probes = torch.randn(3, 1, 6, 6)
    with watch(
        model, tmp_path / "r", optimizer=opt, snapshots=2, probe_inputs=probes, activations=["relu"]
    ):
        for _ in range(4):
            opt.zero_grad()
            model(torch.randn(5, 1, 6, 6)).mean().backward()
            opt.step()
    run = weightlapse.open(tmp_path / "r")
    assert run.activations == ["relu"]
    assert run.history("relu", "activation").snapshot_steps == [0, 2, 4]
    with torch.no_grad():
        want = model(probes).numpy()
    np.testing.assert_allclose(run.history("relu", "activation").at(4), want, rtol=1e-6)
    fig = weightlapse.activation_grid(run, "relu", step=4, sample=2)
    for i, ax in enumerate(a for a in fig.axes if a.images):
        np.testing.assert_allclose(ax.images[0].get_array(), want[2, i], rtol=1e-6)
    assert "probe input 2 at step 4" in fig._suptitle.get_text()


def test_keras_activations_equal_the_layer_output():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(5, 3, name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    got = weightlapse.activations(model, x, "conv")
    want = keras.ops.convert_to_numpy(model.get_layer("conv")(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    panels = activation_panels(got[0], channels_last=True)
    for i, image in enumerate(panels.images):
        np.testing.assert_allclose(image, want[0, :, :, i], rtol=1e-5, atol=1e-6)
