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
    # a 300x600 matrix whose inputs are not images: the matrix first, no filters or units
    assert tensors["dense/kernel"]["views"] == [
        "heatmap",
        "stats",
        "histograms",
        "ridgeline",
        "trajectories",
    ]
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


def frame_of(response):
    shape = tuple(int(v) for v in response.headers["X-Shape"].split(","))
    n = int(np.prod(shape))
    values = np.frombuffer(response.content[: 4 * n], dtype="<f4").reshape(shape)
    gaps = np.frombuffer(response.content[4 * n :], dtype=np.uint8).reshape(shape[:2])
    return values, gaps


def test_a_frame_is_the_semantic_view_as_compact_float32(client):
    response = client.get("/api/run/frame/a", params={"tensor": "dense/kernel", "step": 3})
    assert response.headers["X-Step"] == "2"  # the latest snapshot at or before step 3
    assert response.headers["X-View"] == "heatmap" and response.headers["X-Shape"] == "300,300"
    values, gaps = frame_of(response)
    full = weightlapse.open(runs_dir_of(client) / "a")["dense/kernel"].at(2)
    np.testing.assert_allclose(values[0, 0], full[:1, :2].mean(), rtol=1e-5)  # 1x2 blocks
    lo, hi = (float(v) for v in response.headers["X-Range"].split(","))
    assert lo == -hi and hi == pytest.approx(np.abs(full).max(), rel=1e-5)
    assert not gaps.any() and len(response.content) == 300 * 300 * 5  # never the history


def test_conv_kernels_come_as_a_filter_grid_and_image_weights_as_units(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    with weightlapse.create(root / "cnn", snapshots=1) as run:
        run.set_meta(input_shape=[1, 8, 8], channels="first")
        run.describe("conv.weight", layout="out,in,h,w", layer="conv")
        run.describe("fc.weight", layout="out,in", layer="fc")
        conv = rng.normal(size=(6, 1, 3, 3))
        conv[2, 0, 1, 1] = np.nan
        run.log(0, {"conv.weight": conv, "fc.weight": rng.normal(size=(4, 64))})
    client = TestClient(create_app(root), base_url="http://127.0.0.1:8050")
    info = client.get("/api/run/info/cnn").json()
    views = {t["name"]: t["views"][0] for layer in info["layers"] for t in layer["tensors"]}
    assert views == {"conv.weight": "filters", "fc.weight": "weights"}
    grid = client.get("/api/run/frame/cnn", params={"tensor": "conv.weight"})
    assert grid.headers["X-View"] == "filters"
    values, gaps = frame_of(grid)
    cells = values[~gaps.astype(bool)]
    assert cells.size == 6 * 9 and np.isnan(cells).sum() == 1  # every weight, NaN kept
    np.testing.assert_allclose(np.sort(cells[np.isfinite(cells)]), np.sort(conv[np.isfinite(conv)]))
    units = client.get("/api/run/frame/cnn", params={"tensor": "fc.weight"})
    values, gaps = frame_of(units)
    assert units.headers["X-View"] == "weights" and (~gaps.astype(bool)).sum() == 4 * 64
    wrong = client.get("/api/run/frame/cnn", params={"tensor": "fc.weight", "view": "filters"})
    assert wrong.status_code == 404 and "weights" in wrong.json()["error"]


def test_events_say_what_changed_and_the_page_asks_for_no_missing_file(client):
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg")
    from weightlapse.dashboard import api

    cache = api.RunCache(runs_dir_of(client))
    change = api.changes(cache, "a")
    assert change["run"] == "a" and change["steps"] == 5
    assert [r["name"] for r in change["runs"]] == ["a", "nested/b"]
    with weightlapse.create(runs_dir_of(client) / "a", resume=True) as run:
        run.log(5, {"dense/kernel": np.zeros((300, 600)), "dense/bias": np.zeros(4)})
    import time

    time.sleep(api.REFRESH_SECONDS + 0.1)
    assert api.changes(cache, "a")["steps"] == 6


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
