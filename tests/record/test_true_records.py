"""Every recorded number is the true one (issue: gradients, snapshots, scalars, shapes,
dtypes, endings, names, steps, budget, resume, failing disks). Each test failed before
its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

import weightlapse
import weightlapse.torch
from tests.conftest import run_python
from weightlapse.errors import WeightlapseError

torch = pytest.importorskip("torch")


def regression_data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return x, y


# ---- 1. the gradient the optimizer used --------------------------------------------
def reference_gradients(model, batches, lr):
    """Plain SGD by hand: the gradient at each step's weights, on that step's batch."""
    model = __import__("copy").deepcopy(model)
    grads = []
    for x, y in batches:
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return grads


def test_gradients_under_a_closure_are_this_steps_not_the_last_ones(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = regression_data()
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    want = reference_gradients(model, batches, lr=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with weightlapse.torch.watch(model, tmp_path / "r", optimizer=opt, gradients=True):
        for xb, yb in batches:

            def closure(xb=xb, yb=yb):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(xb), yb)
                loss.backward()
                return loss

            opt.step(closure)
    grad = weightlapse.open(tmp_path / "r")["weight"].grad.trajectory()
    assert list(grad.steps) == [1, 2, 3, 4]
    for k in range(4):
        np.testing.assert_allclose(grad.values[k], want[k]["weight"].numpy().ravel(), rtol=1e-5)


def test_lbfgs_records_the_gradient_at_the_weights_before_each_step(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = regression_data()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    with weightlapse.torch.watch(model, tmp_path / "r", optimizer=opt, gradients=True, snapshots=1):
        for _ in range(3):

            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            opt.step(closure)
    run = weightlapse.open(tmp_path / "r")
    grad = run["weight"].grad.trajectory()
    for k, step in enumerate(grad.steps):
        probe = torch.nn.Linear(3, 1)
        probe.load_state_dict(
            {
                "weight": torch.tensor(run["weight"].at(step - 1)),
                "bias": torch.tensor(run["bias"].at(step - 1)),
            }
        )
        torch.nn.functional.mse_loss(probe(x), y).backward()
        np.testing.assert_allclose(grad.values[k], probe.weight.grad.numpy().ravel(), rtol=1e-4)


@pytest.mark.slow
def test_a_lightning_trainer_records_the_gradients_its_optimizer_used(tmp_path):
    """accumulate_grad_batches=2 and gradient_clip_val: the recorded gradient of each
    optimizer step is the clipped sum of its two micro-batches' (loss / 2) gradients."""
    lightning = pytest.importorskip("lightning")
    x, y = regression_data(n=32)
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 32, 4)]  # 8 micro-batches

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return torch.nn.functional.mse_loss(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Watch(lightning.Callback):
        def on_train_start(self, trainer, module):
            self.rec = weightlapse.torch.watch(
                module, tmp_path / "r", optimizer=trainer.optimizers[0], gradients=True
            )

        def on_train_end(self, trainer, module):
            self.rec.close()

    module = Module()
    start = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = lightning.Trainer(
        max_epochs=1,
        accumulate_grad_batches=2,
        gradient_clip_val=0.5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        callbacks=[Watch()],
    )
    loader = torch.utils.data.DataLoader(list(zip(x.split(4), y.split(4))), batch_size=None)
    trainer.fit(module, loader)

    # the reference, by hand
    ref = torch.nn.Linear(3, 1)
    ref.load_state_dict({k.removeprefix("net."): v for k, v in start.items()})
    want = []
    for k in range(0, 8, 2):
        ref.zero_grad()
        for xb, yb in batches[k : k + 2]:
            (torch.nn.functional.mse_loss(ref(xb), yb) / 2).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        want.append(ref.weight.grad.detach().clone())
        with torch.no_grad():
            for p in ref.parameters():
                p -= 0.1 * p.grad
    grad = weightlapse.open(tmp_path / "r")["net.weight"].grad.trajectory()
    assert list(grad.steps) == [1, 2, 3, 4]
    clipped = [float(np.linalg.norm(v)) for v in want]
    assert min(clipped) < 0.51  # the clip acted
    for k in range(4):
        np.testing.assert_allclose(grad.values[k], want[k].numpy().ravel(), rtol=1e-5, atol=1e-7)


# ---- 2. snapshots are copies ---------------------------------------------------------
def test_a_snapshot_is_the_array_as_it_was_at_its_step(tmp_path):
    w = np.zeros(4)
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step in range(3):
            w += 1.0  # in place, after logging the last step
            run.log(step, {"w": w})
    history = weightlapse.open(tmp_path / "r")["w"]
    assert [history.at(s)[0] for s in range(3)] == [1.0, 2.0, 3.0]


def test_torch_parameters_logged_as_a_dict_are_copied(tmp_path):
    model = torch.nn.Linear(4, 2)
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step in range(3):
            with torch.no_grad():
                model.weight.add_(1.0)
            run.log(step, dict(model.named_parameters()))
    history = weightlapse.open(tmp_path / "r")["weight"]
    l2 = [float(np.linalg.norm(history.at(s))) for s in range(3)]
    np.testing.assert_allclose(l2, history.stats["l2"], rtol=1e-6)


@pytest.mark.parametrize("source", ["numpy", "torch"])
def test_a_tensor_too_big_to_copy_is_recorded_in_place_exactly(tmp_path, monkeypatch, source):
    """Past BIG_BYTES a host tensor is summarised and snapshotted from its own memory at
    log time: the numbers equal the copying path's, a later in-place change is not seen,
    and a resumed run goes on after the rows already there."""
    from weightlapse.record import inplace
    from weightlapse.store.writer import StoreWriter

    written_now = []
    write_now = StoreWriter.write_now

    def spy(self, kind, name, array):
        written_now.append(name)
        return write_now(self, kind, name, array)

    monkeypatch.setattr(StoreWriter, "write_now", spy)
    rng = np.random.default_rng(0)
    base = {"big": rng.normal(size=(300, 7)), "small": rng.normal(size=5)}
    base["big"][3, 4] = np.nan
    runs = {}
    for mode, limit in (("in place", 1024), ("copied", 2**40)):
        monkeypatch.setattr(inplace, "BIG_BYTES", limit)
        arrays = {k: v.copy() for k, v in base.items()}
        if source == "torch":
            arrays = {k: torch.from_numpy(v) for k, v in arrays.items()}
        path = tmp_path / mode.replace(" ", "_")
        seen = []
        with weightlapse.create(path, snapshots=1) as run:
            for step in range(3):
                run.log(step, arrays)
                seen.append({k: np.array(v) for k, v in arrays.items()})
                for v in arrays.values():
                    v += 1.0  # in place, after logging
        with weightlapse.create(path, resume=True, snapshots=1) as run:
            run.log(3, arrays)
            seen.append({k: np.array(v) for k, v in arrays.items()})
        runs[mode] = weightlapse.open(path)
    for name in base:
        got, want = runs["in place"][name], runs["copied"][name]
        np.testing.assert_array_equal(got.stats.table, want.stats.table)
        np.testing.assert_array_equal(got.histograms.counts, want.histograms.counts)
        np.testing.assert_array_equal(got.trajectory().values, want.trajectory().values)
        assert got.snapshot_steps == [0, 1, 2, 3]
        for step in range(4):
            np.testing.assert_array_equal(got.at(step), seen[step][name])
    assert written_now == ["big"] * 4  # the in-place run's; the copying run wrote none
    entry = runs["in place"]._attrs["snapshots"]["param"]["big"]
    assert zarr.open_array(runs["in place"].path, path=entry["array"]).shape[0] == 4


# ---- 3. scalars on their own step ----------------------------------------------------
def test_scalars_land_on_the_step_they_were_logged_at(tmp_path):
    with weightlapse.create(tmp_path / "r", every=5, snapshots=None) as run:
        for step in range(11):
            run.log(step, {"w": np.ones(2) * step}, loss=float(step))
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == [0, 5, 10]
    assert list(run.scalar("loss")) == [0.0, 5.0, 10.0]


def test_scalars_logged_after_a_skipped_step_do_not_join_an_earlier_one(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with weightlapse.torch.watch(
        model, tmp_path / "r", optimizer=opt, every=2, snapshots="epoch"
    ) as rec:
        for step in range(1, 6):
            model(torch.ones(1, 2)).sum().backward()
            opt.step()
            rec.log_scalars(loss=float(step))
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == [0, 2, 4, 5]  # 5: the final state, recorded at the end
    loss = run.scalar("loss")
    assert np.isnan(loss[0]) and list(loss[1:]) == [2.0, 4.0, 5.0]


# ---- 4. shapes that change -----------------------------------------------------------
def test_a_tensor_that_changes_shape_is_refused_naming_both_shapes(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        run.log(0, {"a": np.ones(3), "b": np.ones(5)})
        with pytest.raises(WeightlapseError, match=r"'a'.*\(3,\).*\(5,\)"):
            run.log(1, {"a": np.ones(5), "b": np.ones(3)})
        run.log(2, {"a": np.full(3, 2.0), "b": np.full(5, 2.0)})
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == [0, 2]
    assert list(run["a"].stats["max"]) == [1.0, 2.0]


# ---- 5. dtypes -----------------------------------------------------------------------
def test_float64_beyond_float32_is_summarised_in_float64(tmp_path):
    values = np.array([1e300, 1.0, 1e-300, -1e200])
    with weightlapse.create(tmp_path / "r") as run:
        run.log(0, {"w": values})
    stats = weightlapse.open(tmp_path / "r")["w"].stats
    assert stats["inf_count"][0] == 0 and stats["zero_frac"][0] == 0
    assert stats["l2"][0] == pytest.approx(1e300) and stats["max"][0] == 1e300
    assert stats["min"][0] == -1e200


def test_int64_past_2_53_of_float32_keeps_its_value(tmp_path):
    big = np.array([2**40 + 1, 3], dtype=np.int64)
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        run.log(0, {"n": big})
    history = weightlapse.open(tmp_path / "r")["n"]
    assert history.stats["max"][0] == 2**40 + 1
    assert history.trajectory().values[0, 0] == 2**40 + 1
    assert history.at(0)[0] == 2**40 + 1 and history.at(0).dtype == np.int64


@pytest.mark.parametrize("packed", [False, True], ids=["own array", "packed"])
def test_a_snapshot_in_a_wider_dtype_than_its_array_says_it_is_rounded(tmp_path, packed):
    """A tensor's snapshots are stored in its dtype at its first snapshot: float64 values
    of a tensor first seen as float32 were rounded to float32 without a word."""
    others = {f"s{i}": np.zeros(4, np.float32) for i in range(300 if packed else 0)}
    fine = np.array([1 + 1e-12, 2.0, 3.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with weightlapse.create(tmp_path / "r", snapshots=1) as run:
            run.log(0, {"w": np.zeros(3, np.float32), "h": np.zeros(3, np.float32), **others})
            for step in (1, 2):  # float16 into float32 is exact: no word of it
                run.log(step, {"w": fine, "h": np.ones(3, np.float16), **others})
    said = [str(w.message) for w in caught if "rounded" in str(w.message)]
    assert len(said) == 1, said  # once a tensor
    assert "'w'" in said[0] and "float64" in said[0] and "float32" in said[0]
    history = weightlapse.open(tmp_path / "r")["w"]
    assert history.at(1)[0] == 1.0  # rounded, as it says
    assert history.stats["mean"][1] == pytest.approx(fine.mean(), abs=0, rel=1e-15)


def test_a_big_tensor_written_in_place_in_a_wider_dtype_says_it_is_rounded(tmp_path, monkeypatch):
    """Past BIG_BYTES a host tensor is written from its own memory into its array by
    store/regions.py (as sharded snapshots are): the same word when it rounds."""
    from weightlapse.record import inplace

    monkeypatch.setattr(inplace, "BIG_BYTES", 1024)
    wide = np.full((300, 7), 1 + 1e-12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with weightlapse.create(tmp_path / "r", snapshots=1) as run:
            run.log(0, {"big": np.zeros((300, 7), np.float32)})
            run.log(1, {"big": np.full((300, 7), 2.0)})  # float64, exact in float32
            run.log(2, {"big": wide})
            run.log(3, {"big": wide})
    said = [str(w.message) for w in caught if "rounded" in str(w.message)]
    assert len(said) == 1 and "'big'" in said[0] and "float64" in said[0], said
    assert weightlapse.open(tmp_path / "r")["big"].at(2)[0, 0] == 1.0


def test_many_tensors_whose_one_copy_is_wider_than_their_pack_say_it_once(tmp_path):
    """300 small tensors all float64 after float32: their snapshots travel as one flat
    copy into the packs made at float32 (store/snapshots.py _write_bulks)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with weightlapse.create(tmp_path / "r", snapshots=1) as run:
            run.log(0, {f"s{i}": np.zeros(4, np.float32) for i in range(300)})
            for step in (1, 2, 3):
                run.log(step, {f"s{i}": np.full(4, 1 + 1e-12) for i in range(300)})
    said = [str(w.message) for w in caught if "rounded" in str(w.message)]
    assert len(said) == 1 and "'s0' and the tensors packed with it" in said[0], said


def test_bfloat16_and_float8_arrays_are_recorded(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.array([1.5, -2.0, 3.0], dtype=ml_dtypes.bfloat16)
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        run.log(
            0,
            {
                "bf16": bf16,
                "torch_bf16": torch.tensor([1.0, 2.0], dtype=torch.bfloat16),
                "fp8": torch.tensor([0.5, -1.0]).to(torch.float8_e4m3fn),
                "half": np.array([1.0, 2.0], dtype=np.float16),
            },
        )
    run = weightlapse.open(tmp_path / "r")
    assert run["bf16"].stats["max"][0] == 3.0 and run["bf16"].dtype == "bfloat16"
    assert run["fp8"].stats["min"][0] == -1.0 and run["torch_bf16"].stats["l2"][0] == pytest.approx(
        5**0.5
    )
    np.testing.assert_array_equal(run["bf16"].at(0), [1.5, -2.0, 3.0])


def test_complex_numbers_are_refused_clearly(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        with pytest.raises(WeightlapseError, match="complex"):
            run.log(0, {"z": np.ones(2, dtype=complex)})


# ---- 6. endings ----------------------------------------------------------------------
def test_close_snapshots_the_last_step(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:  # log-spaced snapshots
        for step in range(161):
            run.log(step, {"w": np.full(2, float(step))})
    history = weightlapse.open(tmp_path / "r")["w"]
    assert history.snapshot_steps[-1] == 160 and history.at(-1)[0] == 160.0


def test_watch_snapshots_the_trained_model_at_close(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with weightlapse.torch.watch(model, tmp_path / "r", optimizer=opt, every=7):
        for _ in range(10):
            model(torch.ones(1, 2)).sum().backward()
            opt.step()
    history = weightlapse.open(tmp_path / "r")["weight"]
    assert history.snapshot_steps[-1] == 10
    np.testing.assert_array_equal(history.at(-1), model.weight.detach().numpy())


@pytest.mark.slow
def test_a_script_that_never_closes_leaves_a_closed_complete_run(tmp_path):
    run_python(
        "import torch, weightlapse.torch\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Linear(4, 2)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        f"rec = weightlapse.torch.watch(model, {str(tmp_path / 'r')!r}, optimizer=opt)\n"
        "for _ in range(1000):\n"
        "    opt.zero_grad(); model(torch.ones(8, 4)).pow(2).mean().backward(); opt.step()\n"
        f"torch.save(model.state_dict(), {str(tmp_path / 'final.pt')!r})\n"
    )
    run = weightlapse.open(tmp_path / "r")
    final = torch.load(tmp_path / "final.pt")
    assert not run.is_live
    assert list(run.steps) == list(range(1001))
    assert run["weight"].snapshot_steps[-1] == 1000
    np.testing.assert_array_equal(run["weight"].at(-1), final["weight"].numpy())


@pytest.mark.slow
def test_a_killed_writer_is_shown_as_ended(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import numpy as np, time, weightlapse\n"
            f"run = weightlapse.create({str(tmp_path / 'r')!r}, flush_seconds=0.1)\n"
            "run.log(0, {'w': np.ones(2)}); run.flush(); print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert weightlapse.open(tmp_path / "r").is_live
    finally:
        proc.kill()
        proc.wait()
    assert not weightlapse.open(tmp_path / "r").is_live


# ---- 7. names ------------------------------------------------------------------------
def test_a_submodule_called_module_keeps_its_name():
    from weightlapse.frameworks.torch import named_parameters

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2))
            self.module = torch.nn.Linear(2, 2)

    names = list(named_parameters(Net()))
    assert names == ["weight", "module.weight", "module.bias"]
    wrapped = torch.nn.DataParallel(Net())
    assert list(named_parameters(wrapped)) == names


def test_two_sources_of_one_name_are_an_error_naming_both(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        with pytest.raises(WeightlapseError, match="'a/b'.*twice"):
            run.log(0, {"a": {"b": np.ones(2)}, "a/b": np.zeros(2)})
        with pytest.raises(WeightlapseError, match="empty"):
            run.log(0, {"": np.ones(2)})


def test_namedtuples_are_named_by_their_fields(tmp_path):
    from collections import namedtuple

    Adam = namedtuple("ScaleByAdamState", ["count", "mu", "nu"])
    state = (Adam(np.int32(3), {"w": np.ones(2)}, {"w": np.ones(2)}),)
    with weightlapse.create(tmp_path / "r") as run:
        run.log(0, {"opt": state})
    assert weightlapse.open(tmp_path / "r").tensors == ["opt/0/count", "opt/0/mu/w", "opt/0/nu/w"]


# ---- 8. steps ------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [[5, 3], [3, 3], [-1], [2.7], [True]])
def test_steps_must_be_increasing_integers(tmp_path, steps):
    with weightlapse.create(tmp_path / "r") as run:
        with pytest.raises(WeightlapseError, match="step"):
            for step in steps:
                run.log(step, {"w": np.ones(2)})


# ---- 9. the snapshot budget counts what is written -----------------------------------
def test_the_snapshot_budget_counts_float64_as_8_bytes(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with weightlapse.create(tmp_path / "r", snapshots=1, snapshot_budget=8 * 100 * 3) as run:
            for step in range(6):
                run.log(step, {"w": np.ones(100, dtype=np.float64)})
    run = weightlapse.open(tmp_path / "r")
    assert run["w"].snapshot_steps == [0, 1, 5]  # the last: the final state's, kept room for


def test_the_default_snapshots_thin_out_for_a_model_big_next_to_the_budget(tmp_path):
    """'auto' (the default): 20 snapshots a decade while the budget holds a million
    steps' worth, fewer for a bigger model: here the budget holds 13 snapshots, so 2 a
    decade (12 // 6), and 'log' keeps its 20."""
    w = np.ones(1000, dtype=np.float32)
    every_log_step_till_the_budget = [*range(10), 11, 12, 99]  # 12, and the final state's
    cases = [(None, [0, 3, 9, 31, 99]), ("log", every_log_step_till_the_budget)]
    for snapshots, expected in cases:
        options = {} if snapshots is None else {"snapshots": snapshots}
        path = tmp_path / str(snapshots)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 'log' reaches the budget
            with weightlapse.create(path, snapshot_budget=w.nbytes * 13, **options) as run:
                for step in range(100):
                    # the first step's snapshot forced: the schedule is fitted all the same
                    run.log(step, {"w": w + step}, snapshot=True if step == 0 else None)
        assert weightlapse.open(path)["w"].snapshot_steps == expected


# ---- 10. resume ----------------------------------------------------------------------
def test_resume_appends_after_the_last_committed_step(tmp_path):
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step in range(3):
            run.log(step, {"w": np.full(2, float(step))}, loss=float(step))
    with pytest.raises(WeightlapseError, match="overwrite=True.*resume=True"):
        weightlapse.create(tmp_path / "r")
    with weightlapse.create(tmp_path / "r", resume=True, snapshots=1) as run:
        with pytest.raises(WeightlapseError, match="step"):
            run.log(2, {"w": np.ones(2)})
        for step in range(3, 5):
            run.log(step, {"w": np.full(2, float(step))}, loss=float(step))
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == [0, 1, 2, 3, 4] and list(run.scalar("loss")) == [0, 1, 2, 3, 4]
    assert run["w"].snapshot_steps == [0, 1, 2, 3, 4] and run["w"].at(4)[0] == 4.0


def test_resume_with_another_bin_count_is_refused_before_anything_changes(tmp_path):
    """A run keeps one bin count; resumed with another, the first flush failed to fit
    32 counts into 64 columns and every resumed step was lost (a warning)."""
    with weightlapse.create(tmp_path / "r", bins=32) as run:
        run.log(0, {"w": np.arange(100.0)})
    before = (tmp_path / "r" / "zarr.json").read_bytes()
    with pytest.raises(WeightlapseError, match="32-bin.*bins=32, not 64"):
        weightlapse.create(tmp_path / "r", resume=True)
    assert (tmp_path / "r" / "zarr.json").read_bytes() == before
    with weightlapse.create(tmp_path / "r", resume=True, bins=32) as run:  # (lock let go)
        run.log(1, {"w": np.arange(100.0)})
    counts = weightlapse.open(tmp_path / "r")["w"].histograms.counts
    assert counts.shape == (2, 32) and list(counts.sum(axis=1)) == [100, 100]


@pytest.mark.parametrize("max_probes", [8, 64])
def test_resume_with_a_max_probes_that_probes_otherwise_is_refused(tmp_path, max_probes):
    """Resumed with another max_probes, the recorder chose other elements of a tensor
    than the run lists for it: the first flush failed (32 columns, 8 values) and every
    resumed step was lost. A max_probes that changes nothing (a run of small tensors
    only) goes on."""
    with weightlapse.create(tmp_path / "r", max_probes=32) as run:
        run.log(0, {"w": np.arange(1000.0), "b": np.zeros(5)})
    before = (tmp_path / "r" / "zarr.json").read_bytes()
    with pytest.raises(WeightlapseError, match=r"32 of the 1000 elements of 'w'.*max_probes=32"):
        weightlapse.create(tmp_path / "r", resume=True, max_probes=max_probes)
    assert (tmp_path / "r" / "zarr.json").read_bytes() == before
    with weightlapse.create(tmp_path / "r", resume=True) as run:
        run.log(1, {"w": np.arange(1000.0), "b": np.zeros(5)})
    assert len(weightlapse.open(tmp_path / "r")["w"].trajectory().values) == 2
    with weightlapse.create(tmp_path / "small", max_probes=32) as run:
        run.log(0, {"b": np.zeros(5)})
    with weightlapse.create(tmp_path / "small", resume=True, max_probes=max_probes) as run:
        run.log(1, {"b": np.ones(5)})
    assert list(weightlapse.open(tmp_path / "small").steps) == [0, 1]


# ---- 12. a failing disk never stops training ------------------------------------------
class FailingStore(zarr.storage.LocalStore):
    """A disk that fills up: writes fail once `full` is set."""

    full = False

    async def set(self, key, value):
        if FailingStore.full:
            raise OSError(28, "No space left on device")
        return await super().set(key, value)


def test_a_full_disk_warns_once_and_training_goes_on(tmp_path):
    FailingStore.full = False
    store = FailingStore(tmp_path / "r")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = weightlapse.torch.watch(model, store, optimizer=opt, snapshots=1, flush_seconds=0.05)
    for _ in range(3):
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
    rec.run.flush()
    FailingStore.full = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            model(torch.ones(1, 2)).sum().backward()
            opt.step()
            rec.log_scalars(loss=1.0)
        rec.close()
    said = [str(w.message) for w in caught if "weightlapse" in str(w.message)]
    assert len(said) == 1 and "stopped recording" in said[0] and "step 3" in said[0]
    FailingStore.full = False
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == [0, 1, 2, 3]


@pytest.mark.parametrize("source", ["torch watch", "numpy log", "numpy log, no snapshots"])
def test_a_writer_behind_leaves_statistics_to_the_step_in_place_and_they_are_the_same(
    tmp_path, monkeypatch, source
):
    """When the writer thread is behind, a step whose host copy nobody needs is summarised
    in the tensors' own memory instead: the same numbers as from the copy, taken before
    the next step changes the tensors; snapshot steps still keep their copy, and the
    run's last step its snapshot (`run.log` takes it from the last step's copy, so with
    snapshots on it keeps every step's)."""
    from weightlapse.record import inplace, recorder
    from weightlapse.store.writer import StoreWriter

    in_place_calls = []
    summarize_in_place = inplace.summarize_in_place

    def spy(views, *args, **kwargs):
        in_place_calls.append(len(views))
        return summarize_in_place(views, *args, **kwargs)

    monkeypatch.setattr(recorder, "summarize_in_place", spy)
    runs, calls = {}, {}
    for behind in (True, False):
        monkeypatch.setattr(StoreWriter, "behind", property(lambda self, b=behind: b))
        in_place_calls.clear()
        path = tmp_path / f"behind_{behind}"
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(100, 50), torch.nn.Linear(50, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(16, 100), torch.randn(16, 2)
        if source == "torch watch":
            with weightlapse.torch.watch(model, path, optimizer=opt, gradients=True):
                for _ in range(12):
                    opt.zero_grad()
                    torch.nn.functional.mse_loss(model(x), y).backward()
                    opt.step()
        else:
            arrays = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
            snapshots = None if "no snapshots" in source else "every:5"
            with weightlapse.create(path, snapshots=snapshots) as run:
                for step in range(12):
                    run.log(step, arrays)
                    for a in arrays.values():
                        a *= 0.9  # in place, after logging
        runs[behind], calls[behind] = weightlapse.open(path), list(in_place_calls)
    assert not calls[False]
    assert bool(calls[True]) == (source != "numpy log")  # the path taken
    got, want = runs[True], runs[False]
    np.testing.assert_array_equal(got.steps, want.steps)
    steps = list(got.steps)
    for name in want.tensors:
        np.testing.assert_array_equal(got[name].stats.table, want[name].stats.table)
        np.testing.assert_array_equal(got[name].histograms.counts, want[name].histograms.counts)
        assert got[name].snapshot_steps == want[name].snapshot_steps
        if source != "numpy log, no snapshots":
            assert got[name].snapshot_steps[-1] == steps[-1]  # the last step's snapshot
        for step in got[name].snapshot_steps:
            np.testing.assert_array_equal(got[name].at(step), want[name].at(step))
            l2 = float(np.linalg.norm(got[name].at(step).astype(np.float64)))
            row = steps.index(step)
            np.testing.assert_allclose(got[name].stats["l2"][row], l2, rtol=1e-6)


def test_a_parameter_given_new_memory_is_recorded_from_it(tmp_path, monkeypatch):
    """Views of a parameter's memory are kept from step to step (record/torch_ops.py);
    after `p.data = ...` (new memory, or the same memory transposed) the statistics and
    probes are the new tensor's, not the old memory's."""
    from weightlapse.store.writer import StoreWriter

    monkeypatch.setattr(StoreWriter, "behind", property(lambda self: True))  # in place
    layer = torch.nn.Linear(3, 4, bias=False)
    opt = torch.optim.SGD(layer.parameters(), lr=0.0)
    values = {}
    with weightlapse.torch.watch(layer, tmp_path / "r", optimizer=opt, snapshots=None):
        for step in range(1, 4):
            if step == 2:
                layer.weight.data = torch.full((4, 3), 7.0)
            if step == 3:  # same shape, new memory laid out by rows of another tensor
                layer.weight.data = torch.arange(12.0).reshape(3, 4).t().contiguous()
            opt.zero_grad()
            layer(torch.ones(1, 3)).sum().backward()
            opt.step()
            values[step] = layer.weight.detach().numpy().reshape(-1).copy()
    kernel = weightlapse.open(tmp_path / "r")["weight"]
    stats, probes = kernel.stats, kernel.trajectory()
    for step, want in values.items():
        row = list(stats.steps).index(step)
        assert stats["max"][row] == want.max()
        np.testing.assert_allclose(stats["mean"][row], want.astype(np.float64).mean(), rtol=1e-12)
        at = [want.reshape(4, 3)[e] for e in probes.elements]
        np.testing.assert_array_equal(probes.values[list(probes.steps).index(step)], at)
