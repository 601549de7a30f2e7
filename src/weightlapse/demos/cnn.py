"""A gallery: a small conv net on digits, recorded with gradients, updates and activation
probes, then every view and an animation written to one folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from weightlapse.demos.data import Digits, load_digits
from weightlapse.demos.frameworks import check_framework
from weightlapse.health import diagnose
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.views.activations import activation_grid
from weightlapse.views.animate import animate
from weightlapse.views.filters import filter_grid
from weightlapse.views.heatmap import heatmap
from weightlapse.views.histograms import histogram_ridgeline, histograms_over_time
from weightlapse.views.statistics import overview, statistics_over_time
from weightlapse.views.trajectories import trajectories

EPOCHS, BATCH, LR, SNAPSHOT_EVERY, PROBES = 3, 64, 2e-3, 25, 4


@dataclass
class CnnResult:
    framework: str
    source: str
    val_accuracy: list[float]
    run_path: Path
    seconds: float
    files: list[Path] = field(default_factory=list)


def _images(data: Digits, x: np.ndarray, channels_last: bool) -> np.ndarray:
    h, w = data.image_shape
    return x.reshape(len(x), h, w, 1) if channels_last else x.reshape(len(x), 1, h, w)


def _train_torch(run_path: Path, data: Digits, epochs: int, seed: int) -> tuple[list, dict]:
    import torch
    from torch import nn

    from weightlapse.integrations.torch import watch

    torch.manual_seed(seed)
    h, w = data.image_shape
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 8, 3, padding=1))
    model.add_module("relu1", nn.ReLU())
    model.add_module("pool1", nn.MaxPool2d(2))
    model.add_module("conv2", nn.Conv2d(8, 16, 3, padding=1))
    model.add_module("relu2", nn.ReLU())
    model.add_module("pool2", nn.MaxPool2d(2))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(16 * (h // 4) * (w // 4), 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x = torch.from_numpy(_images(data, data.x_train, False))
    y = torch.from_numpy(data.y_train)
    x_val = torch.from_numpy(_images(data, data.x_val, False))
    y_val = torch.from_numpy(data.y_val)
    generator = torch.Generator().manual_seed(seed)
    accuracies = []
    with watch(
        model,
        run_path,
        optimizer=optimizer,
        gradients=True,
        updates=True,
        snapshots=SNAPSHOT_EVERY,
        probe_inputs=x_val[:PROBES],
        activations=["conv1", "relu1", "relu2", "fc"],
    ) as recorder:
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(BATCH):
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                recorder.log_scalars(loss=loss.detach())
            with torch.no_grad():
                accuracies.append(float((model(x_val).argmax(1) == y_val).float().mean()))
            recorder.epoch_end(val_accuracy=accuracies[-1])
    names = {
        "conv1": "conv1.weight",
        "conv2": "conv2.weight",
        "fc": "fc.weight",
        "relu1": "relu1",
        "relu2": "relu2",
    }
    return accuracies, names


def _train_keras(run_path: Path, data: Digits, epochs: int, seed: int) -> tuple[list, dict]:
    import keras

    from weightlapse.integrations.keras import Recorder

    keras.utils.set_random_seed(seed)
    h, w = data.image_shape
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((h, w, 1)),
            layers.Conv2D(8, 3, padding="same", name="conv1"),
            layers.ReLU(name="relu1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(16, 3, padding="same", name="conv2"),
            layers.ReLU(name="relu2"),
            layers.MaxPooling2D(name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, name="fc"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LR),
        metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x_val = _images(data, data.x_val, True)
    recorder = Recorder(
        run_path,
        gradients=True,
        updates=True,
        snapshots=SNAPSHOT_EVERY,
        probe_inputs=x_val[:PROBES],
        activations=["conv1", "relu1", "relu2", "fc"],
    )
    history = model.fit(
        _images(data, data.x_train, True),
        data.y_train,
        batch_size=BATCH,
        epochs=epochs,
        validation_data=(x_val, data.y_val),
        verbose=0,
        callbacks=[recorder],
    )
    recorder.close()
    names = {
        "conv1": "conv1/kernel",
        "conv2": "conv2/kernel",
        "fc": "fc/kernel",
        "relu1": "relu1",
        "relu2": "relu2",
    }
    return [float(a) for a in history.history["val_accuracy"]], names


def run_cnn(
    framework: str = "torch",
    out_dir: str | Path = "weightlapse-gallery",
    data: str | Path | None = None,
    epochs: int = EPOCHS,
    seed: int = 0,
    keras_backend: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CnnResult:
    """Trains and records the conv net, then writes the gallery into `out_dir`."""
    check_framework(framework, keras_backend)
    say = progress or (lambda message: None)
    start = time.perf_counter()
    digits = load_digits(data, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / f"cnn-{framework}.zarr"
    if run_path.exists():
        shutil.rmtree(run_path)
    say(f"training on {digits.source}")
    train = _train_torch if framework == "torch" else _train_keras
    accuracies, names = train(run_path, digits, epochs, seed)
    run = open_run(run_path)
    result = CnnResult(framework, digits.source, accuracies, run_path, 0.0)
    say("drawing the gallery")
    for filename, draw in _gallery(run, names).items():
        path = out / filename
        draw().savefig(path, dpi=100)
        result.files.append(path)
    say("animating the first layer's filters")
    result.files.append(
        animate(run, "filters", names["conv1"], out / "conv1-filters.gif", fps=4, progress=False)
    )
    report = out / "doctor.txt"
    findings = diagnose(run)
    report.write_text("\n".join(map(str, findings)) + "\n" if findings else "No problems found.\n")
    result.files.append(report)
    result.seconds = time.perf_counter() - start
    return result


def _gallery(run: Run, n: dict[str, str]) -> dict[str, Callable[[], Figure]]:
    last = run[n["conv1"]].snapshot_steps[-1]
    return {
        "trajectories-conv1.png": lambda: trajectories(run, n["conv1"]),
        "filters-conv1.png": lambda: filter_grid(run, n["conv1"]),
        "filters-conv2.png": lambda: filter_grid(run, n["conv2"]),
        "heatmap-fc-change.png": lambda: heatmap(run, n["fc"], step=last, minus_step=0),
        "histograms-conv2.png": lambda: histograms_over_time(run, n["conv2"], log=True),
        "histograms-conv2-grad.png": lambda: histograms_over_time(
            run, n["conv2"], kind="grad", log=True
        ),
        "ridgeline-fc.png": lambda: histogram_ridgeline(run, n["fc"]),
        "stats-conv1.png": lambda: statistics_over_time(
            run, n["conv1"].rsplit(".", 1)[0] if "." in n["conv1"] else "conv1"
        ),
        "overview-grad-l2.png": lambda: overview(run, kind="grad"),
        "activations-relu1.png": lambda: activation_grid(run, n["relu1"], sample=0),
        "activations-relu2.png": lambda: activation_grid(run, n["relu2"], sample=0),
    }
