"""Filter grids by their pixels: each filter's values in its own cell, in both layouts."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import weightlapse
from weightlapse.views.filters import filter_panels, to_out_in_spatial


def cell(mosaic, i, ncols, h, w, pad=1):
    r, c = divmod(i, ncols)
    return mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w]


def known_kernel(n_out=6, n_in=2, h=3, w=3):
    """Torch layout (out, in, h, w); every value says where it belongs."""
    k = np.zeros((n_out, n_in, h, w))
    for f in range(n_out):
        for c in range(n_in):
            k[f, c] = 100 * f + 10 * c + np.arange(h * w).reshape(h, w) / 10
    return k


@pytest.mark.parametrize("layout", ["out,in,h,w", "h,w,in,out"])
def test_each_filter_lands_in_its_own_cell_in_both_layouts(layout):
    k = known_kernel()
    given = k if layout == "out,in,h,w" else np.transpose(k, (2, 3, 1, 0))
    panels = filter_panels(given, "conv", layout=layout, ncols=3)
    assert panels.titles == ["input channel 0", "input channel 1"]
    for c, mosaic in enumerate(panels.images):
        for f in range(6):
            np.testing.assert_array_equal(cell(mosaic, f, 3, 3, 3), k[f, c])


def test_the_layout_is_read_from_the_run(tmp_path):
    k = known_kernel()
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        run.log(0, {"conv/kernel": np.transpose(k, (2, 3, 1, 0))})
    # a generic run has no layout: the square spatial axes in front say it is Keras'
    panels = filter_panels(weightlapse.open(tmp_path / "r"), "conv/kernel", ncols=3)
    np.testing.assert_array_equal(cell(panels.images[1], 4, 3, 3, 3), k[4, 1])
    assert "at step 0" in panels.title


def test_a_pure_red_filter_is_drawn_red():
    k = np.full((2, 3, 4, 4), -1.0)  # 2 RGB filters
    k[0, 0] = 1.0  # filter 0: red channel high, green and blue low
    k[1] = 0.0
    fig = weightlapse.filter_grid(k, ncols=2)
    image = fig.axes[0].images[0]
    rgb = image.get_array()
    np.testing.assert_allclose(cell(rgb, 0, 2, 4, 4), np.broadcast_to([1.0, 0.0, 0.0], (4, 4, 3)))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    red = (pixels[..., 0] > 240) & (pixels[..., 1] < 15) & (pixels[..., 2] < 15)
    assert red.sum() > 100


def test_sixteen_input_channels_give_sixteen_grids_and_a_channel_can_be_chosen():
    k = np.random.default_rng(0).normal(size=(8, 16, 3, 3))
    assert len(filter_panels(k).images) == 16
    one = filter_panels(k, channel=5, ncols=4)
    assert one.titles == ["input channel 5"]
    np.testing.assert_array_equal(cell(one.images[0], 7, 4, 3, 3), k[7, 5])


def test_per_filter_scaling_is_asked_for_and_said():
    k = (
        np.random.default_rng(1).normal(size=(4, 1, 3, 3))
        * np.array([1, 10, 100, 1000])[:, None, None, None]
    )
    panels = filter_panels(k, scale="filter", ncols=2)
    for f in range(4):
        c = cell(panels.images[0], f, 2, 3, 3)
        assert np.abs(c).max() == pytest.approx(1)  # each filter to its own max |w|
    assert "each filter scaled" in panels.title and panels.limits == [(-1.0, 1.0)]


def test_conv1d_and_conv3d_kernels_get_a_picture():
    conv1d = np.random.default_rng(2).normal(size=(5, 2, 7))  # (out, in, w)
    panels = filter_panels(conv1d, layout="out,in,w", ncols=5)
    np.testing.assert_array_equal(cell(panels.images[0], 3, 5, 1, 7), conv1d[3, 0][None])
    conv3d = np.random.default_rng(3).normal(size=(4, 2, 3, 5, 5))  # (out, in, d, h, w)
    panels = filter_panels(conv3d, layout="out,in,d,h,w", ncols=2)
    slices = cell(panels.images[1], 2, 2, 5, 15)
    np.testing.assert_array_equal(slices[:, 5:10], conv3d[2, 1, 1])  # depth slice 1


def test_a_dense_matrix_is_refused_with_advice():
    with pytest.raises(weightlapse.WeightlapseError, match="not a conv kernel"):
        to_out_in_spatial(np.ones((4, 5)))
