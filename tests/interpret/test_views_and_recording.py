import subprocess
import sys

import numpy as np
import pytest

import weightlapse
from weightlapse.interpret.methods import GradCAM, Saliency
from weightlapse.views.attributions import as_heat, attribution_grid, attribution_overlay

torch = pytest.importorskip("torch")


def model_and_inputs():
    torch.manual_seed(0)
    m = torch.nn.Sequential()
    m.add_module("conv", torch.nn.Conv2d(1, 4, 3, padding=1))
    m.add_module("relu", torch.nn.ReLU())
    m.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    m.add_module("flat", torch.nn.Flatten())
    m.add_module("fc", torch.nn.Linear(4, 3))
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    return m, x


def test_heat_is_the_largest_magnitude_over_channels():
    a = np.zeros((3, 2, 2))
    a[0, 0, 0], a[2, 0, 0], a[1, 1, 1] = 1.0, -4.0, 2.0
    np.testing.assert_array_equal(as_heat(a), [[4.0, 0.0], [0.0, 2.0]])
    np.testing.assert_array_equal(as_heat(np.moveaxis(a, 0, -1)), [[4.0, 0.0], [0.0, 2.0]])


def test_overlay_and_side_by_side_draw_the_map_over_the_input():
    model, x = model_and_inputs()
    maps = Saliency(model).attribute(x[:1], target=0)
    fig = attribution_overlay(x[0], maps[0], alpha=0.3, side_by_side=False)  # asked for
    image, heat = fig.axes[0].images
    np.testing.assert_allclose(heat.get_array(), np.abs(maps[0, 0]))
    assert heat.get_alpha() == 0.3 and heat.get_extent() == image.get_extent()
    side = attribution_overlay(x[0], maps[0])  # the default: the map on its own
    assert len([ax for ax in side.axes if ax.images]) == 2


def test_grid_of_methods_by_inputs():
    model, x = model_and_inputs()
    maps = {
        "saliency": Saliency(model).attribute(x, target=0),
        "gradcam": GradCAM(model).attribute(x, target=0, layer="relu"),
    }
    fig = attribution_grid(x, maps)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 3 * 3
    np.testing.assert_allclose(drawn[2 * 3 + 2].images[0].get_array(), maps["gradcam"][2])
    over = [ax for ax in attribution_grid(x, maps, overlay=True).axes if ax.images]
    np.testing.assert_allclose(over[2 * 3 + 2].images[1].get_array(), maps["gradcam"][2])


def test_maps_recorded_over_training_equal_the_maps_at_that_step(tmp_path):
    from weightlapse.torch import watch

    model, x = model_and_inputs()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with watch(
        model,
        tmp_path / "r",
        optimizer=opt,
        snapshots=3,
        probe_inputs=x,
        probe_targets=[0, 1, 2],
        attributions=["saliency", "gradcam:relu"],
    ):
        for _ in range(6):
            opt.zero_grad()
            model(torch.randn(8, 1, 8, 8)).logsumexp(1).mean().backward()
            opt.step()
    run = weightlapse.open(tmp_path / "r")
    assert run.attributions == ["saliency", "gradcam:relu"]
    assert run.history("saliency", "attribution").snapshot_steps == [0, 3, 6]
    np.testing.assert_allclose(
        run.history("saliency", "attribution").at(6),
        Saliency(model).attribute(x, target=[0, 1, 2]),
        rtol=1e-5,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        run.history("gradcam:relu", "attribution").at(6),
        GradCAM(model).attribute(x, target=[0, 1, 2], layer="relu"),
        rtol=1e-5,
        atol=1e-7,
    )
    # they change over training, and animate like any other view
    assert not np.allclose(
        run.history("saliency", "attribution").at(0), run.history("saliency", "attribution").at(6)
    )
    gif = weightlapse.animate(run, "attributions", "saliency", tmp_path / "s.gif", progress=False)
    import imageio.v3 as iio

    assert iio.imread(gif).shape[0] == 3


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "weightlapse.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_explain_a_saved_torch_model_needs_trust_and_then_draws(tmp_path):
    model, x = model_and_inputs()
    torch.save(model, tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", x[0])
    refused = cli("explain", tmp_path / "model.pt", tmp_path / "x.npy", "-o", tmp_path / "a.png")
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr
    scripted = torch.jit.script(model)
    scripted.save(str(tmp_path / "scripted.pt"))
    ok = cli("explain", tmp_path / "scripted.pt", tmp_path / "x.npy", "-o", tmp_path / "s.png")
    assert ok.returncode == 0, ok.stderr
    hooks = cli(
        "explain",
        tmp_path / "scripted.pt",
        tmp_path / "x.npy",
        "-m",
        "gradcam",
        "--layer",
        "relu",
        "-o",
        tmp_path / "c.png",
    )
    assert hooks.returncode == 2 and "eager model" in hooks.stderr
    ok = cli(
        "explain",
        tmp_path / "model.pt",
        tmp_path / "x.npy",
        "--trust-pickle",
        "-m",
        "guided",
        "-m",
        "gradcam",
        "--layer",
        "relu",
        "-o",
        tmp_path / "grid.png",
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "grid.png").stat().st_size > 5000


@pytest.mark.slow
def test_explain_a_saved_keras_model_on_an_image(tmp_path):
    keras = pytest.importorskip("keras")
    import imageio.v3 as iio

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    model.save(tmp_path / "m.keras")
    iio.imwrite(
        tmp_path / "digit.png", (np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)
    )
    proc = cli(
        "explain",
        tmp_path / "m.keras",
        tmp_path / "digit.png",
        "-m",
        "gradcam",
        "--layer",
        "conv",
        "--target",
        "2",
        "-o",
        tmp_path / "cam.png",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cam.png").stat().st_size > 5000


def test_the_keras_recorder_keeps_activations_and_maps_of_probe_inputs(tmp_path):
    keras = pytest.importorskip("keras")
    from weightlapse.keras import Recorder

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, name="fc"),
        ]
    )
    model.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 32)
    probes = x[:2]
    recorder = Recorder(
        tmp_path / "r",
        snapshots="epoch",
        probe_inputs=probes,
        activations=["conv"],
        attributions=["saliency", "gradcam:conv"],
        probe_targets=[0, 1],
    )
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[recorder])
    recorder.close()
    run = weightlapse.open(tmp_path / "r")
    assert run.activations == ["conv"] and run.attributions == ["saliency", "gradcam:conv"]
    assert run.history("saliency", "attribution").snapshot_steps == [4, 8]
    np.testing.assert_allclose(
        run.history("saliency", "attribution").at(8),
        Saliency(model).attribute(probes, target=[0, 1]),
        rtol=1e-4,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        run.history("conv", "activation").at(8),
        weightlapse.activations(model, probes, "conv"),
        rtol=1e-5,
    )
    with pytest.raises(weightlapse.WeightlapseError, match="probe_inputs"):
        Recorder(tmp_path / "r2", attributions=["saliency"])
