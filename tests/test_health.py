"""Each health check, on a run made to have that fault (and a healthy one)."""

import numpy as np
import pytest

import weightlapse


def record(path, steps=30, **faults):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 8))
    with weightlapse.create(path, snapshots=5, gradients=True, updates=True) as run:
        for step in range(steps):
            grad = rng.normal(size=w.shape) * faults.get("grad_growth", 1.0) ** step
            lr = faults.get("lr", 1e-3 / np.sqrt(w.size / 10))
            w = w - lr * grad / np.linalg.norm(grad) * np.linalg.norm(w)
            params = {"dense/w": w.copy(), "frozen/w": np.ones(4)}
            if faults.get("nan_at") == step:
                params["dense/w"][0, 0] = np.nan
                w[0, 0] = 0.0
            if "dead_from" in faults:
                acts = np.abs(rng.normal(size=(3, 6)))
                if step >= faults["dead_from"]:
                    acts[:, :4] = 0.0
                activations = {"relu": acts}
            else:
                activations = None
            run.log(step, params, grads={"dense/w": grad}, activations=activations)
    return weightlapse.open(path)


def checks(run, kind=None):
    """The first finding of each check (of one kind of tensor, if given)."""
    found = {}
    for f in weightlapse.diagnose(run):
        if kind in (None, f.kind):
            found.setdefault(f.check, f)
    return found


def test_a_healthy_run_only_shows_its_frozen_layer(tmp_path):
    found = checks(record(tmp_path / "r"))
    assert set(found) == {"never-moved"}
    assert found["never-moved"].tensor == "frozen/w"


def test_nan_appearing(tmp_path):
    run = record(tmp_path / "r", nan_at=12)
    f = checks(run, "param")["nan-inf"]
    assert (f.tensor, f.kind, f.step, f.value) == ("dense/w", "param", 12, 1.0)
    assert checks(run, "update")["nan-inf"].step == 12  # the update to it is NaN too


def test_exploding_and_vanishing_gradients(tmp_path):
    up = checks(record(tmp_path / "up", grad_growth=1.5))["exploding-gradient"]
    assert up.kind == "grad" and up.statistic == "l2"
    assert 10 <= up.step <= 16  # 1.5**k passes 100x the early median (about 1.5**2)
    down = checks(record(tmp_path / "down", grad_growth=0.5))["vanishing-gradient"]
    assert down.tensor == "dense/w" and down.step <= 15


@pytest.mark.parametrize("lr, check", [(0.2, "update-ratio-high"), (1e-7, "update-ratio-low")])
def test_update_ratio_far_from_1e_3(tmp_path, lr, check):
    f = checks(record(tmp_path / "r", lr=lr))[check]
    assert f.kind == "update" and f.step == 1
    assert f.value == pytest.approx(lr, rel=0.05)


def test_dead_relu_units(tmp_path):
    f = checks(record(tmp_path / "r", dead_from=10))["dead-units"]
    assert (f.tensor, f.step) == ("relu", 10)
    assert f.value == pytest.approx(4 / 6)


def test_units_whose_weights_stopped_changing(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 5))  # torch-like (out, in): rows are units
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step in range(4):
            run.log(step, {"fc.weight": w.copy()})
            w[:3] += 0.1  # units 3..5 are stuck
    f = checks(weightlapse.open(tmp_path / "r"))["frozen-units"]
    assert f.value == pytest.approx(0.5) and f.tensor == "fc.weight"
