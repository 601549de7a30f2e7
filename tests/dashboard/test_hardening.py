"""The dashboard on a shared machine: only its own host names, nothing outside RUNS_DIR
(symlinks inside a run included), no request waiting behind a render, bounded memory,
and a token when it listens beyond this machine."""

from __future__ import annotations

import glob
import os
import threading

import numpy as np
import pytest
from starlette.testclient import TestClient

import weightlapse
from weightlapse.dashboard import api
from weightlapse.dashboard.app import create_app

SECRET = b"top secret bytes of another user's file"


@pytest.fixture
def root(tmp_path):
    runs = tmp_path / "runs"
    with weightlapse.create(runs / "a", snapshots=1) as run:
        for step in range(3):
            run.log(step, {"w": np.full((4, 4), float(step), np.float32)})
    return runs


def client_for(root, host="127.0.0.1", **options):
    return TestClient(create_app(root, host=host, **options), base_url=f"http://{host}:8050")


def test_a_foreign_host_header_is_refused(root):
    client = client_for(root)
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs", headers={"Host": "localhost:8050"}).status_code == 200
    evil = client.get("/api/runs", headers={"Host": "evil.example"})
    assert evil.status_code == 400 and evil.text == "Invalid host header"
    named = client_for(root, host="10.0.0.7", token="t")
    assert named.get("/api/runs?token=t", headers={"Host": "10.0.0.7:8050"}).status_code == 200
    assert named.get("/api/runs?token=t", headers={"Host": "evil.example"}).status_code == 400


def test_a_symlink_inside_a_run_is_never_followed_out(root, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET * 100)
    chunks = [p for p in glob.glob(str(root / "a/param/snapshots/w/c/**"), recursive=True)]
    chunk = next(p for p in chunks if os.path.isfile(p))
    os.remove(chunk)
    os.symlink(secret, chunk)
    client = client_for(root)
    for step in (0, 1, 2):
        response = client.get("/api/run/frame/a", params={"tensor": "w", "step": step})
        assert SECRET not in response.content
        if response.status_code != 200:
            assert response.status_code == 404 and "outside the runs folder" in response.text


def test_a_frame_never_waits_behind_a_render(root, monkeypatch):
    started, release = threading.Event(), threading.Event()
    rendering = {"done": False}

    def slow_render(run, view, tensor, options):
        started.set()
        release.wait(20)  # a long matplotlib render
        rendering["done"] = True
        return b"\x89PNG"

    monkeypatch.setattr(api, "view_png", slow_render)
    client = client_for(root)
    view = threading.Thread(target=lambda: client.get("/api/run/view/heatmap/a?tensor=w"))
    view.start()
    assert started.wait(20)
    frame = client.get("/api/run/frame/a", params={"tensor": "w", "step": 2})
    stats = client.get("/api/run/stats/a", params={"tensor": "w"})
    assert frame.status_code == 200 and stats.status_code == 200
    assert not rendering["done"]  # both came back while the render still ran
    release.set()
    view.join(20)
    assert rendering["done"]


def test_aliases_share_one_cache_entry_and_the_cache_is_bounded(root):
    client = client_for(root)
    for alias in ["a", "a/", "a//", "a///", "./a"][:4]:
        assert client.get(f"/api/run/info/{alias}").status_code == 200
    cache = api.RunCache(root)
    for i in range(3000):
        cache.get("a" + "/" * (i % 7))
    assert list(cache.runs) == ["a"]
    many = root.parent / "many"
    for i in range(api.RunCache.MAX_OPEN + 10):
        with weightlapse.create(many / f"r{i}", snapshots=None) as run:
            run.log(0, {"w": np.ones(1)})
    cache = api.RunCache(many)
    for i in range(api.RunCache.MAX_OPEN + 10):
        cache.get(f"r{i}")
    assert len(cache.runs) == api.RunCache.MAX_OPEN


def test_a_very_long_name_is_not_found_not_an_error(root):
    response = client_for(root).get("/api/run/info/" + "x" * 5000)
    assert response.status_code == 404


def test_beyond_this_machine_the_token_is_needed(root):
    client = client_for(root, host="0.0.0.0", token="s3cret")
    assert client.get("/api/runs").status_code == 403
    assert client.get("/api/runs?token=wrong").status_code == 403
    first = client.get("/?token=s3cret")
    assert first.status_code == 200 and "weightlapse_token" in first.headers["set-cookie"]
    assert client.get("/api/runs").status_code == 200  # the cookie carries it now
