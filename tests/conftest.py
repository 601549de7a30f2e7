"""Shared fixtures. Keras runs on the torch backend in this process (TensorFlow-backend
tests start their own process), with its config kept out of the home folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="keras-home-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WEIGHTLAPSE_OFFLINE", "1")  # no test fetches MNIST from the network
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="cache-"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST = SHARED_DATA / "mnist"


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the shared MNIST test set is not at {MNIST}")
    return MNIST


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (a Keras backend is fixed per process)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def tiny_bert_config():
    """A BERT of 2 layers and 16 features, built from a config: no download."""
    import transformers

    return transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )


@pytest.fixture
def store_reads(monkeypatch) -> list[str]:
    """The keys Zarr's local store reads from now on, in order (which chunks a view read)."""
    import zarr

    read: list[str] = []
    get = zarr.storage.LocalStore.get

    async def get_and_note(self, key, *args, **kwargs):
        read.append(key)
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get_and_note)
    return read
