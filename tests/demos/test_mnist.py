"""User story 2 in both frameworks on the shared MNIST test set (8,000 / 2,000)."""

import numpy as np
import pytest

import weightlapse
from weightlapse.demos.data import load_digits
from weightlapse.demos.mnist import run_mnist


def correlation_check(result, data) -> None:
    """Each class template correlates best with the mean image of its own class."""
    templates = result.templates(-1)
    assert templates.shape == (10, 784)
    means = np.stack([data.x_val[data.y_val == c].mean(axis=0) for c in range(10)])
    t = templates - templates.mean(axis=1, keepdims=True)
    m = means - means.mean(axis=1, keepdims=True)
    corr = (t / np.linalg.norm(t, axis=1, keepdims=True)) @ (
        m / np.linalg.norm(m, axis=1, keepdims=True)
    ).T
    assert (corr.argmax(axis=1) == np.arange(10)).all(), np.round(corr, 2)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_story_2_reaches_its_accuracy_and_its_templates_look_like_digits(
    framework, tmp_path, mnist_dir
):
    pytest.importorskip(framework)
    reports = []
    result = run_mnist(framework, tmp_path, data=mnist_dir, report=lambda *r: reports.append(r))
    assert "split 8,000 / 2,000" in result.source
    assert result.val_accuracy[0] >= 0.85, result.val_accuracy
    assert result.val_accuracy[-1] >= 0.90, result.val_accuracy
    assert [r[0] for r in reports] == list(range(1, 11))
    assert all(s > 0 for s in result.epoch_seconds) and len(result.epoch_seconds) == 10
    assert set(result.weight_range) == {1, 10}
    lo1, hi1 = result.weight_range[1]
    lo10, hi10 = result.weight_range[10]
    assert lo10 < lo1 < 0 < hi1 < hi10  # the templates sharpen with training
    assert len(result.figure_paths) == 2 and all(
        p.stat().st_size > 20_000 for p in result.figure_paths
    )
    run = weightlapse.open(result.run_path)
    assert len(run["dense/kernel" if framework == "keras" else "dense.weight"].snapshot_steps) == 10
    correlation_check(result, load_digits(mnist_dir))


def test_story_2_runs_offline_on_the_digits_that_ship_with_scikit_learn(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached Keras MNIST
    result = run_mnist("torch", tmp_path / "out", epochs=3)
    assert result.source.startswith("scikit-learn's 8x8 digits")
    assert result.val_accuracy[-1] > 0.85
    assert result.templates().shape == (10, 64)
