"""A run has one writer at a time: a second one (another rank, a second script, a retry
with overwrite=True) gets a clear error and nothing of the first is touched."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import weightlapse
from weightlapse.errors import RunFormatError


def test_a_second_writer_is_refused_and_deletes_nothing(tmp_path):
    path = tmp_path / "r"
    first = weightlapse.create(path)
    first.log(0, {"w": np.arange(4.0)})
    first.flush()
    for options in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(RunFormatError, match="being recorded by pid"):
            weightlapse.create(path, **options)
    first.log(1, {"w": np.arange(4.0) + 1})
    first.close()
    run = weightlapse.open(path)
    assert list(run.steps) == [0, 1]
    # the writer is gone: now the run may be replaced
    with weightlapse.create(path, overwrite=True) as again:
        again.log(0, {"v": np.zeros(2)})
    assert weightlapse.open(path).tensors == ["v"]


def test_a_killed_writer_lets_go_of_its_run(tmp_path):
    path = tmp_path / "r"
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, weightlapse
        run = weightlapse.create({str(path)!r})
        run.log(0, {{"w": np.ones(3)}})
        run.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], check=False)
    with weightlapse.create(path, resume=True) as run:
        run.log(1, {"w": np.zeros(3)})
    assert list(weightlapse.open(path).steps) == [0, 1]


def test_a_failed_create_holds_nothing(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(RunFormatError, match="already exists"):
        weightlapse.create(tmp_path / "r")
    with pytest.raises(RunFormatError, match="not a weightlapse run"):
        weightlapse.create(tmp_path / "r", overwrite=True)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"
    with weightlapse.create(tmp_path / "s") as run:  # a fresh path still works
        run.log(0, {"w": np.ones(1)})
