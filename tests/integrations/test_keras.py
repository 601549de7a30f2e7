"""The Keras recorder on the PyTorch, TensorFlow and JAX backends (each in its own process)."""

import json
import textwrap

import pytest

from tests.conftest import run_python

pytest.importorskip("keras")

SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    if MODE == "block-tensorflow":
        sys.modules["tensorflow"] = None  # any import of it now fails
    import numpy as np, keras
    import weightlapse, weightlapse.keras
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    w0, b0 = np.array(model.weights[0]), np.array(model.weights[1])
    model.optimizer.build(model.trainable_variables)
    optimizer_variables = len(model.optimizer.variables)
    path = tempfile.mkdtemp() + "/run"
    rec = weightlapse.keras.Recorder(path, gradients=True, updates=True, snapshots=1,
                                     device_stats=MODE == "device-stats")
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[rec])
    rec.close()
    run = weightlapse.open(path)
    k = run["dense/kernel"]
    grad_w = 2.0 / (16 * 2) * x.T @ (x @ w0 + b0 - y)  # d mean((xW+b-y)^2) / dW
    print(json.dumps({
        "backend": keras.backend.backend(),
        "tensors": run.tensors,
        "steps": run.steps.tolist(),
        "layout": k.layout,
        "input_shape": run.meta.get("input_shape"),
        "grad_steps": k.grad.stats.steps.tolist(),
        "grad_l2": float(k.grad.stats["l2"][0]),
        "expected_grad_l2": float(np.linalg.norm(grad_w)),
        "update_l2": float(k.update.stats["l2"][0]),
        "expected_update_l2": float(np.linalg.norm(0.1 * grad_w)),
        "snapshot_0_equals_initial": bool(np.array_equal(k.at(0), w0)),
        "snapshot_1_equals_step": bool(np.allclose(k.at(1), w0 - 0.1 * grad_w, atol=1e-6)),
        "final_equals_model": bool(np.array_equal(k.at(-1), np.array(model.weights[0]))),
        "scalars": run.scalar_names,
        "tensorflow_loaded": bool(sys.modules.get("tensorflow")),
        "optimizer_variables_kept": len(model.optimizer.variables) == optimizer_variables,
    }))
""")


def check(result: dict, backend: str) -> None:
    assert result["backend"] == backend
    assert result["tensors"] == ["dense/kernel", "dense/bias"]
    assert result["steps"] == [0, 1, 2, 3]
    assert result["layout"] == "in,out" and result["input_shape"] == [3]
    assert result["grad_steps"] == [1, 2, 3]
    assert result["grad_l2"] == pytest.approx(result["expected_grad_l2"], rel=1e-4)
    assert result["update_l2"] == pytest.approx(result["expected_update_l2"], rel=1e-3)
    assert result["snapshot_0_equals_initial"] and result["snapshot_1_equals_step"]
    assert result["final_equals_model"]
    assert {"loss", "epoch_seconds"} <= set(result["scalars"])
    assert result["optimizer_variables_kept"]


def run_script(backend: str, *extra: str) -> dict:
    proc = run_python(
        f"MODE = {extra[-1] if extra else ''!r}\n" + SCRIPT, env={"KERAS_BACKEND": backend}
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_keras_recorder_on_the_torch_backend_needs_no_tensorflow():
    result = run_script("torch", "block-tensorflow")
    check(result, "torch")
    assert not result["tensorflow_loaded"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["host-stats", "device-stats"])
def test_keras_recorder_on_the_tensorflow_backend(mode):
    """device-stats: keras.ops reductions, the path taken for weights on a GPU."""
    pytest.importorskip("tensorflow")
    check(run_script("tensorflow", mode), "tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["host-stats", "device-stats"])
def test_keras_recorder_on_the_jax_backend_records_gradients(mode):
    """JAX's train step is a pure jitted function: the gradients ride out in the
    optimizer's state for the length of fit, and leave it when fit ends."""
    pytest.importorskip("jax")
    check(run_script("jax", mode), "jax")


def test_per_epoch_recording_and_a_second_fit_goes_on_counting(tmp_path):
    import keras
    import numpy as np

    import weightlapse
    from weightlapse.keras import Recorder

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((20, 4), "float32"), np.zeros((20, 3), "float32")
    rec = Recorder(tmp_path / "r", per="epoch", snapshots="epoch")
    model.fit(x, y, batch_size=5, epochs=2, verbose=0, callbacks=[rec])
    model.fit(x, y, batch_size=5, epochs=1, verbose=0, callbacks=[rec])
    rec.close()
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == [0, 4, 8, 12]
    assert run["dense/kernel"].snapshot_steps == [4, 8, 12]


def test_fit_ends_with_a_closed_run_holding_the_trained_model(tmp_path):
    import warnings

    import keras
    import numpy as np

    import weightlapse
    from weightlapse.keras import Recorder

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((20, 4), "float32"), np.zeros((20, 3), "float32")
    rec = Recorder(tmp_path / "r", every=3)
    model.fit(x, y, batch_size=5, epochs=2, verbose=0, callbacks=[rec])
    run = weightlapse.open(tmp_path / "r")
    assert not run.is_live  # fit ended: the dashboard shows it ended
    kernel = run["dense/kernel"]
    assert kernel.snapshot_steps[-1] == 8
    np.testing.assert_array_equal(kernel.at(-1), np.array(model.weights[0]))
    assert np.isfinite(run.scalar("val_loss" if "val_loss" in run.scalar_names else "loss")[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.close()  # closing again is harmless


def test_a_bad_per_is_a_clear_error(tmp_path):
    from weightlapse.keras import Recorder

    with pytest.raises(Exception, match="per 'batch' or per 'epoch'"):
        Recorder(tmp_path / "r", per="minute")
