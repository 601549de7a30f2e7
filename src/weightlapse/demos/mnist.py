"""User story 2: a linear softmax classifier on digits; each class's weights as an image.

SGD (lr 0.5), batches of 100, 10 epochs, recorded every batch with a snapshot per epoch.
The class templates after epoch 1 and after the last epoch share one symmetric scale.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from weightlapse.demos.data import Digits, load_digits
from weightlapse.demos.frameworks import check_framework
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.views.weight_images import weight_images

EPOCHS, BATCH, LR = 10, 100, 0.5
EpochReport = Callable[[int, float, float], None]


@dataclass
class MnistResult:
    framework: str
    source: str
    val_accuracy: list[float]
    epoch_seconds: list[float]
    weight_range: dict[int, tuple[float, float]]
    run_path: Path
    figure_paths: list[Path] = field(default_factory=list)

    def templates(self, step: int = -1) -> np.ndarray:
        """(classes, pixels): each class's incoming weights at a snapshot."""
        run = open_run(self.run_path)
        name = run.tensors[0]
        weights = run[name].at(step)
        return weights if run[name].layout.startswith("out") else weights.T


def _train_torch(
    run_path: Path, data: Digits, epochs: int, seed: int, report: EpochReport
) -> tuple[list[float], list[float]]:
    import torch

    from weightlapse.integrations.torch import watch

    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    torch.manual_seed(seed)
    model = torch.nn.Sequential()
    model.add_module("dense", torch.nn.Linear(x.shape[1], 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(seed)
    accuracies, seconds = [], []
    with watch(model, run_path, optimizer=optimizer, snapshots="epoch") as recorder:
        recorder.run.set_meta(input_shape=list(data.image_shape))
        for epoch in range(epochs):
            start = time.perf_counter()
            for idx in torch.randperm(len(x), generator=generator).split(BATCH):
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                recorder.log_scalars(loss=loss.detach())
            elapsed = time.perf_counter() - start
            with torch.no_grad():
                accuracy = float((model(x_val).argmax(1) == y_val).float().mean())
            recorder.epoch_end(val_accuracy=accuracy, epoch_seconds=elapsed)
            accuracies.append(accuracy)
            seconds.append(elapsed)
            report(epoch + 1, elapsed, accuracy)
    return accuracies, seconds


def _train_keras(
    run_path: Path, data: Digits, epochs: int, seed: int, report: EpochReport
) -> tuple[list[float], list[float]]:
    import keras

    from weightlapse.integrations.keras import Recorder

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((data.x_train.shape[1],)),
            keras.layers.Dense(10, activation="softmax", name="dense"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=LR),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    recorder = Recorder(run_path, snapshots="epoch")
    recorder.run.set_meta(input_shape=list(data.image_shape))

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            report(epoch + 1, float(recorder._epoch_seconds()), float(logs["val_accuracy"]))

    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=BATCH,
        validation_data=(data.x_val, data.y_val),
        verbose=0,
        callbacks=[recorder, Report()],
    )
    recorder.close()
    run = open_run(run_path)
    seconds = run.scalar("epoch_seconds")
    return [float(a) for a in history.history["val_accuracy"]], [
        float(s) for s in seconds[~np.isnan(seconds)]
    ]


def run_mnist(
    framework: str = "torch",
    out_dir: str | Path = "weightlapse-demo",
    data: str | Path | None = None,
    epochs: int = EPOCHS,
    seed: int = 0,
    keras_backend: str | None = None,
    report: EpochReport | None = None,
    fetch: bool = True,
) -> MnistResult:
    """Trains the linear classifier, records it, and draws the class templates. Without
    `data`, MNIST is fetched once (unless `fetch=False`), else the 8x8 digits are used."""
    check_framework(framework, keras_backend)
    digits = load_digits(data, seed, fetch=fetch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / f"mnist-{framework}.zarr"
    if run_path.exists():
        shutil.rmtree(run_path)
    train = _train_torch if framework == "torch" else _train_keras
    accuracies, seconds = train(run_path, digits, epochs, seed, report or (lambda *a: None))
    run = open_run(run_path)
    result = MnistResult(framework, digits.source, accuracies, seconds, {}, run_path)
    _draw_templates(run, result, out)
    return result


def _draw_templates(run: Run, result: MnistResult, out: Path) -> None:
    name = run.tensors[0]
    history = run[name]
    snapshot_steps = history.snapshot_steps
    epochs_at = dict(zip(snapshot_steps, range(1, len(snapshot_steps) + 1)))
    for step in dict.fromkeys([snapshot_steps[0], snapshot_steps[-1]]):
        epoch = epochs_at[step]
        weights = history.at(step)
        result.weight_range[epoch] = (float(np.nanmin(weights)), float(np.nanmax(weights)))
        fig = weight_images(run, name, step=step, unit_names=[f"class {i}" for i in range(10)])
        fig.suptitle(
            f"{result.framework}: class templates after epoch {epoch} (step {step}); "
            f"min {result.weight_range[epoch][0]:.3f}, max {result.weight_range[epoch][1]:.3f}, "
            f"val accuracy {result.val_accuracy[epoch - 1]:.3f}"
        )
        path = out / f"mnist-{result.framework}-epoch{epoch}.png"
        fig.savefig(path, dpi=100)
        result.figure_paths.append(path)
