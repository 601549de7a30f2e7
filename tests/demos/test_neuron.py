"""User story 1 in both frameworks: the two weights climb to 1.0, the test loss falls 100x."""

import json

import numpy as np
import pytest

import weightlapse
from tests.conftest import run_python
from weightlapse.demos.neuron import run_neuron


def check(result) -> None:
    assert (result.weights > 0.8).all(), result.weights
    assert result.loss_before / result.loss_after > 100
    run = weightlapse.open(result.run_path)
    assert len(run.steps) == 1 + 10 * 16  # the initial weights and every batch end
    kernel = run.tensors[0]
    traj = run[kernel].trajectory()
    assert traj.values.shape == (161, 2)
    assert (traj.values[-1] > 0.8).all()
    # the climb: early steps well below where they end
    assert (np.abs(traj.values[0] - 1.0) > np.abs(traj.values[-1] - 1.0)).all()
    assert result.figure_path.stat().st_size > 10_000


def test_story_1_in_pytorch(tmp_path):
    pytest.importorskip("torch")
    check(run_neuron("torch", tmp_path))


def test_story_1_in_keras_on_the_torch_backend(tmp_path):
    pytest.importorskip("keras")
    check(run_neuron("keras", tmp_path))


@pytest.mark.slow
def test_story_1_in_keras_on_the_tensorflow_backend(tmp_path):
    pytest.importorskip("tensorflow")
    code = (
        "import json, sys\n"
        "from weightlapse.demos.neuron import run_neuron\n"
        f"r = run_neuron('keras', {str(tmp_path)!r}, keras_backend='tensorflow')\n"
        "import keras\n"
        "print(json.dumps({'backend': keras.backend.backend(), 'run': str(r.run_path),"
        " 'fig': str(r.figure_path), 'before': r.loss_before, 'after': r.loss_after,"
        " 'w': r.weights.tolist()}))\n"
    )
    out = json.loads(run_python(code, env={"KERAS_BACKEND": ""}).stdout.strip().splitlines()[-1])
    assert out["backend"] == "tensorflow"

    class Result:
        weights = np.asarray(out["w"])
        loss_before, loss_after = out["before"], out["after"]
        run_path = out["run"]
        figure_path = __import__("pathlib").Path(out["fig"])

    check(Result)
