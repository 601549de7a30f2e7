"""A second process reads while a run is written; kill -9 mid-write leaves a clean run,
which resumes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import weightlapse

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import weightlapse
    run = weightlapse.create(sys.argv[1], flush_seconds=0.05, snapshots=5)
    rng = np.random.default_rng(0)
    step = 0
    while True:
        value = float(step)
        # every element of every tensor equals the step: a torn step would show
        run.log(step, {f"layer{i}/w": np.full((64, 32), value, np.float32) for i in range(8)},
                loss=value)
        step += 1
        time.sleep(0.002)
        if step == int(sys.argv[2]):
            run.close()
            break
""")


def start_writer(path, steps=10**9):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(steps)], stderr=subprocess.PIPE
    )


def wait_for_steps(path, n, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if len(weightlapse.open(path).steps) >= n:
                return
        except weightlapse.RunFormatError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the writer did not commit {n} steps in {timeout} s")


def assert_consistent(run):
    steps = run.steps
    assert list(steps) == list(range(len(steps))), "steps are whole and in order"
    np.testing.assert_array_equal(run.scalar("loss"), steps.astype(float))
    for name in run.tensors:
        stats = run[name].stats
        np.testing.assert_array_equal(stats["mean"], steps.astype(float))
        np.testing.assert_array_equal(stats["min"], stats["max"])
        assert (run[name].histograms.counts.sum(axis=1) == 64 * 32).all()
        for s in run[name].snapshot_steps:
            assert (run[name].at(s) == s).all()


@pytest.mark.slow
def test_a_reader_in_another_process_never_sees_half_a_step(tmp_path):
    path = tmp_path / "live"
    writer = start_writer(path, steps=600)
    try:
        wait_for_steps(path, 1)
        run = weightlapse.open(path)
        seen = []
        while writer.poll() is None or not seen or seen[-1] < 600:
            run.refresh()
            assert_consistent(run)
            seen.append(len(run.steps))
            if seen[-1] >= 600:
                break
        assert len(set(seen)) > 3, f"the reader should see the run grow, saw {sorted(set(seen))}"
        assert seen == sorted(seen)
    finally:
        writer.kill()
        writer.wait()


def test_kill_9_leaves_a_run_that_opens_with_every_flushed_step(tmp_path):
    path = tmp_path / "killed"
    writer = start_writer(path)
    wait_for_steps(path, 50)
    time.sleep(0.3)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    run = weightlapse.open(path)
    assert len(run.steps) >= 50
    assert_consistent(run)
    # the interval lost is at most what was not flushed yet: 0.05 s of steps, plus a little
    assert not run.is_live  # killed: its writer is gone, so the run is shown as ended


def test_the_cli_reads_a_run_that_is_still_being_written(tmp_path):
    from typer.testing import CliRunner

    from weightlapse.cli import app

    path = tmp_path / "live"
    writer = start_writer(path)
    try:
        wait_for_steps(path, 20)
        runner = CliRunner()
        info = runner.invoke(app, ["info", str(path)])
        assert info.exit_code == 0 and "layer0/w" in info.output
        out = tmp_path / "stats.png"
        plot = runner.invoke(app, ["plot", str(path), "stats", "layer3/w", "-o", str(out)])
        assert plot.exit_code == 0, plot.output
        assert out.stat().st_size > 10_000
        assert writer.poll() is None  # it was still writing
    finally:
        writer.kill()
        writer.wait()


KILLED_IN_A_COMMIT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import weightlapse
    from weightlapse.store.writer import StoreWriter

    commit = StoreWriter._commit_attrs
    def killed_at_the_second(self):
        if self.attrs["committed_steps"] >= 2:
            os._exit(9)  # as kill -9: no cleanup, the commit never written
        commit(self)
    StoreWriter._commit_attrs = killed_at_the_second

    run = weightlapse.create(sys.argv[1], snapshots=1)
    run.log(0, {"w": np.zeros((4, 3), np.float32)})
    run.flush()
    # new tensors at step 1: their arrays (snapshots, index, packs) are made, not committed
    new = {f"v{i}": np.ones(5, np.float32) for i in range(int(sys.argv[2]))}
    run.log(1, {"w": np.ones((4, 3), np.float32), **new})
    run.close()
""")


@pytest.mark.parametrize("new", [1, 300], ids=["one new tensor", "a pack of small ones"])
def test_a_run_killed_before_it_committed_new_arrays_resumes_and_records_them(tmp_path, new):
    """A kill after a flush made new tensors' arrays and before it committed them leaves
    arrays no committed step lists; the resumed run removes them and makes its own
    (before, it stopped recording at its first flush: "an array exists at
    'param/snapshots/v0'")."""
    from weightlapse.store.check import check_run

    path = tmp_path / "r"
    command = [sys.executable, "-c", KILLED_IN_A_COMMIT, str(path), str(new)]
    assert subprocess.run(command, check=False).returncode == 9
    assert len(list((path / "param" / "snapshots").iterdir())) > 1  # made, not committed
    assert len(weightlapse.open(path).steps) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with weightlapse.create(path, resume=True, snapshots=1) as run:
            for step in (1, 2):
                tensors = {f"v{i}": np.full(5, step, np.float32) for i in range(new)}
                run.log(step, {"w": np.full((4, 3), step, np.float32), **tensors})
    said = [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)]
    assert not said  # (Zarr's, of our lock file, was one; a GC'd pipe is other tests')
    run = weightlapse.open(path)
    assert list(run.steps) == [0, 1, 2]
    for name in ("v0", f"v{new - 1}"):
        assert list(run[name].snapshot_steps) == [1, 2]
        np.testing.assert_array_equal(run[name].at(2), np.full(5, 2, np.float32))
    np.testing.assert_array_equal(run["w"].stats["mean"], [0.0, 1.0, 2.0])
    assert not check_run(path)


KILLED_AFTER_THE_PROBES = textwrap.dedent("""
    import os, sys
    import numpy as np
    import weightlapse
    import weightlapse.store.writer as writer

    append, calls = writer.probe_index.append, []
    def killed_after_the_second(*args):
        append(*args)
        calls.append(args)
        if len(calls) == 2:
            os._exit(9)  # the new tensor's probe elements written, the commit not
    writer.probe_index.append = killed_after_the_second

    run = weightlapse.create(sys.argv[1], snapshots=None)
    run.log(0, {"w": np.zeros((4, 3), np.float32)})
    run.flush()
    run.log(1, {"w": np.ones((4, 3), np.float32), "a": np.zeros(1000, np.float32)})
    run.close()
""")


def test_probes_of_a_tensor_new_after_a_resume_are_its_own(tmp_path):
    """A killed flush may leave probe elements of a tensor no commit lists; a tensor new
    in the resumed run had its elements written after those, and read back the killed
    one's: each probed value labelled with another element (silently, where in range)."""
    from weightlapse.store.check import check_run

    path = tmp_path / "r"
    command = [sys.executable, "-c", KILLED_AFTER_THE_PROBES, str(path)]
    assert subprocess.run(command, check=False).returncode == 9
    assert weightlapse.open(path).tensors == ["w"]
    index = np.arange(2000, dtype=np.float32)  # each element holds its own index
    with weightlapse.create(path, resume=True, snapshots=None) as run:
        for step in (1, 2):
            run.log(step, {"w": np.full((4, 3), step, np.float32), "b": index})
    trajectory = weightlapse.open(path)["b"].trajectory()
    labels = [element for (element,) in trajectory.elements]
    assert len(labels) > 1
    np.testing.assert_array_equal(trajectory.values[-1], labels)
    assert not check_run(path)
