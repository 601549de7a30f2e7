"""Views judged by their data and their pixels."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

import weightlapse
from weightlapse.errors import StepNotRecordedError, WeightlapseError
from weightlapse.views.colors import NAN_COLOR, NEGINF_COLOR, POSINF_COLOR


@pytest.fixture
def dense_run(tmp_path):
    rng = np.random.default_rng(0)
    kernels = {}
    with weightlapse.create(tmp_path / "r", snapshots=5, meta={"input_shape": [4, 6]}) as run:
        for step in range(11):
            k = rng.normal(size=(24, 3)).astype(np.float32)  # Keras-like (in, out)
            kernels[step] = k
            run.log(step, {"dense/kernel": k, "dense/bias": k[0]})
    return weightlapse.open(tmp_path / "r"), kernels


def images(fig):
    return [ax.images[0] for ax in fig.axes if ax.images]


def test_trajectories_draw_the_recorded_probe_values(dense_run):
    run, kernels = dense_run
    fig = weightlapse.trajectories(run, "dense/bias")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    for column, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(11))
        np.testing.assert_array_equal(line.get_ydata(), [kernels[s][0, column] for s in range(11)])
    assert "3 element(s) over 11 steps" in fig.axes[0].get_title()


def test_weight_images_put_each_units_weights_in_its_panel_on_one_symmetric_scale(dense_run):
    run, kernels = dense_run
    fig = weightlapse.weight_images(run, "dense/kernel", step=5)
    panels = images(fig)
    assert len(panels) == 3
    limit = np.abs(kernels[5]).max()
    for unit, image in enumerate(panels):
        np.testing.assert_allclose(image.get_array(), kernels[5][:, unit].reshape(4, 6))
        assert image.get_clim() == pytest.approx((-limit, limit))
        assert image.get_cmap().name.startswith("seismic")
    assert "step 5" in fig._suptitle.get_text()


def test_weight_images_read_torch_layout_the_other_way_round():
    w = np.arange(3 * 16, dtype=float).reshape(3, 16) - 20  # (out, in): 3 units of 4x4
    fig = weightlapse.weight_images(w, image_shape=(4, 4), input_axis=1)
    for unit, image in enumerate(images(fig)):
        np.testing.assert_array_equal(image.get_array(), w[unit].reshape(4, 4))


def test_nan_and_inf_get_their_own_colours_in_the_pixels():
    w = np.zeros((16, 2))
    w[5, 0], w[6, 0], w[7, 0] = np.nan, np.inf, -np.inf
    w[0, 1] = 1.0
    fig = weightlapse.weight_images(w, image_shape=(4, 4))
    image = images(fig)[0]
    rgba = image.to_rgba(image.get_array())
    assert tuple(rgba[1, 1]) == pytest.approx(to_rgba(NAN_COLOR), abs=1 / 255)  # element 5
    assert tuple(rgba[1, 2]) == pytest.approx(to_rgba(POSINF_COLOR), abs=1 / 255)
    assert tuple(rgba[1, 3]) == pytest.approx(to_rgba(NEGINF_COLOR), abs=1 / 255)
    assert "1 NaN, 2 Inf" in " ".join(fig._suptitle.get_text().split())
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].reshape(-1, 3).astype(int)
    for colour in (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR):
        want = (np.array(to_rgba(colour)[:3]) * 255).round()
        assert (np.abs(pixels - want).max(axis=1) <= 2).sum() > 50, colour


def test_image_shape_is_guessed_from_a_square_and_asked_for_otherwise():
    fig = weightlapse.weight_images(np.ones((49, 2)))
    assert images(fig)[0].get_array().shape == (7, 7)
    with pytest.raises(WeightlapseError, match="image_shape=\\(height, width\\)"):
        weightlapse.weight_images(np.ones((50, 2)))
    with pytest.raises(WeightlapseError, match="product is 49"):
        weightlapse.weight_images(np.ones((49, 2)), image_shape=(5, 5))


def test_a_step_without_a_snapshot_names_the_nearest_ones(dense_run):
    run, _ = dense_run
    with pytest.raises(StepNotRecordedError, match=r"Nearest snapshot steps: \[0, 5, 10\]"):
        weightlapse.weight_images(run, "dense/kernel", step=4)
