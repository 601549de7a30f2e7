"""TensorBoard export: statistics as scalars, each tensor's picture at its snapshots in
the figures' colour policy, the --images choice, tensor globs, and progress."""

from __future__ import annotations

import io

import numpy as np
import pytest

import weightlapse
from weightlapse.io.export import export_tensorboard

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "run"
    rng = np.random.default_rng(0)
    with weightlapse.create(path, snapshots=2, gradients=True, updates=True) as writer:
        writer.set_meta(input_shape=[1, 4, 4], channels="first")
        writer.describe("conv.weight", layout="out,in,h,w", layer="conv")
        writer.describe("fc.weight", layout="out,in", layer="fc")
        for step in range(5):
            conv = rng.normal(size=(3, 1, 2, 2))
            if step == 4:
                conv[0, 0, 0, 0] = np.nan
            params = {
                "conv.weight": conv,
                "fc.weight": rng.normal(size=(2, 16)),
                "fc.bias": np.full(2, float(step)),
            }
            writer.log(
                step,
                params,
                grads={k: v * 0.1 for k, v in params.items()},
                activations={"conv": rng.normal(size=(2, 3, 3, 3))},  # 2 probes, 3 maps
                loss=1.0 / (step + 1),
            )
    return weightlapse.open(path)


def load(logdir):
    events = EventAccumulator(
        str(logdir), size_guidance={"histograms": 0, "images": 0, "scalars": 0}
    )
    events.Reload()
    return events


def test_statistics_and_update_ratios_are_scalars(run, tmp_path):
    events = load(export_tensorboard(run, tmp_path / "tb", images="none"))
    tags = events.Tags()["scalars"]
    assert (
        "scalars/loss" in tags
        and "param.l2/fc.weight" in tags
        and "grad.nan_count/conv.weight" in tags
    )
    l2 = events.Scalars("param.l2/fc.bias")
    assert [e.step for e in l2] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([e.value for e in l2], run["fc.bias"].stats["l2"], rtol=1e-6)
    nans = events.Scalars("param.nan_count/conv.weight")
    assert [e.value for e in nans] == [0, 0, 0, 0, 1]
    ratio = events.Scalars("update_ratio/fc.weight")
    np.testing.assert_allclose(
        [e.value for e in ratio], run["fc.weight"].update_ratio.values, rtol=1e-6
    )
    assert events.Tags()["images"] == []


def test_snapshots_draw_each_tensor_s_best_picture_in_the_colour_policy(run, tmp_path):
    from PIL import Image

    events = load(export_tensorboard(run, tmp_path / "tb"))
    images = sorted(events.Tags()["images"])
    assert images == [
        "activations/conv",  # the probe inputs' feature maps
        "filters/conv.weight",
        "heatmap/fc.bias",
        "weights/fc.weight",  # 16 inputs recorded as a 4x4 image: per-unit templates
    ]
    steps = run["conv.weight"].snapshot_steps
    shots = events.Images("filters/conv.weight")
    assert [i.step for i in shots] == steps
    last = np.asarray(Image.open(io.BytesIO(shots[-1].encoded_image_string)).convert("RGB"))
    green = np.all(last == (0, 180, 0), axis=-1)  # the NaN weight, in the NaN colour
    assert (
        green.any()
        and not np.all(
            np.asarray(Image.open(io.BytesIO(shots[0].encoded_image_string))) == (0, 180, 0), -1
        ).any()
    )


def test_all_draws_every_picture_that_fits_and_tensors_limit_the_export(run, tmp_path):
    calls = []
    logdir = export_tensorboard(
        run,
        tmp_path / "tb",
        images="all",
        tensors=["conv*"],
        progress=lambda done, total: calls.append((done, total)),
    )
    events = load(logdir)
    assert sorted(events.Tags()["images"]) == [  # conv's activations come with its kernel
        "activations/conv",
        "filters/conv.weight",
        "heatmap/conv.weight",
    ]
    assert sorted(events.Tags()["histograms"]) == [
        "activation/conv",
        "grad/conv.weight",
        "param/conv.weight",
        "update/conv.weight",
    ]
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))


def test_a_wrong_choice_says_what_is_right(run, tmp_path):
    with pytest.raises(weightlapse.WeightlapseError, match="none, snapshots, all"):
        export_tensorboard(run, tmp_path / "tb", images="some")
    with pytest.raises(weightlapse.UnknownTensorError, match="nope"):
        export_tensorboard(run, tmp_path / "tb", tensors=["nope*"])
