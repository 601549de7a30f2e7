"""Runs on an S3 API server (moto's server mode, a real HTTP endpoint started here): a
run is created, read, listed, viewed and exported through Zarr's fsspec store; overwrite
replaces only a run; a second process reads while the run grows; kill -9 leaves whole
steps, as on disk."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

import weightlapse
from weightlapse.catalog import list_runs
from weightlapse.cli import app
from weightlapse.dashboard.app import create_app
from weightlapse.store.check import check_run

pytest.importorskip("s3fs")
pytest.importorskip("moto")


@pytest.fixture(scope="module")
def endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            if time.time() > deadline:
                server.kill()
                raise
            time.sleep(0.1)
    yield url
    server.kill()
    server.wait()


@pytest.fixture
def s3(endpoint, monkeypatch):
    """The environment a user sets for the CLI and the dashboard, and a fresh bucket."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    bucket = f"runs{time.time_ns()}"
    fs.mkdir(bucket)
    return fs, bucket, env


def options(endpoint):
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}


def record(path, steps=5, **kwargs):
    with weightlapse.create(path, snapshots=2, **kwargs) as run:
        for step in range(steps):
            run.log(
                step,
                {"dense/w": np.full((6, 4), step, np.float32), "b": np.arange(4.0)},
                loss=1.0 / (step + 1),
            )


def test_a_run_on_s3_is_written_read_listed_viewed_and_exported(s3, endpoint, tmp_path):
    fs, bucket, env = s3
    url = f"s3://{bucket}/team/a"
    record(url, storage_options=options(endpoint))
    run = weightlapse.open(url, storage_options=options(endpoint))
    assert run.steps.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(run["dense/w"].stats["mean"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(run["dense/w"].at(4), np.full((6, 4), 4, np.float32))
    assert not run.is_live and check_run(url) == []
    assert not any(p.endswith(".partial") for p in fs.find(bucket))

    listed = list_runs(f"s3://{bucket}/team")
    assert [r["name"] for r in listed] == ["a"] and listed[0]["size_bytes"] > 0

    cli = CliRunner()
    out = cli.invoke(app, ["ls", f"s3://{bucket}/team"], env=env)
    assert out.exit_code == 0 and "a" in out.output, out.output
    out = cli.invoke(app, ["info", url], env=env)
    assert out.exit_code == 0 and "5 recorded steps" in out.output, out.output
    npz = tmp_path / "snaps.npz"
    out = cli.invoke(app, ["export", url, "--npz", str(npz)], env=env)
    assert out.exit_code == 0, out.output
    assert np.load(npz)[next(iter(np.load(npz).files))].shape[-2:] in [(6, 4), (4,)]
    png = tmp_path / "h.png"
    out = cli.invoke(app, ["plot", url, "histograms", "dense/w", "-o", str(png)], env=env)
    assert out.exit_code == 0 and png.stat().st_size > 1000, out.output

    client = TestClient(create_app(f"s3://{bucket}/team"), base_url="http://127.0.0.1:8050")
    assert [r["name"] for r in client.get("/api/runs").json()] == ["a"]
    assert client.get("/api/run/info/a").status_code == 200
    assert client.get("/api/run/info/a/").status_code == 200
    image = client.get("/api/run/view/histograms/a", params={"tensor": "dense/w"})
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    for outside in ["..%2Fb", "a%2F..%2F..%2Fother", "%2Fetc"]:
        assert client.get(f"/api/run/info/{outside}").status_code == 404


def test_overwrite_on_s3_replaces_a_run_and_nothing_else(s3):
    fs, bucket, _ = s3
    fs.pipe(f"{bucket}/data/table.csv", b"a,b\n1,2\n")
    with pytest.raises(weightlapse.RunFormatError, match="already exists"):
        weightlapse.create(f"s3://{bucket}/data")
    with pytest.raises(weightlapse.RunFormatError, match="not a weightlapse run"):
        weightlapse.create(f"s3://{bucket}/data", overwrite=True)
    assert fs.cat(f"{bucket}/data/table.csv") == b"a,b\n1,2\n"

    record(f"s3://{bucket}/r", steps=3)
    record(f"s3://{bucket}/r", steps=2, overwrite=True)
    assert weightlapse.open(f"s3://{bucket}/r").steps.tolist() == [0, 1]
    weightlapse.create(f"s3://{bucket}/gone").discard()
    assert not fs.exists(f"{bucket}/gone")


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import weightlapse
    run = weightlapse.create(sys.argv[1], flush_seconds=0.05, snapshots=5)
    step = 0
    while True:
        # every element equals the step: a torn step would show
        run.log(step, {f"layer{i}/w": np.full((64, 32), float(step), np.float32)
                       for i in range(4)}, loss=float(step))
        step += 1
        time.sleep(0.01)
""")


@pytest.mark.slow
def test_a_second_process_reads_the_growing_run_and_kill_9_leaves_whole_steps(s3):
    fs, bucket, env = s3
    url = f"s3://{bucket}/live"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url], env={**os.environ, **env}, stderr=subprocess.PIPE
    )
    try:
        seen, deadline = [], time.time() + 90
        while (len(seen) < 3 or seen[-1] < 8) and time.time() < deadline:
            try:
                run = weightlapse.open(url)
            except weightlapse.RunFormatError:
                time.sleep(0.1)
                continue
            steps = run.steps
            if len(steps) and (not seen or steps[-1] > seen[-1]):
                assert run.is_live
                assert steps.tolist() == list(range(len(steps)))
                np.testing.assert_array_equal(run["layer0/w"].stats["max"], steps)
                seen.append(int(steps[-1]))
            time.sleep(0.05)
        assert len(seen) >= 3, f"saw the run grow only {seen}"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    run = weightlapse.open(url)
    steps = run.steps
    assert not run.is_live  # its process is gone
    assert steps.tolist() == list(range(len(steps))) and len(steps) >= seen[-1] + 1
    for name in run.tensors:
        np.testing.assert_array_equal(run[name].stats["mean"], steps)
    assert check_run(url) == []
    with weightlapse.create(url, resume=True) as resumed:
        resumed.log(len(steps), {"layer0/w": np.zeros((64, 32), np.float32)})
    assert weightlapse.open(url).steps.tolist() == list(range(len(steps) + 1))
