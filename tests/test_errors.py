import numpy as np
import pytest

import weightlapse


@pytest.fixture
def run(tmp_path):
    with weightlapse.create(tmp_path / "r", snapshots=None) as r:
        r.log(
            0,
            {
                "conv1/kernel": np.ones((3, 3)),
                "conv1/bias": np.ones(3),
                "dense/kernel": np.ones((4, 2)),
            },
            loss=1.0,
        )
    return weightlapse.open(tmp_path / "r")


def test_an_unknown_tensor_name_lists_the_close_ones(run):
    with pytest.raises(weightlapse.UnknownTensorError) as info:
        run["conv1/kernal"]
    message = str(info.value)
    assert "'conv1/kernal'" in message and "Did you mean: conv1/kernel" in message
    assert info.value.close_matches[0] == "conv1/kernel"
    assert isinstance(info.value, KeyError)


def test_unknown_scalar_statistic_and_kind_are_named(run):
    with pytest.raises(weightlapse.UnknownNameError, match="Did you mean: loss"):
        run.scalar("losss")
    with pytest.raises(weightlapse.UnknownNameError, match="Did you mean: l2"):
        run["dense/kernel"].stats["l22"]
    with pytest.raises(weightlapse.UnknownNameError, match="recorded kind"):
        run["dense/kernel"].grad


def test_no_snapshots_says_how_to_get_them(run):
    with pytest.raises(weightlapse.StepNotRecordedError, match="snapshots="):
        run["dense/kernel"].at(0)


def test_a_run_opened_for_reading_cannot_log(run):
    with pytest.raises(weightlapse.WeightlapseError, match="weightlapse.create"):
        run.log(1, {"w": np.ones(1)})


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(weightlapse.RunFormatError, match="No weightlapse run"):
        weightlapse.open(tmp_path / "nothing")


def test_a_run_its_tensors_and_stats_show_themselves_in_a_notebook(tmp_path):
    with weightlapse.create(tmp_path / "r") as r:
        for step in range(4):
            r.log(step, {"<b>w</b>": np.full(3, float(step))}, loss=1.0)
    run = weightlapse.open(tmp_path / "r")
    page = run._repr_html_()
    assert "&lt;b&gt;w&lt;/b&gt;" in page and "<b>w</b>" not in page  # names are escaped
    assert "4 recorded steps 0..3" in page and "ended" in page and "▁" in page
    stats = run["<b>w</b>"].stats
    assert repr(stats).startswith("Stats(4 steps; last l2=") and "0x" not in repr(stats)
    assert "<table>" in stats._repr_html_() and "<table>" in run["<b>w</b>"]._repr_html_()
