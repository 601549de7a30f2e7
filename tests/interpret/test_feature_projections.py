"""Zeiler and Fergus' deconvnet of a chosen layer's feature map; layers that are not
there are refused by name; explain fits an image to the model or says what it expects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.interpret.explain import feature_projections
from weightlapse.interpret.methods import Deconvnet, GradCAM, GuidedBackprop, Saliency

torch = pytest.importorskip("torch")


def conv_net():
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("conv1", torch.nn.Conv2d(1, 4, 3))
    model.add_module("relu1", torch.nn.ReLU())
    model.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", torch.nn.Flatten())
    model.add_module("fc", torch.nn.Linear(4, 3))
    return model


X = np.random.default_rng(0).normal(size=(6, 1, 10, 10)).astype(np.float32)


def test_the_projection_of_a_first_layer_map_is_its_filter_at_the_strongest_place():
    model = conv_net()
    channel = 2
    projection = Deconvnet(model).attribute(X[:1], layer="conv1", channel=channel)[0, 0]
    with torch.no_grad():
        maps = model.conv1(torch.from_numpy(X[:1]))[0, channel].numpy()
    r, c = np.unravel_index(np.argmax(maps), maps.shape)
    kernel = model.conv1.weight[channel, 0].detach().numpy()
    expected = np.zeros((10, 10), np.float32)
    expected[r : r + 3, c : c + 3] = kernel  # d(strongest activation)/d(input)
    np.testing.assert_allclose(projection, expected, atol=1e-6)
    guided = GuidedBackprop(model).attribute(X[:1], layer="conv1", channel=channel)
    np.testing.assert_allclose(guided[0, 0], expected, atol=1e-6)  # no ReLU before conv1


def test_a_layer_that_is_not_there_is_refused_with_the_names():
    with pytest.raises(UnknownNameError, match="conv1"):
        Deconvnet(conv_net()).attribute(X[:1], layer="conv2", channel=0)
    with pytest.raises(WeightlapseError, match="takes no layer"):
        Saliency(conv_net()).attribute(X[:1], layer="conv1")
    with pytest.raises(UnknownNameError):
        GradCAM(conv_net()).attribute(X[:1], layer="nope")


def test_the_zeiler_fergus_figure_shows_each_maps_strongest_inputs():
    model = conv_net()
    fig = feature_projections(model, X, "conv1", top=3, channels=2)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 2 * 3
    with torch.no_grad():
        maps = model.conv1(torch.from_numpy(X)).numpy()
    strength = maps.reshape(6, 4, -1).max(axis=2)
    busiest = int(np.argmax(strength.max(axis=0)))
    best = np.argsort(-strength[:, busiest], kind="stable")[:3]
    titles = [fig.axes[i].get_title() for i in range(3)]
    assert [int(t.split(":")[0][1:]) for t in titles] == list(best)


def test_keras_deconvnet_of_a_layer_map():
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(3, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    x = np.moveaxis(X[:2, :, :8, :8], 1, -1)
    projection = Deconvnet(model).attribute(x, layer="conv", channel=1)
    maps = keras.ops.convert_to_numpy(model.layers[0](x))[0, :, :, 1]
    r, c = np.unravel_index(np.argmax(maps), maps.shape)
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)[:, :, 0, 1]
    np.testing.assert_allclose(projection[0, r : r + 3, c : c + 3, 0], kernel, atol=1e-5)


@pytest.mark.slow
def test_explain_fits_an_rgb_image_to_a_gray_model_and_names_layers(tmp_path):
    keras = pytest.importorskip("keras")
    import imageio.v3 as iio

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.save(tmp_path / "m.keras")
    rgba = (np.random.default_rng(0).random((16, 12, 4)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "x.png", rgba)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "weightlapse.cli", "explain", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
        )

    ok = cli(tmp_path / "m.keras", tmp_path / "x.png", "-o", tmp_path / "s.png")
    assert ok.returncode == 0, ok.stderr
    no_layer = cli(
        tmp_path / "m.keras", tmp_path / "x.png", "-m", "gradcam", "-o", tmp_path / "g.png"
    )
    assert no_layer.returncode == 2 and "--layer" in no_layer.stderr and "conv" in no_layer.stderr
    assert len(no_layer.stderr.strip().splitlines()) == 1
    np.save(
        tmp_path / "batch.npy", np.random.default_rng(1).random((12, 8, 8, 1)).astype(np.float32)
    )
    zf = cli(
        tmp_path / "m.keras",
        tmp_path / "batch.npy",
        "-m",
        "deconvnet",
        "--layer",
        "conv",
        "--top",
        "4",
        "-o",
        tmp_path / "zf.png",
    )
    assert zf.returncode == 0, zf.stderr
