import imageio.v3 as iio
import numpy as np
import pytest

import weightlapse
from weightlapse.views.animate import frames


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 3))
    with weightlapse.create(tmp_path / "r", snapshots=1) as r:
        for step in range(6):
            r.log(
                step,
                {"dense/kernel": w + step * (np.arange(16)[:, None] < 8)},
                loss=1.0,
                epoch=step // 3,
            )
    return weightlapse.open(tmp_path / "r")


def test_one_frame_per_requested_step_and_change_shows(run):
    images = frames(run, "weights", "dense/kernel", steps=[0, 2, 5])
    assert len(images) == 3
    assert images[0].shape == images[2].shape
    assert not np.array_equal(images[0], images[2])


def test_the_colour_scale_is_fixed_across_frames_by_default(run):
    from weightlapse.views.animate import IMAGE_VIEWS, _share_limits

    panels = [IMAGE_VIEWS["weights"](run, "dense/kernel", step=s) for s in (0, 5)]
    assert panels[0].limits[0] != panels[1].limits[0]
    _share_limits(panels)
    assert panels[0].limits == panels[1].limits


def test_gif_and_mp4_have_a_frame_per_step(run, tmp_path):
    gif = weightlapse.animate(run, "weights", "dense/kernel", tmp_path / "a.gif", progress=False)
    assert iio.imread(gif).shape[0] == 6
    mp4 = weightlapse.animate(
        run, "heatmap", "dense/kernel", tmp_path / "a.mp4", steps=[0, 1, 2, 3], progress=False
    )
    video = iio.imread(mp4, plugin="FFMPEG")
    assert video.shape[0] == 4 and video.shape[1] % 16 == 0


def test_timeline_views_move_a_cursor(run):
    images = frames(run, "trajectories", "dense/kernel", steps=[0, 5])
    assert len(images) == 2 and not np.array_equal(images[0], images[1])


def test_a_wrong_file_type_or_view_is_a_clear_error(run, tmp_path):
    with pytest.raises(weightlapse.WeightlapseError, match=".gif or a .mp4"):
        weightlapse.animate(run, "weights", "dense/kernel", tmp_path / "a.avi")
    with pytest.raises(weightlapse.UnknownNameError, match="Did you mean: weights"):
        frames(run, "weight", "dense/kernel")
