"""Recording overhead the way a user waits for it: continuous training steps plus the
recorder's close(), interleaved round by round in one process (this machine is noisy),
against the same steps without recording and against the peers that record the same
information: TensorBoard's add_histogram of every parameter and gradient at every step,
and wandb.watch(log="all", log_freq=1) offline (when wandb is installed).

    python bench/overhead.py [--steps 300] [--rounds 3] [--models mlp,cnn,transformer]
                             [--peers tensorboard,wandb] [--parts]

`--parts` adds the defaults taken apart, to see what each costs: statistics alone (no
histograms, no snapshots), then statistics and histograms (no snapshots).

Each cell is (recorded step time + close) / plain step time, the median over rounds.
Also printed: bytes on disk per step, the steps (and seconds of training) not yet
committed when training ended, the seconds `close()` took, and each variant's peak RSS,
from one more run of it in a process of its own (one process's peak cannot tell the
variants apart). The transformer (25.2M parameters) runs a tenth of the steps.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

BATCH = 64


def models() -> dict[str, Callable[[], object]]:
    import torch.nn as nn

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, 10),
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

    def transformer() -> nn.Module:
        # 8 blocks of width 512 (8 heads, feed-forward 2048): 25.2M parameters
        layer = nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.0, batch_first=True)
        return nn.Sequential(nn.TransformerEncoder(layer, 8, enable_nested_tensor=False))

    return {"mlp": mlp, "cnn": cnn, "transformer": transformer}


def batch(name: str) -> tuple[object, object, Callable[[object, object], object]]:
    """Inputs, targets and the loss for a model: MNIST-shaped images, or 8 sequences of
    32 tokens of width 512 for the transformer."""
    import torch

    if name == "transformer":
        x = torch.randn(8, 32, 512)
        return x, torch.zeros_like(x), torch.nn.functional.mse_loss
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    return x, y, torch.nn.functional.cross_entropy


# The transformer's step is ~100x the MLP's: it runs a tenth of the steps.
STEP_SHARE = {"transformer": 10}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one(name: str, variant: str, steps: int, tmp: Path) -> dict[str, float]:
    """Seconds for `steps` continuous steps plus the recorder's ending, and what it left."""
    import torch

    import weightlapse
    import weightlapse.torch

    torch.manual_seed(0)
    model = models()[name]()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y, loss_of = batch(name)
    out = tmp / variant
    after: Callable[[int], None] = lambda i: None  # noqa: E731
    finish: Callable[[], None] = lambda: None  # noqa: E731
    if variant == "weightlapse defaults":
        rec = weightlapse.torch.watch(model, out, optimizer=opt)
        finish = rec.close
    elif variant == "weightlapse stats only":
        rec = weightlapse.torch.watch(model, out, optimizer=opt, snapshots=None, histograms=None)
        finish = rec.close
    elif variant == "weightlapse stats+histograms":
        rec = weightlapse.torch.watch(model, out, optimizer=opt, snapshots=None)
        finish = rec.close
    elif variant == "weightlapse params+grads":
        rec = weightlapse.torch.watch(model, out, optimizer=opt, gradients=True, snapshots=None)
        finish = rec.close
    elif variant == "tensorboard add_histogram":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out))
        named = list(model.named_parameters())

        def after(i: int) -> None:
            for name, p in named:
                writer.add_histogram(name, p.detach(), i)
                writer.add_histogram(f"{name}/grad", p.grad, i)

        finish = writer.close
    elif variant == "wandb.watch all":
        import wandb

        run = wandb.init(project="bench", dir=str(tmp), mode="offline")
        wandb.watch(model, log="all", log_freq=1)

        def after(i: int) -> None:
            wandb.log({"step": i})

        finish = run.finish
    began = time.perf_counter()
    for i in range(steps):
        opt.zero_grad()
        loss_of(model(x), y).backward()
        opt.step()
        after(i)
    trained = time.perf_counter() - began
    behind = float("nan")
    if variant.startswith("weightlapse"):
        behind = steps + 1 - len(weightlapse.open(out).steps)
    finish()
    total = time.perf_counter() - began
    size = folder_bytes(out) if out.exists() else float("nan")
    return {
        "total": total,
        "trained": trained,
        "behind": behind,
        "behind_s": behind * trained / steps,
        "bytes": size / steps,
    }


def peak_rss_mib(name: str, variant: str, steps: int) -> float:
    """The peak resident memory of a process that runs one variant once."""
    out = subprocess.run(
        [sys.executable, __file__, "--peak-of", name, variant, str(steps)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-1])


def print_peak_rss(name: str, variant: str, steps: int) -> None:
    """Runs in the child process of `peak_rss_mib`. VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over an exec, so a child forked from this 1 GB process would report 1 GB."""
    with tempfile.TemporaryDirectory() as tmp:
        one(name, variant, steps, Path(tmp))
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        print(int(line.split()[1]) / 1024)  # kB
    else:  # not Linux: ru_maxrss (bytes on macOS)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--peak-of":
        print_peak_rss(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="mlp,cnn,transformer")
    parser.add_argument("--peers", default="tensorboard,wandb", help="peers to compare with")
    parser.add_argument("--parts", action="store_true", help="the defaults taken apart too")
    args = parser.parse_args()
    import importlib.util

    variants = ["plain", "weightlapse defaults", "weightlapse params+grads"]
    if args.parts:
        variants[1:1] = ["weightlapse stats only", "weightlapse stats+histograms"]
    peers = args.peers.split(",")
    if "tensorboard" in peers:
        variants.append("tensorboard add_histogram")
    if "wandb" in peers and importlib.util.find_spec("wandb"):
        variants.append("wandb.watch all")
    elif "wandb" in peers:
        print("(wandb is not installed: its column is left out; pip install wandb)")
    print(
        f"{args.steps} continuous steps (transformer: a tenth) + close, median of "
        f"{args.rounds} rounds"
    )
    print("| model | plain step | " + " | ".join(variants[1:]) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in variants[1:]) + " |")
    extras = []
    for name in args.models.split(","):
        steps = max(10, args.steps // STEP_SHARE.get(name, 1))
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for variant in variants:  # interleaved: each round runs every variant
                    where = Path(tmp) / f"{r}"
                    where.mkdir(exist_ok=True)
                    results[variant].append(one(name, variant, steps, where))
        plain = statistics.median(x["total"] for x in results["plain"]) / steps
        cells = []
        for variant in variants[1:]:
            ratio = statistics.median(x["total"] for x in results[variant]) / steps / plain
            cells.append(f"{ratio:.2f}x")
            if variant.startswith("weightlapse"):
                behind = statistics.median(x["behind"] for x in results[variant])
                behind_s = statistics.median(x["behind_s"] for x in results[variant])
                per_step = statistics.median(x["bytes"] for x in results[variant])
                closing = statistics.median(x["total"] - x["trained"] for x in results[variant])
                extras.append(
                    f"{name}, {variant}: {per_step / 1024:.1f} KiB on disk per step, "
                    f"{behind:.0f} steps ({behind_s:.1f} s of training) uncommitted when "
                    f"training ended, close() {closing:.2f} s"
                )
        print(f"| {name} | {plain * 1e3:.2f} ms | " + " | ".join(cells) + " |")
        peaks = ", ".join(f"{v} {peak_rss_mib(name, v, steps):.0f} MiB" for v in variants)
        extras.append(f"{name}, peak RSS of a process running it once: {peaks}")
    for line in extras:
        print(line)


if __name__ == "__main__":
    main()
