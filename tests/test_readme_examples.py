"""The README's integration examples, copied out of the README and run as they stand
(each in a fresh folder, in its own process), then the runs they wrote are opened."""

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import weightlapse

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```python\n(.*?)```", re.S)
NEEDS = {
    "lightning": "lightning",
    "huggingface": "transformers",
    "jax": "optax",
    "ddp": "torch",
    "fsdp": "torch",
}
RUNS = {
    "lightning": "runs/lit",
    "huggingface": "runs/bert",
    "jax": "runs/jax",
    "ddp": "runs/ddp",
    "fsdp": "runs/fsdp",
}


def examples() -> dict[str, str]:
    return dict(EXAMPLE.findall(README.read_text()))


def test_the_readme_has_each_example():
    assert set(examples()) == set(NEEDS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEEDS))
def test_a_readme_example_runs_as_it_stands(name, tmp_path):
    pytest.importorskip(NEEDS[name])
    script = tmp_path / "train.py"
    script.write_text(examples()[name])
    command = [sys.executable, str(script)]
    if name in ("ddp", "fsdp"):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            str(script),
        ]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = weightlapse.open(tmp_path / RUNS[name])
    assert run.tensors and len(run.steps) > 2 and not run.is_live
