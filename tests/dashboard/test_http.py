"""Every route over real HTTP requests (Starlette's test client), traversal included."""

import os

import numpy as np
import pytest
from starlette.testclient import TestClient

import weightlapse
from weightlapse.dashboard.app import create_app


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for name in ("a", "nested/b"):
        with weightlapse.create(root / name, snapshots=2) as run:
            for step in range(5):
                run.log(
                    step,
                    {"dense/kernel": rng.normal(size=(300, 600)), "dense/bias": rng.normal(size=4)},
                    loss=1.0 / (step + 1),
                )
    (tmp_path / "secret.txt").write_text("top secret")
    with weightlapse.create(tmp_path / "outside") as run:  # a real run, but not under root
        run.log(0, {"top secret": np.ones(2)})
    os.symlink(tmp_path, root / "escape")  # a link out of the runs folder
    return root


@pytest.fixture
def client(runs_dir):
    return TestClient(create_app(runs_dir), base_url="http://127.0.0.1:8050")


def test_index_static_and_plotly_from_the_wheel(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000


def test_runs_info_scalars_stats_histograms(client):
    runs = client.get("/api/runs").json()
    assert [r["name"] for r in runs] == ["a", "nested/b"]
    assert runs[0]["steps"] == 5 and runs[0]["live"] is False
    info = client.get("/api/run/info/nested/b").json()
    assert info["steps"] == [0, 1, 2, 3, 4]
    tensors = {t["name"]: t for layer in info["layers"] for t in layer["tensors"]}
    assert tensors["dense/kernel"]["shape"] == [300, 600]
    assert tensors["dense/kernel"]["snapshots"] == [0, 2, 4]
    assert info["views"][:3] == ["trajectories", "weights", "filters"]
    assert "overview" in info["views"] and "activations" not in info["views"]
    scalars = client.get("/api/run/scalars/a").json()
    assert scalars["series"]["loss"][4] == pytest.approx(0.2)
    stats = client.get("/api/run/stats/a", params={"tensor": "dense/kernel"}).json()
    run = weightlapse.open(runs_dir_of(client) / "a")
    np.testing.assert_allclose(stats["stats"]["l2"], run["dense/kernel"].stats["l2"])
    hist = client.get("/api/run/histograms/a", params={"tensor": "dense/kernel"}).json()
    counts = np.array(hist["counts"])
    np.testing.assert_allclose(counts.sum(axis=0), 300 * 600, rtol=1e-6)


def runs_dir_of(client):
    return client.app.state.runs_dir


def test_a_frame_is_compact_float32_and_block_reduced(client):
    response = client.get("/api/run/frame/a", params={"tensor": "dense/kernel", "step": 3})
    assert response.headers["X-Step"] == "2"  # the latest snapshot at or before step 3
    assert response.headers["X-Shape"] == "150,200" and response.headers["X-Block"] == "2,3"
    frame = np.frombuffer(response.content, dtype="<f4").reshape(150, 200)
    full = weightlapse.open(runs_dir_of(client) / "a")["dense/kernel"].at(2)
    np.testing.assert_allclose(frame[0, 0], full[:2, :3].mean(), rtol=1e-5)
    assert len(response.content) == 150 * 200 * 4  # the frame, never the history


def test_a_rendered_view_is_a_png(client):
    png = client.get("/api/run/view/heatmap/a", params={"tensor": "dense/kernel", "step": 4})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    guess = client.get("/api/run/view/weights/a", params={"tensor": "dense/kernel"})
    assert guess.status_code == 404 and "image_shape" in guess.json()["error"]
    bad = client.get("/api/run/view/filters/a", params={"tensor": "dense/kernel"})
    assert bad.status_code == 404 and "conv kernel" in bad.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/run/info/../secret.txt",
        "/api/run/info/..%2Fsecret.txt",
        "/api/run/info/%2e%2e/secret.txt",
        "/api/run/info/escape",
        "/api/run/info/escape/outside",
        "/api/run/stats/escape/outside?tensor=top%20secret",
        "/api/run/info//etc/passwd",
        "/api/run/frame/a/..",
        "/api/run/info/missing",
        "/static/../app.py",
        "/static/..%2F..%2Fcli.py",
        "/static/%2e%2e/app.py",
    ],
)
def test_nothing_outside_the_runs_or_static_folder_is_served(client, url):
    response = client.get(url)
    assert response.status_code == 404, url
    assert b"top secret" not in response.content and b"import" not in response.content


def test_unknown_tensor_and_bad_step(client):
    r = client.get("/api/run/frame/a", params={"tensor": "dense/kernal"})
    assert r.status_code == 404 and "dense/kernal" in r.json()["error"]
    r = client.get("/api/run/frame/a", params={"tensor": "dense/kernel", "step": "x"})
    assert r.status_code == 400


def test_probe_views_snap_to_the_latest_snapshot(tmp_path):
    root = tmp_path / "runs"
    with weightlapse.create(root / "p", snapshots=2) as run:
        for step in range(5):
            maps = {"relu": np.full((2, 3, 4, 4), float(step))}
            run.log(
                step, {"w": np.ones((4, 4)) * step}, activations=maps if step % 2 == 0 else None
            )
    client = TestClient(create_app(root), base_url="http://localhost:8050")

    def view(step):
        png = client.get("/api/run/view/activations/p", params={"tensor": "relu", "step": step})
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        return png.content

    assert weightlapse.open(root / "p").history("relu", "activation").snapshot_steps == [0, 2, 4]
    # step 3 shows step 2's maps (all 2.0), not step 4's
    assert view(3) == view(2)
    assert view(3) != view(4)
    info = client.get("/api/run/info/p").json()
    assert {layer["name"] for layer in info["layers"]} >= {"activation"}
