"""Damaged runs: each damage gives one line naming the run, the array and what is wrong
(CLI exit 2, a 422 error for the dashboard's panel), never a traceback and never a wrong
number; `weightlapse check` finds it and `--repair` truncates to the last whole step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from starlette.testclient import TestClient

import weightlapse
from weightlapse.dashboard.app import create_app
from weightlapse.errors import RunFormatError
from weightlapse.store import layout
from weightlapse.store.check import check_run

STEPS = 600  # two chunks of statistics (512 rows), three of the other per-step arrays


@pytest.fixture
def run_path(tmp_path):
    path = tmp_path / "runs" / "r"
    with weightlapse.create(path, snapshots=100, flush_seconds=60) as run:
        for step in range(STEPS):
            run.log(step, {"w": np.full(8, float(step), np.float32)}, loss=float(step))
    return path


def attrs_file(path: Path) -> Path:
    return path / "zarr.json"


def edit_attrs(path: Path, change) -> None:
    doc = json.loads(attrs_file(path).read_text())
    change(doc["attributes"]["weightlapse"])
    attrs_file(path).write_text(json.dumps(doc))


def truncate_chunk(path):
    chunk = path / "param" / "stats" / "c" / "1" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:7])
    return "param/stats"


def delete_chunk(path):
    (path / "param" / "stats" / "c" / "0" / "0" / "0").unlink()
    return "param/stats"


def delete_index_chunk(path):
    (path / "index" / "c" / "0" / "0").unlink()  # 4096 steps a chunk: every step's
    return "index"


def delete_hist_chunk(path):
    (path / "param" / "hist" / "c" / "1" / "0" / "0").unlink()
    return "param/hist"


def delete_probes_chunk(path):
    (path / "param" / "probes" / "c" / "0" / "0").unlink()
    return "param/probes"


def snapshot_chunk_file(path, step):
    """The file of the chunk that holds w's snapshot at `step` (one of several in it)."""
    steps, rows = weightlapse.open(path)._reader.snapshot_lists("param")["w"]
    snapshots = path / "param" / "snapshots" / "w"
    rows_a_chunk = zarr.open_array(snapshots, mode="r").chunks[0]
    return snapshots / "c" / str(rows[steps.index(step)] // rows_a_chunk) / "0"


def delete_snapshot_chunk(path):
    snapshot_chunk_file(path, 200).unlink()
    return "snapshots"


def delete_array_json(path):
    (path / "param" / "hist" / "zarr.json").unlink()
    return "param/hist"


def garble_attrs(path):
    text = attrs_file(path).read_text()
    attrs_file(path).write_text(text.replace('"committed_steps": 600', '"committed_steps": "lots"'))
    return "committed_steps"


def negative_committed(path):
    edit_attrs(path, lambda a: a.update(committed_steps=-5))
    return "committed_steps"


def committed_past_the_data(path):
    edit_attrs(path, lambda a: a.update(committed_steps=STEPS + 50))
    return "rows"


def unreadable_snapshot(path):
    snapshot_chunk_file(path, 200).write_bytes(b"garbage")
    return "snapshots"


DAMAGES = [
    truncate_chunk,
    delete_chunk,
    delete_index_chunk,
    delete_hist_chunk,
    delete_probes_chunk,
    delete_snapshot_chunk,
    delete_array_json,
    garble_attrs,
    negative_committed,
    committed_past_the_data,
    unreadable_snapshot,
]

VIEW_THAT_READS = {delete_hist_chunk: "histograms", delete_probes_chunk: "trajectories"}


def read_everything(path):
    run = weightlapse.open(path)
    history = run["w"]
    return (
        run.steps,
        run.scalar("loss"),
        history.stats["l2"],
        history.histograms,
        history.at(200),
        history.trajectory(),
    )


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_a_damage_is_one_clear_error_never_a_wrong_number(run_path, damage):
    clue = damage(run_path)
    with pytest.raises(RunFormatError) as info:
        read_everything(run_path)
    message = str(info.value)
    assert str(run_path) in message and clue in message and "\n" not in message
    assert check_run(run_path), "check finds it too"


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_the_cli_says_it_in_one_line_and_the_dashboard_shows_an_error(run_path, damage):
    damage(run_path)
    failed = 0
    view = VIEW_THAT_READS.get(damage, "heatmap")
    for command in (["info"], ["plot", "--out", str(run_path.parent / "h.png"), "--step", "200"]):
        args = [command[0], str(run_path)] + (
            [view, "w", *command[1:]] if command[0] == "plot" else []
        )
        proc = subprocess.run(
            [sys.executable, "-m", "weightlapse.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode in (0, 2), proc.stderr  # never a traceback
        if proc.returncode == 2:
            failed += 1
            assert len(proc.stderr.strip().splitlines()) == 1 and "damaged" in proc.stderr
    assert failed
    client = TestClient(create_app(run_path.parent), base_url="http://127.0.0.1:8050")
    statuses = [
        client.get("/api/run/info/r").status_code,
        client.get("/api/run/stats/r", params={"tensor": "w"}).status_code,
        client.get("/api/run/frame/r", params={"tensor": "w", "step": 200}).status_code,
        client.get("/api/run/histograms/r", params={"tensor": "w"}).status_code,
        client.get("/api/run/view/trajectories/r", params={"tensor": "w"}).status_code,
    ]
    assert 500 not in statuses and any(s in (404, 422) for s in statuses), statuses


@pytest.mark.parametrize("damage", [truncate_chunk, delete_index_chunk, committed_past_the_data])
def test_repair_truncates_to_the_last_whole_step(run_path, damage):
    damage(run_path)
    check = subprocess.run(
        [sys.executable, "-m", "weightlapse.cli", "check", str(run_path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 2
    repair = subprocess.run(
        [sys.executable, "-m", "weightlapse.cli", "check", str(run_path), "--repair"],
        capture_output=True,
        text=True,
    )
    assert repair.returncode == 0, repair.stderr
    if damage is delete_index_chunk:  # no step is whole without its index row
        assert len(weightlapse.open(run_path).steps) == 0 and not check_run(run_path)
        return
    steps, loss, l2, *_ = read_everything(run_path)
    assert list(steps) == list(range(len(steps))) and len(steps) in (
        layout.CHUNK_STEPS_STATS,
        STEPS,
    )
    np.testing.assert_array_equal(loss, np.arange(len(steps)))
    np.testing.assert_allclose(l2, np.arange(len(steps)) * 8**0.5, rtol=1e-6)
    assert not check_run(run_path)


def test_a_whole_run_checks_clean_and_partial_files_go_on_resume(run_path):
    assert not check_run(run_path)
    stray = run_path / "param" / "stats" / "c" / "0" / "0" / "0.abc123.partial"
    stray.write_bytes(b"half a chunk")
    with weightlapse.create(run_path, resume=True) as run:
        run.log(STEPS, {"w": np.zeros(8, np.float32)})
    assert not stray.exists()
    assert len(weightlapse.open(run_path).steps) == STEPS + 1
    assert os.path.exists(run_path / "zarr.json")


def test_missing_probe_elements_are_a_clear_error_and_check_finds_them(run_path):
    (run_path / "param" / "probe_elements" / "c" / "0").unlink()
    with pytest.raises(RunFormatError, match="probe_elements"):
        weightlapse.open(run_path)["w"].trajectory()
    assert any(p.array == "param/probe_elements" for p in check_run(run_path))


def test_values_that_look_like_a_missing_chunk_are_read_as_data(run_path):
    """Missing chunks are found by a fill value no writer stores: a saturated count, or a
    NaN that happens to carry that payload, is data, not damage."""
    import zarr

    from weightlapse.store.reader import MISSING_FILL

    saturated = np.iinfo(np.uint32).max
    payload = np.array(MISSING_FILL[np.dtype("<f8")], np.uint64).view(np.float64)
    hist = zarr.open_array(run_path / "param" / "hist", mode="r+")
    hist[10, 0, 3] = saturated
    stats = zarr.open_array(run_path / "param" / "stats", mode="r+")
    stats[10, 0, 7] = payload
    history = weightlapse.open(run_path)["w"]
    counts = history.histograms
    assert counts.counts[list(counts.steps).index(10)][3] == saturated
    nan_count = history.stats["nan_count"]
    assert nan_count[10].view(np.uint64) == payload.view(np.uint64)
    assert not check_run(run_path)
