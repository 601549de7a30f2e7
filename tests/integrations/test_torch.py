import numpy as np
import pytest

import weightlapse

torch = pytest.importorskip("torch")
from weightlapse.torch import watch  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.fc = torch.nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def batches(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(5, 1, 8, 8, generator=g), torch.randint(0, 4, (5,), generator=g))
        for _ in range(n)
    ]


def test_watch_records_every_optimizer_step_with_no_other_change(tmp_path):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = {0: {n: p.detach().clone() for n, p in model.named_parameters()}}
    with watch(model, tmp_path / "r", optimizer=opt, snapshots=1) as rec:
        for i, (x, y) in enumerate(batches()):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log_scalars(loss=loss.detach())
            expected[i + 1] = {n: p.detach().clone() for n, p in model.named_parameters()}
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == list(range(7))
    assert run.tensors == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert run["conv.weight"].layout == "out,in,h,w" and run["fc.weight"].layout == "out,in"
    assert run.meta["framework"] == "torch" and run.meta["input_shape"] == [1, 8, 8]
    assert [layer["type"] for layer in run.meta["model"]["layers"]] == ["Conv2d", "Linear"]
    for step, params in expected.items():
        np.testing.assert_array_equal(run["fc.weight"].at(step), params["fc.weight"].numpy())
        assert run["conv.weight"].stats["l2"][step] == pytest.approx(
            float(params["conv.weight"].norm()), rel=1e-5
        )
    assert np.isnan(run.scalar("loss")[0]) and np.isfinite(run.scalar("loss")[1:]).all()


def manual_grads(model, x, y):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_gradients_and_exact_updates(tmp_path):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = batches(3)
    grads, before, after = [], [], []
    with watch(model, tmp_path / "r", optimizer=opt, gradients=True, updates=True):
        for x, y in data:
            grads.append(manual_grads(model, x, y))
            before.append(model.fc.weight.detach().clone())
            opt.step()
            after.append(model.fc.weight.detach().clone())
    run = weightlapse.open(tmp_path / "r")
    g = run["fc.weight"].grad.stats
    assert list(g.steps) == [1, 2, 3]  # no gradient at the initial step 0
    for k in range(3):
        assert g["l2"][k] == pytest.approx(float(grads[k]["fc.weight"].norm()), rel=1e-5)
        assert g["mean"][k] == pytest.approx(float(grads[k]["fc.weight"].mean()), abs=1e-7)
    u = run["fc.weight"].update.stats
    for k in range(3):
        assert u["l2"][k] == pytest.approx(float((after[k] - before[k]).norm()), rel=1e-4)
    ratio = run["fc.weight"].update_ratio
    assert ratio.values[2] == pytest.approx(
        float((after[2] - before[2]).norm() / after[2].norm()), rel=1e-4
    )


def test_grad_scaler_gradients_are_the_true_unscaled_ones(tmp_path):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    x, y = batches(1)[0]
    true = manual_grads(model, x, y)
    with watch(model, tmp_path / "r", optimizer=opt, gradients=True):
        opt.zero_grad()
        scaler.scale(torch.nn.functional.cross_entropy(model(x), y)).backward()
        assert model.fc.weight.grad.norm() > 1000 * true["fc.weight"].norm()  # scaled
        scaler.step(opt)
        scaler.update()
    g = weightlapse.open(tmp_path / "r")["fc.weight"].grad.stats
    assert list(g.steps) == [1]
    assert g["l2"][0] == pytest.approx(float(true["fc.weight"].norm()), rel=1e-4)


def test_watch_works_on_a_compiled_model(tmp_path):
    torch.manual_seed(0)
    model = Net()
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(compiled.parameters(), lr=0.1)
    with watch(compiled, tmp_path / "r", optimizer=opt, gradients=True):
        for x, y in batches(2):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(compiled(x), y).backward()
            opt.step()
    run = weightlapse.open(tmp_path / "r")
    assert run.tensors == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert list(run.steps) == [0, 1, 2]
    assert run["fc.weight"].stats["l2"][-1] == pytest.approx(
        float(model.fc.weight.detach().norm()), rel=1e-5
    )
    assert run.meta["model"]["class"] == "Net"


def test_explicit_step_and_schedules(tmp_path):
    model = torch.nn.Linear(3, 2)
    with watch(model, tmp_path / "r", every=3, snapshots="epoch") as rec:
        for epoch in range(2):
            for _ in range(4):
                model.weight.data += 1.0
                rec.step(loss=1.0)
            rec.epoch_end(val_accuracy=0.5 + epoch)
    run = weightlapse.open(tmp_path / "r")
    # every 3rd step, plus the two epoch ends (steps 4 and 8) for the snapshots
    assert list(run.steps) == [0, 3, 4, 6, 8]
    assert run["weight"].snapshot_steps == [4, 8]
    acc = run.scalar("val_accuracy")
    assert acc[2] == 0.5 and acc[4] == 1.5


