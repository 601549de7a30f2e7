"""What a kill -9 loses: train the 269K-parameter MLP under `watch()` defaults in another
process, kill it at a few moments, and compare the steps it had taken with the steps
the run holds. The promise (README): at most the steps since the last flush, which is
every `flush_seconds` (2 s) or 4,096 steps.

    python bench/kill9.py [--seconds 3,5,8,13]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = """
import os, sys, time, torch, weightlapse.torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                            torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(64, 784); y = torch.randint(0, 10, (64,))
rec = weightlapse.torch.watch(model, sys.argv[1], optimizer=opt)
progress = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT)
step = 0
while True:
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    step += 1
    os.pwrite(progress, f"{step:>12} {time.time():.6f}".encode(), 0)  # what training reached
"""


def one_round(seconds: float) -> tuple[int, int, float]:
    import weightlapse

    folder = Path(tempfile.mkdtemp())
    run_path, progress = folder / "run", folder / "progress"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(run_path), str(progress)])
    while not progress.exists():  # imports and start-up do not count
        time.sleep(0.05)
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    trained, killed_at = progress.read_text().split()
    run = weightlapse.open(run_path)
    committed = int(run.steps[-1]) if len(run.steps) else -1
    # the training time the run does not hold: from its newest step to the last one taken
    lost_seconds = float(killed_at) - float(run.wall_times[-1]) if len(run.steps) else seconds
    return int(trained), committed, lost_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", default="3,5,8,13", help="kill these many seconds into training"
    )
    args = parser.parse_args()
    print("| killed after | steps trained | last step in the run | steps lost | training lost |")
    print("| --- | --- | --- | --- | --- |")
    for seconds in [float(s) for s in args.seconds.split(",")]:
        trained, committed, lost_seconds = one_round(seconds)
        lost = trained - committed
        print(f"| {seconds:.0f} s | {trained} | {committed} | {lost} | {lost_seconds:.2f} s |")


if __name__ == "__main__":
    main()
