"""User story 1: one tanh neuron learns y = tanh(x1 + x2); its two weights climb to 1.0.

SGD (lr 0.5), MSE, 500 noisy samples, batches of 32, 10 epochs, recorded at every batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from weightlapse.demos.frameworks import check_framework
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.views.figure import new_figure
from weightlapse.views.trajectories import trajectories

EPOCHS, BATCH, LR, NOISE = 10, 32, 0.5, 0.014


@dataclass
class NeuronResult:
    framework: str
    loss_before: float
    loss_after: float
    weights: np.ndarray
    bias: float
    run_path: Path
    figure_path: Path


def make_data(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (700, 2)).astype(np.float32)
    y = (np.tanh(x.sum(axis=1)) + rng.normal(0, NOISE, 700)).astype(np.float32)[:, None]
    return x[:500], y[:500], x[500:], y[500:]


def _train_torch(run_path: Path, seed: int) -> tuple[float, float, str, str]:
    import torch

    from weightlapse.integrations.torch import watch

    x, y, x_test, y_test = (torch.from_numpy(a) for a in make_data(seed))
    torch.manual_seed(seed)
    model = torch.nn.Sequential()
    model.add_module("dense", torch.nn.Linear(2, 1))
    model.add_module("tanh", torch.nn.Tanh())
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)

    def test_loss() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(model(x_test), y_test))

    before = test_loss()
    generator = torch.Generator().manual_seed(seed)
    with watch(model, run_path, optimizer=optimizer, snapshots="epoch") as recorder:
        for _ in range(EPOCHS):
            for idx in torch.randperm(len(x), generator=generator).split(BATCH):
                loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                recorder.log_scalars(loss=loss.detach())
            recorder.epoch_end(test_loss=test_loss())
    return before, test_loss(), "dense.weight", "dense.bias"


def _train_keras(run_path: Path, seed: int) -> tuple[float, float, str, str]:
    import keras

    from weightlapse.integrations.keras import Recorder

    x, y, x_test, y_test = make_data(seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, activation="tanh", name="dense")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR), loss="mse")
    before = float(model.evaluate(x_test, y_test, verbose=0))
    recorder = Recorder(run_path, snapshots="epoch")
    model.fit(
        x,
        y,
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_data=(x_test, y_test),
        callbacks=[recorder],
        verbose=0,
    )
    recorder.close()
    return before, float(model.evaluate(x_test, y_test, verbose=0)), "dense/kernel", "dense/bias"


def neuron_figure(run: Run, kernel: str, bias: str, framework: str) -> Figure:
    """The story's figure: the two weights over the batches, the bias below."""
    fig = new_figure((8, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    trajectories(run, kernel, ax=top, title=f"{framework}: the two weights over batches")
    trajectories(run, bias, ax=bottom, title="bias")
    top.tick_params(labelbottom=True)  # shared steps, but each panel says them
    top.set_xlabel("step")
    return fig


def run_neuron(
    framework: str = "torch",
    out_dir: str | Path = "weightlapse-demo",
    seed: int = 0,
    keras_backend: str | None = None,
) -> NeuronResult:
    """Trains the neuron, records every batch, and writes the trajectory figure."""
    check_framework(framework, keras_backend)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / f"neuron-{framework}.zarr"
    if run_path.exists():
        import shutil

        shutil.rmtree(run_path)
    train = _train_torch if framework == "torch" else _train_keras
    before, after, kernel, bias = train(run_path, seed)
    run = open_run(run_path)
    figure_path = out / f"neuron-{framework}.png"
    neuron_figure(run, kernel, bias, framework).savefig(figure_path, dpi=110)
    weights = run[kernel].at(-1).reshape(-1)
    return NeuronResult(
        framework,
        before,
        after,
        weights,
        float(run[bias].at(-1).reshape(-1)[0]),
        run_path,
        figure_path,
    )
