import numpy as np
import pytest
from matplotlib.colors import to_rgba

import weightlapse
from weightlapse.views.colors import NAN_COLOR
from weightlapse.views.heatmap import block_reduce, heatmap_panels
from weightlapse.views.histograms import common_grid


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    steps = [0, 1, 2, 4, 8, 16, 32]  # irregular, like a log-spaced schedule
    with weightlapse.create(tmp_path / "r", snapshots=1, histograms=1, updates=True) as r:
        for i, step in enumerate(steps):
            w = rng.normal(0, 1 + i, size=(30, 20)).astype(np.float32)
            if step == 8:
                w[0, :3] = [np.nan, np.inf, -np.inf]
            grow = np.full(5, 2.0**i)  # a layer that explodes
            r.log(
                step, {"a/w": w, "a/b": w[0], "grow": grow, "still": np.ones(4)}, loss=1.0 / (i + 1)
            )
    return weightlapse.open(tmp_path / "r")


def test_block_reduction_by_mean_and_by_max_magnitude():
    m = np.arange(16, dtype=float).reshape(4, 4) - 8
    mean, block = block_reduce(m, 2, "mean")
    assert block == (2, 2)
    np.testing.assert_array_equal(mean, [[-5.5, -3.5], [2.5, 4.5]])
    biggest, _ = block_reduce(m, 2, "maxabs")
    np.testing.assert_array_equal(biggest, [[-8, -6], [5, 7]])


def test_a_big_matrix_is_reduced_and_says_so(run):
    panels = heatmap_panels(np.ones((1200, 300)), max_size=512, reduce="maxabs")
    assert panels.images[0].shape == (400, 300)
    assert "maxabs of 3x1 blocks" in panels.title


def test_heatmap_of_the_change_between_two_steps(run):
    panels = heatmap_panels(run, "a/w", step=4, minus_step=0)
    np.testing.assert_allclose(panels.images[0], run["a/w"].at(4) - run["a/w"].at(0))
    lo, hi = panels.limits[0]
    assert lo == -hi and "step 4 minus step 0" in panels.title


def test_histogram_heat_map_columns_hold_every_finite_element(run):
    hist = run["a/w"].histograms
    matrix, grid = common_grid(hist, 50)
    expected = [600] * 4 + [597] + [600] * 2  # step 8 has a NaN and two Infs
    np.testing.assert_allclose(matrix.sum(axis=0), expected)
    assert grid[0] <= np.nanmin(hist.edges) and grid[-1] >= np.nanmax(hist.edges)
    fig = weightlapse.histograms_over_time(run, "a/w", value_bins=50)
    mesh = fig.axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(50, 7).sum(axis=0), expected)
    assert "the 7 steps that have one" in fig.axes[0].get_title()
    assert "NaN/Inf from step 8" in fig.axes[0].get_title()


def test_ridgeline_draws_the_chosen_steps(run):
    fig = weightlapse.histogram_ridgeline(run, "a/w", steps=[0, 32])
    labels = [t.get_text().strip() for t in fig.axes[0].texts]
    assert labels == ["step 32", "step 0"]
    with pytest.raises(weightlapse.WeightlapseError, match="not recorded"):
        weightlapse.histogram_ridgeline(run, "a/w", steps=[3])


def test_statistics_over_time_plot_the_recorded_numbers(run):
    fig = weightlapse.statistics_over_time(run, "a", stats=["l2"])
    main = fig.axes[0]
    lines = {line.get_label(): line for line in main.get_lines()}
    np.testing.assert_array_equal(lines["a/w l2"].get_ydata(), run["a/w"].stats["l2"])
    np.testing.assert_array_equal(lines["a/w l2"].get_xdata(), run.steps)
    ratio_axes = fig.axes[1]
    assert ratio_axes.get_yscale() == "log"
    loss_axes = [ax for ax in fig.axes if ax.get_ylabel() == "loss"]
    assert loss_axes and loss_axes[0].get_lines()[0].get_ydata()[0] == 1.0
    with pytest.raises(weightlapse.UnknownTensorError, match="Did you mean"):
        weightlapse.statistics_over_time(run, "a/ww")


def test_overview_makes_the_exploding_tensor_stand_out(run):
    fig = weightlapse.overview(run, stat="l2")
    mesh = fig.axes[0].collections[0]
    values = np.ma.getdata(mesh.get_array()).reshape(4, 7)
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    grow, still = names.index("grow"), names.index("still")
    assert values[grow, -1] == pytest.approx(64.0)  # 2**6 times its first value
    np.testing.assert_array_equal(values[still], 1.0)


def test_overview_draws_nan_statistics_in_the_nan_colour(tmp_path):
    with weightlapse.create(tmp_path / "r") as r:
        r.log(0, {"w": np.ones(3)})
        r.log(1, {"w": np.full(3, np.nan)})
    fig = weightlapse.overview(weightlapse.open(tmp_path / "r"))
    overlay = fig.axes[0].collections[1]
    assert overlay.cmap(0.5) == pytest.approx(to_rgba(NAN_COLOR))
    assert not np.ma.getmaskarray(overlay.get_array()).reshape(1, 2)[0, 1]


def test_the_overview_of_a_long_run_reads_a_bounded_number_of_chunks(
    tmp_path, monkeypatch, store_reads
):
    """Over more steps than its columns, the overview reads the statistics of at most
    SPREAD_BLOCKS evenly spread chunks of steps (first and last among them), and every
    cell it draws is the value recorded at its step."""

    from weightlapse.store import layout

    monkeypatch.setattr("weightlapse.run.SPREAD_BLOCKS", 3)
    chunk = layout.CHUNK_STEPS_STATS
    total = 9 * chunk + 10  # 10 chunks of steps
    with weightlapse.create(tmp_path / "r", snapshots=None) as r:
        for step in range(total):
            r.log(step, {"w": np.full(4, float(step)), "b": np.full(2, -float(step))})
    run = weightlapse.open(tmp_path / "r")
    read = store_reads
    read.clear()  # the reads of the view alone
    fig = weightlapse.overview(run, stat="max", relative=False, columns=40)
    blocks = {int(k.split("/c/")[1].split("/")[0]) for k in read if "param/stats/c/" in k}
    assert len(blocks) == 3 and {0, 9} <= blocks
    values = np.ma.getdata(fig.axes[0].collections[0].get_array()).reshape(2, 40)
    sampled = values[0]  # w's max is its step
    assert sampled[0] == 0 and sampled[-1] == total - 1
    assert set((sampled // chunk).astype(int).tolist()) == blocks
    np.testing.assert_array_equal(values[1], -sampled)  # b: the same steps, its own values
    whole = weightlapse.overview(run, stat="max", relative=False, columns=None)
    assert np.ma.getdata(whole.axes[0].collections[0].get_array()).size == 2 * total


def test_histograms_and_trajectories_draw_plain_arrays_too():
    from weightlapse.history import Histograms, Trajectory

    counts = np.array([[1, 2, 3], [3, 2, 1]])
    edges = np.array([[0.0, 1, 2, 3], [1.0, 2, 3, 4]])
    fig = weightlapse.histograms_over_time(
        Histograms(np.array([0, 10]), counts, edges), "w", value_bins=8
    )
    mesh = fig.axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(8, 2).sum(axis=0), [6, 6])
    traj = Trajectory(np.array([0, 1, 2]), np.array([[0.0], [0.5], [1.0]]), [(0,)])
    line = weightlapse.trajectories(traj, "w").axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_ydata(), [0.0, 0.5, 1.0])
