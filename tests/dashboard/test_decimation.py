"""Charts over every step are decimated by the server: at most a fixed number of
buckets, each keeping every series' least and greatest value and its first NaN or Inf,
so a spike is never lost however many steps a run has."""

import numpy as np
from starlette.testclient import TestClient

import weightlapse
from weightlapse.dashboard import api
from weightlapse.dashboard.app import create_app


def test_extreme_rows_keep_every_series_extremes_and_first_non_finite():
    rng = np.random.default_rng(0)
    n = 100_000
    table = rng.normal(size=(n, 3)).cumsum(axis=0)
    table[31_337, 0] = 1e9  # a spike
    table[77_000, 1] = np.nan  # a NaN appearing once
    table[:50, 2] = np.nan  # a series not logged at first
    rows = api.extreme_rows(table, buckets=500)
    assert len(rows) <= 500 * 7 + 2 and rows[0] == 0 and rows[-1] == n - 1
    assert np.all(np.diff(rows) > 0)
    assert {31_337, 77_000} <= set(rows.tolist())
    for col in range(3):
        kept = table[rows, col]
        assert np.nanmax(kept) == np.nanmax(table[:, col])
        assert np.nanmin(kept) == np.nanmin(table[:, col])
        # every bucket's extremes: the envelope drawn is the envelope of all steps
        k = -(-n // 500)
        for b in (0, 123, 499):
            part = table[b * k : (b + 1) * k, col]
            if np.isfinite(part).any():
                inside = rows[(rows >= b * k) & (rows < (b + 1) * k)]
                assert np.nanmax(table[inside, col]) == np.nanmax(part)
                assert np.nanmin(table[inside, col]) == np.nanmin(part)
    few = table[:800]
    assert api.extreme_rows(few, buckets=500).tolist() == list(range(800))


def test_the_stats_and_scalars_of_a_long_run_are_decimated(tmp_path, monkeypatch):
    monkeypatch.setattr(api, "MAX_BUCKETS", 100)
    monkeypatch.setattr(api, "MAX_HIST_COLUMNS", 50)
    with weightlapse.create(tmp_path / "runs" / "long", snapshots=None) as run:
        for step in range(3000):
            w = np.full(4, np.sin(step / 100.0), np.float32)
            if step == 2222:
                w[0] = 50.0  # one step's spike
            run.log(step, {"w": w}, loss=1.0 / (step + 1))
    client = TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1:8050")
    stats = client.get("/api/run/stats/long", params={"tensor": "w"}).json()
    assert len(stats["steps"]) <= 100 * 7 + 2
    assert 2222 in stats["steps"] and max(stats["stats"]["max"]) == 50.0
    scalars = client.get("/api/run/scalars/long").json()
    assert len(scalars["steps"]) <= 100 * 3 + 2 and scalars["steps"][-1] == 2999
    assert max(scalars["series"]["loss"]) == 1.0
    hist = client.get("/api/run/histograms/long", params={"tensor": "w"}).json()
    assert len(hist["steps"]) <= 50


def test_histograms_over_a_long_run_read_a_fixed_number_of_blocks_of_steps(tmp_path, store_reads):
    """The histograms over time read at most MAX_HIST_BLOCKS chunks of steps, spread from
    the first to the last, whatever the run's length; inside them, every histogram is
    the one recorded."""
    rng = np.random.default_rng(0)
    with weightlapse.create(tmp_path / "r", histograms="every:3", snapshots=None) as run:
        for step in range(2100):  # 9 chunks of 256 steps
            run.log(step, {"w": rng.normal(size=40).astype(np.float32)})
    full = weightlapse.open(tmp_path / "r")["w"].histograms
    fresh = weightlapse.open(tmp_path / "r")
    read = store_reads
    read.clear()  # the reads of the view alone
    sampled = fresh["w"].sampled_histograms(blocks=3)
    hist_chunks = {k for k in read if "/hist/c/" in k}
    assert {k.split("/c/")[1].split("/")[0] for k in hist_chunks} == {"0", "4", "8"}
    blocks = sampled.steps // 256
    assert set(blocks.tolist()) == {0, 4, 8}
    inside = full.steps[np.isin(full.steps // 256, [0, 4, 8])]
    np.testing.assert_array_equal(sampled.steps, inside)
    at = np.searchsorted(full.steps, sampled.steps)
    np.testing.assert_array_equal(sampled.counts, full.counts[at])
    np.testing.assert_array_equal(sampled.edges, full.edges[at])
    assert fresh["w"].sampled_histograms(blocks=9).steps.tolist() == full.steps.tolist()
