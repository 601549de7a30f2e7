"""Time per attribution map, per method, on a small CNN and on ResNet-18 (224x224), in
PyTorch; and Grad-CAM on Keras InceptionV3 (299x299). CPU, one input, median of runs.

    python bench/interpret.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="keras-home-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.interpret.resnet

import numpy as np  # noqa: E402
import torch  # noqa: E402

from weightlapse.interpret.methods import make_method  # noqa: E402

METHODS = ["saliency", "smoothgrad", "deconvnet", "guided", "integrated", "gradcam", "gradcam++"]


def small_cnn() -> torch.nn.Module:
    m = torch.nn.Sequential()
    m.add_module("conv1", torch.nn.Conv2d(1, 16, 3, padding=1))
    m.add_module("relu1", torch.nn.ReLU())
    m.add_module("pool", torch.nn.MaxPool2d(2))
    m.add_module("conv2", torch.nn.Conv2d(16, 32, 3, padding=1))
    m.add_module("relu2", torch.nn.ReLU())
    m.add_module("gap", torch.nn.AdaptiveAvgPool2d(1))
    m.add_module("flat", torch.nn.Flatten())
    m.add_module("fc", torch.nn.Linear(32, 10))
    return m


def seconds(fn, repeats: int) -> float:
    fn()  # warm up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from tests.interpret.resnet import resnet18

    torch.manual_seed(0)
    nets = {
        "small CNN 28x28": (small_cnn(), np.random.rand(1, 1, 28, 28), "relu2"),
        "ResNet-18 224x224": (resnet18(), np.random.rand(1, 3, 224, 224), "layer4"),
    }
    print(f"{'network':<20}" + "".join(f"{m:>12}" for m in METHODS))
    for label, (model, x, layer) in nets.items():
        x = x.astype(np.float32)
        row = []
        for name in METHODS:
            method = make_method(name, model)
            options = {"layer": layer} if method.needs_layer else {}
            run = lambda m=method, x=x, o=options: m.attribute(x, target=0, **o)  # noqa: E731
            row.append(seconds(run, args.repeats))
        print(f"{label:<20}" + "".join(f"{s * 1e3:10.1f}ms" for s in row))
    import keras

    inception = keras.applications.InceptionV3(weights=None)
    x = np.random.rand(1, 299, 299, 3).astype(np.float32)
    cam = make_method("gradcam", inception)
    took = seconds(lambda: cam.attribute(x, layer="mixed10"), args.repeats)
    print(f"keras/{keras.backend.backend()} InceptionV3 Grad-CAM (mixed10): {took * 1e3:.0f} ms")
    print("smoothgrad: 25 noisy gradients; integrated: 65 gradients along the path")


if __name__ == "__main__":
    main()
