"""Every picture tells the truth: checked by the pixels or numbers each view draws."""

from __future__ import annotations

import numpy as np
import pytest

import weightlapse
from weightlapse.views.activations import activation_panels
from weightlapse.views.colors import GAP_COLOR
from weightlapse.views.filters import filter_panels
from weightlapse.views.weight_images import weight_panels


def planted_rgb(last: bool) -> np.ndarray:
    """Two units over a 4x4 RGB input: unit 0 is +1 in R, 0 in G, -1 in B."""
    planes = np.stack([np.ones((4, 4)), np.zeros((4, 4)), -np.ones((4, 4))])  # (3, 4, 4)
    unit0 = np.moveaxis(planes, 0, -1) if last else planes
    return np.stack([unit0.ravel(), -unit0.ravel()])  # (units, inputs): out,in


@pytest.mark.parametrize("last", [False, True], ids=["channels-first", "channels-last"])
def test_rgb_weight_images_show_the_planes_unscrambled(last):
    shape = (4, 4, 3) if last else (3, 4, 4)
    panels = weight_panels(planted_rgb(last), image_shape=shape, input_axis=1)
    image = panels.images[0]
    assert image.shape == (4, 12)
    np.testing.assert_array_equal(image[:, :4], 1.0)  # R
    np.testing.assert_array_equal(image[:, 4:8], 0.0)  # G
    np.testing.assert_array_equal(image[:, 8:], -1.0)  # B
    assert "RGB" in panels.title


