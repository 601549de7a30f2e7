"""Training-step time with weightlapse recording, over the time without it.

Recorded: statistics and a 64-bin histogram of every parameter and every gradient at
every step, probes, and full snapshots every 100 steps. Compared side by side, in the
same process and interleaved round by round (this machine is noisy), with the same
information logged through TensorBoard's `SummaryWriter.add_histogram`.

    python bench/overhead.py [--steps 200] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="keras-home-"))

import numpy as np  # noqa: E402

BATCH = 64


def torch_models() -> dict[str, Callable[[], object]]:
    import torch.nn as nn

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 5 * 5, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    return {"MLP": mlp, "CNN": cnn}


def bench_torch(name: str, build: Callable[[], object], steps: int, rounds: int) -> dict:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from weightlapse.torch import watch

    torch.manual_seed(0)
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    loss_fn = torch.nn.CrossEntropyLoss()
    n_params = sum(p.numel() for p in model.parameters())
    named = list(model.named_parameters())

    def train(n: int, after_step: Callable[[int], None] | None = None) -> float:
        start = time.perf_counter()
        for i in range(n):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if after_step:
                after_step(i)
        return (time.perf_counter() - start) / n

    train(20)  # warm up
    times: dict[str, list[float]] = {"baseline": [], "weightlapse": [], "tensorboard": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            times["baseline"].append(train(steps))

            rec = watch(model, Path(tmp) / f"run{r}", optimizer=opt, gradients=True, snapshots=100)
            times["weightlapse"].append(train(steps))
            rec.close()

            writer = SummaryWriter(str(Path(tmp) / f"tb{r}"))

            def log_tb(i: int, writer: SummaryWriter = writer, params: list = named) -> None:
                for pname, p in params:
                    writer.add_histogram(pname, p.detach(), i)
                    writer.add_histogram(f"{pname}/grad", p.grad, i)

            times["tensorboard"].append(train(steps, log_tb))
            writer.close()
    return summarise(f"torch {name}", n_params, times)


def keras_models() -> dict[str, Callable[[], object]]:
    import keras

    def mlp() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10),
            ]
        )

    def cnn() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(32, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10),
            ]
        )

    return {"MLP": mlp, "CNN": cnn}


def bench_keras(name: str, build: Callable[[], object], steps: int, rounds: int) -> dict:
    import keras

    from weightlapse.keras import Recorder

    keras.utils.set_random_seed(0)
    model = build()
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * steps, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, BATCH * steps)
    model.fit(x[: BATCH * 20], y[: BATCH * 20], batch_size=BATCH, verbose=0)  # warm up

    def train(callbacks: list) -> float:
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
        return (time.perf_counter() - start) / steps

    times: dict[str, list[float]] = {"baseline": [], "weightlapse": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            times["baseline"].append(train([]))
            rec = Recorder(Path(tmp) / f"run{r}", gradients=True, snapshots=100)
            times["weightlapse"].append(train([rec]))
            rec.close()
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return summarise(f"keras/{keras.backend.backend()} {name}", n_params, times)


def summarise(label: str, n_params: int, times: dict[str, list[float]]) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"label": label, "params": n_params, **med}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-keras", action="store_true")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [bench_torch(n, b, args.steps, args.rounds) for n, b in torch_models().items()]
    if not args.skip_keras:
        rows += [bench_keras(n, b, args.steps, args.rounds) for n, b in keras_models().items()]
    print(
        f"\nbatch {BATCH}, {args.steps} steps x {args.rounds} interleaved rounds, medians; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'model':<22}{'params':>9}{'step ms':>9}{'weightlapse':>13}{'tensorboard':>13}")
    for row in rows:
        base = row["baseline"]
        tb = f"{row['tensorboard'] / base:12.3f}x" if "tensorboard" in row else f"{'-':>13}"
        print(
            f"{row['label']:<22}{row['params']:>9,}{base * 1e3:>9.2f}"
            f"{row['weightlapse'] / base:12.3f}x{tb}"
        )
    print("ratios are step time with recording / without (1.000x = free)")


if __name__ == "__main__":
    main()
