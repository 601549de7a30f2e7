"""weightlapse.lightning on a real Lightning Trainer (CPU, a few steps): the gradients
each optimizer step used, metrics and hyperparameters through the logger, manual
optimization with two optimizers, and mixed precision."""

import numpy as np
import pytest
import torch

import weightlapse

lightning = pytest.importorskip("lightning")
from weightlapse.lightning import WeightlapseCallback, WeightlapseLogger  # noqa: E402

pytestmark = pytest.mark.slow


def data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return torch.utils.data.DataLoader(list(zip(x.split(4), y.split(4))), batch_size=None)


def trainer(*callbacks, logger=False, **kwargs):
    return lightning.Trainer(
        max_epochs=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        callbacks=list(callbacks),
        **kwargs,
    )


class Regression(lightning.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(3, 1)
        self.seen = []  # .grad as Lightning hands it to the optimizer (before clipping)

    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def on_before_optimizer_step(self, optimizer):
        self.seen.append(self.net.weight.grad.detach().float().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def test_callback_and_logger_share_one_run_with_metrics_and_hyperparameters(tmp_path):
    module = Regression(lr=0.05)
    logger = WeightlapseLogger(tmp_path / "r")
    trainer(WeightlapseCallback(gradients=True), logger=logger, default_root_dir=tmp_path).fit(
        module, data()
    )
    run = weightlapse.open(tmp_path / "r")
    assert list(run.steps) == list(range(9))  # the initial weights and 8 optimizer steps
    assert not run.is_live
    assert run.meta["model"]["class"] == "Regression"
    assert run.meta["hyperparameters"] == {"lr": 0.05}
    losses = run.scalar("train_loss")
    assert np.isnan(losses[0]) and np.isfinite(losses[1:]).all()
    grads = run["net.weight"].grad.trajectory().values
    np.testing.assert_allclose(grads, np.stack([g.numpy().ravel() for g in module.seen]))
    np.testing.assert_array_equal(run["net.weight"].at(-1), module.net.weight.detach().numpy())
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_the_logger_alone_records_the_metrics(tmp_path):
    trainer(logger=WeightlapseLogger(tmp_path / "m")).fit(Regression(), data())
    run = weightlapse.open(tmp_path / "m")
    assert run.tensors == []
    assert "train_loss" in run.scalar_names and len(run.steps) == 8
    assert run.meta["hyperparameters"] == {"lr": 0.1}


class TwoOptimizers(lightning.LightningModule):
    """Manual optimization, a GAN's shape: two networks, two optimizers, two steps a batch."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        torch.manual_seed(0)
        self.a = torch.nn.Linear(3, 1)
        self.b = torch.nn.Linear(3, 1)
        self.seen = []

    def training_step(self, batch, batch_idx):
        opt_a, opt_b = self.optimizers()
        x, y = batch
        for net, opt in ((self.a, opt_a), (self.b, opt_b)):
            opt.zero_grad()
            self.manual_backward(torch.nn.functional.mse_loss(net(x), y))
            self.clip_gradients(opt, gradient_clip_val=0.3, gradient_clip_algorithm="norm")
            self.seen.append(net.weight.grad.detach().clone())
            opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.a.parameters(), lr=0.1), torch.optim.Adam(
            self.b.parameters(), lr=0.01
        )


def test_manual_optimization_with_two_optimizers_and_clipping(tmp_path):
    module = TwoOptimizers()
    trainer(WeightlapseCallback(tmp_path / "g", gradients=True)).fit(module, data())
    run = weightlapse.open(tmp_path / "g")
    assert list(run.steps) == list(range(17))  # two optimizer steps for each of 8 batches
    a = run["a.weight"].grad.stats["l2"]
    b = run["b.weight"].grad.stats["l2"]
    steps = run["a.weight"].grad.stats.steps
    # a step records the gradients of the parameters its optimizer updates, only
    by_step = dict(zip(steps, a))
    assert all(np.isfinite(by_step[s]) for s in range(1, 17, 2))
    assert all(s not in by_step or np.isnan(by_step[s]) for s in range(2, 17, 2))
    want = [float(g.norm()) for g in module.seen]
    got = {s: v for s, v in zip(run["b.weight"].grad.stats.steps, b) if np.isfinite(v)}
    got.update({s: v for s, v in by_step.items() if np.isfinite(v)})
    np.testing.assert_allclose([got[s] for s in range(1, 17)], want, rtol=1e-5)
    assert max(want) <= 0.3 + 1e-6  # clipped before the step, and recorded so


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_mixed_precision_records_the_gradients_the_optimizer_used(tmp_path, precision):
    module = Regression()
    trainer(WeightlapseCallback(tmp_path / "p", gradients=True), precision=precision).fit(
        module, data()
    )
    run = weightlapse.open(tmp_path / "p")
    grads = run["net.weight"].grad.trajectory().values
    np.testing.assert_allclose(grads, np.stack([g.numpy().ravel() for g in module.seen]))
    if precision == "bf16-true":
        assert run["net.weight"].dtype == "bfloat16"


def test_a_callback_with_nowhere_to_record_says_so(tmp_path):
    with pytest.raises(weightlapse.WeightlapseError, match="no run to record into"):
        trainer(WeightlapseCallback()).fit(Regression(), data())