def test_nan_weights_in_training_are_recorded_not_a_crash(tmp_path):
    model = torch.nn.Linear(4, 4)
    with watch(model, tmp_path / "r", snapshots=1) as rec:
        with torch.no_grad():
            model.weight[0, 0] = float("nan")
            model.weight[1, 1] = float("inf")
        rec.step()
    w = weightlapse.open(tmp_path / "r")["weight"]
    assert list(w.stats["nan_count"]) == [0, 1] and list(w.stats["inf_count"]) == [0, 1]
    assert np.isnan(w.at(1)[0, 0])


def test_watch_refuses_what_is_not_a_module(tmp_path):
    with pytest.raises(weightlapse.WeightlapseError, match="torch.nn.Module"):
        watch({"w": 1}, tmp_path / "r")


def test_the_on_device_path_gives_the_same_numbers(tmp_path, monkeypatch):
    """GPU tensors are reduced on their device; force that path on CPU and compare."""
    from weightlapse.record.torch_ops import TorchOps

    def run_once(path):
        torch.manual_seed(0)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with watch(model, path, optimizer=opt, gradients=True, updates=True):
            for x, y in batches(3):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        return weightlapse.open(path)

    host = run_once(tmp_path / "host")
    monkeypatch.setattr(TorchOps, "host_copy", lambda self, arrays: None)
    device = run_once(tmp_path / "device")
    for name in host.tensors:
        for kind in ("param", "grad", "update"):
            a = getattr(host[name], kind) if kind != "param" else host[name]
            b = getattr(device[name], kind) if kind != "param" else device[name]
            np.testing.assert_allclose(a.stats.table, b.stats.table, rtol=1e-4, atol=1e-7)
            np.testing.assert_array_equal(a.histograms.counts, b.histograms.counts)


def test_snapshots_stop_at_the_budget_and_statistics_go_on(tmp_path):
    """They stop a snapshot early, so that the trained model's fits at close (a big model
    used to spend the budget on its first steps and end with no final snapshot)."""
    model = torch.nn.Linear(10, 10)  # 110 float32 = 440 bytes a snapshot
    with pytest.warns(RuntimeWarning, match="snapshot budget.*room is kept for the final"):
        with watch(model, tmp_path / "r", snapshots=1, snapshot_budget=1000) as rec:
            for _ in range(5):
                with torch.no_grad():
                    model.weight.add_(1.0)
                rec.step()
    run = weightlapse.open(tmp_path / "r")
    assert run["weight"].snapshot_steps == [0, 5]  # 440 + 440 <= 1000: no room for step 1's
    np.testing.assert_array_equal(run["weight"].at(5), model.weight.detach().numpy())
    assert list(run["weight"].stats.steps) == [0, 1, 2, 3, 4, 5]


def test_wrapped_optimizers_are_unwrapped_and_a_failed_start_leaves_nothing(tmp_path):
    import weightlapse
    from weightlapse.errors import WeightlapseError
    from weightlapse.torch import watch

    class Accelerated:  # accelerate's AcceleratedOptimizer keeps it in .optimizer
        def __init__(self, optimizer):
            self.optimizer = optimizer

        def step(self):
            self.optimizer.step()

    class LightningLike:  # Lightning's LightningOptimizer keeps it in ._optimizer
        def __init__(self, optimizer):
            self._optimizer = optimizer

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for k, wrapper in enumerate((Accelerated(opt), LightningLike(Accelerated(opt)))):
        with watch(model, tmp_path / f"ok{k}", optimizer=wrapper, gradients=True):
            model(torch.ones(1, 3)).sum().backward()
            opt.step()
        run = weightlapse.open(tmp_path / f"ok{k}")
        assert list(run["weight"].grad.stats.steps) == [1]
    with pytest.raises(WeightlapseError, match="not a torch.optim.Optimizer"):
        watch(model, tmp_path / "bad", optimizer=object())
    assert not (tmp_path / "bad").exists()
    with pytest.raises(WeightlapseError):
        watch(
            model,
            tmp_path / "half",
            optimizer=opt,
            probe_inputs=torch.ones(1, 3),
            activations=["no_such_layer"],
        )
    assert not (tmp_path / "half").exists()  # a retry will not find it "exists"
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