def test_a_dense_layer_on_conv_features_is_drawn_as_maps_not_a_fake_image(tmp_path):
    torch = pytest.importorskip("torch")
    import weightlapse.torch

    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(16 * 7 * 7, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with weightlapse.torch.watch(model, tmp_path / "r", optimizer=opt, snapshots=1):
        model(torch.zeros(2, 1, 28, 28)).sum().backward()
        opt.step()
    run = weightlapse.open(tmp_path / "r")
    assert run.meta["layer_inputs"]["3"] == [16, 7, 7]
    panels = weight_panels(run, "3.weight")
    assert "16 maps of 7x7" in panels.title and len(panels.images) == 10
    weights = run["3.weight"].at(-1)
    unit3 = panels.images[3]
    np.testing.assert_array_equal(unit3[8:15, 0:7], weights[3].reshape(16, 7, 7)[4])  # map 4
    gaps = panels.gaps[3]
    assert gaps[7].all() and not gaps[8:15, 0:7].any()  # separators are gaps, not NaN weights


def test_flat_inputs_are_a_heat_map_and_the_title_says_so(tmp_path):
    with weightlapse.create(
        tmp_path / "r", snapshots=1, meta={"layer_inputs": {"fc": [300]}}
    ) as run:
        run.describe("fc/kernel", layout="in,out", layer="fc")
        run.log(0, {"fc/kernel": np.random.default_rng(0).normal(size=(300, 10))})
    panels = weight_panels(weightlapse.open(tmp_path / "r"), "fc/kernel")
    assert len(panels.images) == 1 and "300 flat features" in panels.title


def test_filter_grids_use_one_symmetric_diverging_scale_and_a_gap_colour():
    k = np.random.default_rng(0).normal(size=(6, 2, 3, 3))
    k[:, 1] *= 10  # a channel ten times larger must look larger
    panels = filter_panels(k, ncols=3)
    limit = float(np.abs(k).max())
    assert panels.limits == [(-limit, limit)] * 2 and panels.cmap == "seismic"
    assert panels.colorbar_label == "weight"
    gap = panels.gaps[0]
    assert gap.any() and np.isnan(panels.images[0][gap]).all()  # gaps are not weights
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = weightlapse.filter_grid(k, ncols=3)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    grey = tuple(int(GAP_COLOR[i : i + 2], 16) for i in (1, 3, 5))
    assert (np.abs(pixels.astype(int) - grey).sum(axis=2) < 6).sum() > 20
    assert len(fig.axes) == 3  # two grids and one colour bar


def test_the_overview_never_paints_a_bias_that_started_at_zero_as_nan(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        for step in range(4):
            run.log(step, {"w": np.full(3, 1.0 + step), "b": np.full(3, 0.1 * step)})
    fig = weightlapse.overview(weightlapse.open(tmp_path / "r"))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[1].startswith("b (0 at start")
    mesh = ax.collections[0]
    values = np.ma.filled(mesh.get_array(), np.nan).reshape(2, 4)
    np.testing.assert_allclose(values[1, 1:], [1.0, 2.0, 3.0])  # relative to step 1
    np.testing.assert_allclose(values[0], [1.0, 2.0, 3.0, 4.0])


def test_signed_activations_go_on_the_diverging_scale():
    signed = np.linspace(-1, 1.1, 2 * 4 * 4).reshape(2, 4, 4)
    panels = activation_panels(signed, channels_last=False)
    assert panels.cmap == "seismic" and panels.limits[0] == (-1.1, 1.1)
    relu = activation_panels(np.abs(signed), channels_last=False)
    assert relu.cmap == "viridis"


def test_an_animation_title_states_the_scale_it_draws(tmp_path):
    from weightlapse.views.animate import IMAGE_VIEWS, _share_limits

    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step, size in enumerate([0.407, 0.77]):
            run.log(step, {"k": np.linspace(-size, size, 16).reshape(4, 4)})
    run = weightlapse.open(tmp_path / "r")
    panels = [IMAGE_VIEWS["weights"](run, "k", step=s, image_shape=(2, 2)) for s in (0, 1)]
    _share_limits(panels)
    assert "scale ±0.77" in panels[0].heading and "scale ±0.407" not in panels[0].heading


def test_an_all_zero_map_shows_nothing_and_has_a_colour_bar():
    from weightlapse.views.attributions import attribution_grid, attribution_overlay

    digit = np.zeros((8, 8))
    digit[2:6, 3:5] = 1.0
    fig = attribution_overlay(digit, np.zeros((8, 8)))
    map_axes = fig.axes[1]
    assert len(map_axes.images) == 1  # the map alone: no digit under it
    assert np.ptp(map_axes.images[0].get_array()) == 0
    assert len(fig.axes) == 3  # input, map, colour bar
    grid = attribution_grid(digit[None], {"saliency": np.zeros((1, 8, 8))})
    assert [len(ax.images) for ax in grid.axes[:2]] == [1, 1] and len(grid.axes) == 3


def test_a_dense_change_heat_map_is_drawn_per_unit_or_wrapped(tmp_path):
    meta = {"layer_inputs": {"fc": [4, 3, 3], "flat": [784]}, "channels": "first"}
    with weightlapse.create(tmp_path / "r", snapshots=1, meta=meta) as run:
        run.describe("fc.weight", layout="out,in", layer="fc")
        run.describe("flat.weight", layout="out,in", layer="flat")
        rng = np.random.default_rng(0)
        for step in range(2):
            run.log(
                step,
                {"fc.weight": rng.normal(size=(5, 36)), "flat.weight": rng.normal(size=(10, 784))},
            )
    run = weightlapse.open(tmp_path / "r")
    from weightlapse.views.heatmap import heatmap_panels

    maps = heatmap_panels(run, "fc.weight", step=1, minus_step=0)
    assert len(maps.images) == 5 and "4 maps of 3x3" in maps.title and "minus step 0" in maps.title
    change = run["fc.weight"].at(1) - run["fc.weight"].at(0)
    np.testing.assert_allclose(maps.images[2][0:3, 0:3], change[2].reshape(4, 3, 3)[0])
    strip = heatmap_panels(run, "flat.weight", step=1, minus_step=0)
    assert "wrapped every 64" in strip.title and strip.images[0].shape[0] > 100


def test_a_long_title_is_wrapped_not_cut(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    name = "functional/layers/sequential/layers/conv2d/vars/0/a/very/long/name/indeed/" * 2
    fig = weightlapse.weight_images(np.ones((4, 2)), name, image_shape=(2, 2))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig._suptitle.get_window_extent(canvas.get_renderer())
    width = fig.get_figwidth() * fig.dpi
    assert box.x0 >= 0 and box.x1 <= width + 1


def test_the_neuron_figure_labels_the_steps_of_both_panels(tmp_path):
    from weightlapse.demos.neuron import neuron_figure

    with weightlapse.create(tmp_path / "r") as run:
        for step in range(5):
            run.log(step, {"dense/kernel": np.ones((2, 1)) * step, "dense/bias": np.ones(1)})
    fig = neuron_figure(weightlapse.open(tmp_path / "r"), "dense/kernel", "dense/bias", "x")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    top = fig.axes[0]
    assert any(label.get_visible() and label.get_text() for label in top.get_xticklabels())


def test_a_first_layer_on_flat_images_still_draws_templates(tmp_path):
    torch = pytest.importorskip("torch")
    import weightlapse.torch

    model = torch.nn.Sequential(torch.nn.Linear(784, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with weightlapse.torch.watch(model, tmp_path / "r", optimizer=opt, snapshots=1):
        model(torch.zeros(2, 784)).sum().backward()
        opt.step()
    panels = weight_panels(weightlapse.open(tmp_path / "r"), "0.weight")
    assert len(panels.images) == 10 and panels.images[0].shape == (28, 28)
