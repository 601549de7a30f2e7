"""weightlapse.jax.log on a real optax training loop: names by key path, bfloat16,
statistics reduced by jax.numpy equal to NumPy's, and logging from inside `jit`."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy

import weightlapse  # noqa: E402
import weightlapse.jax as wj  # noqa: E402


def problem():
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {
        "dense": {"kernel": jax.random.normal(k1, (4, 3)), "bias": jnp.zeros(3)},
        "out": {"kernel": jax.random.normal(k2, (3, 1)).astype(jnp.bfloat16)},
    }
    x = jax.random.normal(k3, (16, 4))
    y = jnp.sum(x, axis=1, keepdims=True)

    def loss_fn(p):
        h = jnp.tanh(x @ p["dense"]["kernel"] + p["dense"]["bias"])
        return jnp.mean((h @ p["out"]["kernel"].astype(jnp.float32) - y) ** 2)

    return params, loss_fn


def train(path, *, inside_jit, on_device=None, steps=4):
    params, loss_fn = problem()
    opt = optax.adam(0.05)
    state = opt.init(params)
    run = weightlapse.create(path, gradients=True, snapshots=1)
    wj.log(run, 0, params, opt_state=state, on_device=on_device)
    expected_grads = []

    @jax.jit
    def step_fn(p, s, step):
        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(g, s, p)
        p = optax.apply_updates(p, updates)
        if inside_jit:
            wj.log(run, step, p, opt_state=s, grads=g, loss=loss)
        return p, s, g, loss

    for step in range(1, steps + 1):
        params, state, grads, loss = step_fn(params, state, step)
        expected_grads.append(grads)
        if not inside_jit:
            wj.log(run, step, params, opt_state=state, grads=grads, loss=loss, on_device=on_device)
    jax.effects_barrier()
    run.close()
    return weightlapse.open(path), params, expected_grads


def test_pytrees_are_named_by_key_path_and_bfloat16_is_kept(tmp_path):
    run, params, grads = train(tmp_path / "r", inside_jit=False)
    assert set(run.tensors) >= {
        "dense/kernel",
        "dense/bias",
        "out/kernel",
        "opt_state/0/count",
        "opt_state/0/mu/dense/kernel",
        "opt_state/0/nu/out/kernel",
    }
    kernel = run["out/kernel"]
    assert kernel.dtype == "bfloat16"
    # stored as float32, which holds every bfloat16 exactly
    np.testing.assert_array_equal(
        np.asarray(kernel.at(4), np.float32), np.asarray(params["out"]["kernel"], np.float32)
    )
    assert list(run.steps) == [0, 1, 2, 3, 4]
    # step k holds the gradient the k-th update used
    l2 = run["dense/kernel"].grad.stats["l2"]
    want = [float(np.linalg.norm(np.asarray(g["dense"]["kernel"]))) for g in grads]
    np.testing.assert_allclose(l2, want, rtol=1e-5)
    assert np.isfinite(run.scalar("loss")[1:]).all()


def test_device_reductions_equal_the_host_ones(tmp_path):
    host, _, _ = train(tmp_path / "host", inside_jit=False, on_device=False)
    device, _, _ = train(tmp_path / "device", inside_jit=False, on_device=True)
    for name in ("dense/kernel", "out/kernel", "opt_state/0/nu/dense/kernel"):
        for stat in ("mean", "std", "min", "max", "l2", "zero_frac"):
            np.testing.assert_allclose(
                device[name].stats[stat], host[name].stats[stat], rtol=2e-5, atol=1e-7
            )
        np.testing.assert_array_equal(device[name].histograms.counts, host[name].histograms.counts)


def test_logging_inside_jit_records_the_same_run(tmp_path):
    outside, _, _ = train(tmp_path / "out", inside_jit=False)
    inside, _, _ = train(tmp_path / "in", inside_jit=True)
    assert inside.tensors == outside.tensors
    assert list(inside.steps) == list(outside.steps)
    for name in outside.tensors:
        np.testing.assert_allclose(
            inside[name].stats["l2"], outside[name].stats["l2"], rtol=1e-5, equal_nan=True
        )
    np.testing.assert_allclose(inside.scalar("loss"), outside.scalar("loss"), equal_nan=True)


def test_gradients_of_another_tree_are_a_clear_error(tmp_path):
    params, _ = problem()
    run = weightlapse.create(tmp_path / "r", gradients=True)
    with pytest.raises(weightlapse.WeightlapseError, match="grads has leaves params lacks"):
        wj.log(run, 0, params, grads={"other": jnp.ones(2)})
    with pytest.raises(weightlapse.WeightlapseError, match="RunWriter"):
        wj.log(str(tmp_path / "x"), 0, params)
    run.close()
