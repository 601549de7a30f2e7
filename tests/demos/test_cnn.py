"""The gallery demo: a small conv net with activation probes, every view, an animation."""

import imageio.v3 as iio
import pytest

import weightlapse
from weightlapse.demos.cnn import run_cnn


@pytest.mark.slow
def test_demo_cnn_writes_the_gallery(tmp_path, mnist_dir):
    pytest.importorskip("torch")
    result = run_cnn("torch", tmp_path, data=mnist_dir)
    assert result.val_accuracy[-1] > 0.9
    names = {p.name for p in result.files}
    for expected in (
        "filters-conv1.png",
        "activations-relu1.png",
        "histograms-conv2.png",
        "stats-conv1.png",
        "overview-grad-l2.png",
        "heatmap-fc-change.png",
        "conv1-filters.gif",
        "doctor.txt",
    ):
        assert expected in names
    run = weightlapse.open(result.run_path)
    assert run.activations == ["conv1", "relu1", "relu2", "fc"]
    frames = iio.imread(tmp_path / "conv1-filters.gif")
    assert frames.shape[0] == len(run["conv1.weight"].snapshot_steps)


@pytest.mark.slow
def test_demo_cnn_in_keras(tmp_path):
    pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    result = run_cnn("keras", tmp_path, epochs=2)
    assert "scikit-learn" in result.source or "MNIST" in result.source
    assert (tmp_path / "filters-conv1.png").stat().st_size > 5000
    assert weightlapse.open(result.run_path).activations == ["conv1", "relu1", "relu2", "fc"]
