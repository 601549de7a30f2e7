import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import weightlapse
from weightlapse.errors import RunFormatError, WeightlapseError
from weightlapse.record.schedule import DEFAULT_HISTOGRAMS, as_schedule
from weightlapse.record.stats import STAT_NAMES
from weightlapse.store import layout
from weightlapse.store.check import check_run

REPO = Path(__file__).resolve().parents[2]


def write_run(path, steps=30, snapshots=10):
    rng = np.random.default_rng(0)
    written = {}
    with weightlapse.create(
        path, snapshots=snapshots, gradients=True, updates=True, flush_seconds=0.2
    ) as run:
        for step in range(steps):
            params = {
                "dense": {
                    "kernel": rng.normal(size=(12, 5)).astype(np.float32),
                    "bias": rng.normal(size=5).astype(np.float32),
                }
            }
            grads = {"dense/kernel": rng.normal(size=(12, 5)).astype(np.float32)}
            run.log(
                step,
                params,
                grads=grads,
                epoch=step // 10,
                loss=1.0 / (step + 1),
                **({"val_accuracy": 0.5} if step % 10 == 9 else {}),
            )
            written[step] = params
    return written


def test_a_run_is_a_versioned_zarr_v3_group(tmp_path):
    write_run(tmp_path / "r")
    group = zarr.open_group(tmp_path / "r", mode="r")
    assert group.metadata.zarr_format == 3
    attrs = group.attrs["weightlapse"]
    assert attrs["format_version"] == layout.FORMAT_VERSION
    assert attrs["committed_steps"] == 30
    assert attrs["stat_names"] == list(STAT_NAMES)
    assert group["param/stats"].shape[1:] == (2, len(STAT_NAMES))
    doc = (REPO / "docs" / "format.md").read_text()
    assert f"format version {layout.FORMAT_VERSION}" in doc.lower()


def test_what_is_logged_reads_back(tmp_path):
    written = write_run(tmp_path / "r")
    run = weightlapse.open(tmp_path / "r")
    assert run.tensors == ["dense/kernel", "dense/bias"]
    assert run.kinds == ["param", "grad", "update"]
    assert list(run.steps) == list(range(30))
    assert list(run.epochs[:11]) == [0] * 10 + [1]
    np.testing.assert_allclose(run.scalar("loss"), 1.0 / (np.arange(30) + 1))
    acc = run.scalar("val_accuracy")
    assert np.isnan(acc[0]) and acc[9] == 0.5

    kernel = run["dense/kernel"]
    assert kernel.shape == (12, 5) and kernel.dtype == "float32"
    for step in (0, 17, 29):
        w = written[step]["dense"]["kernel"].astype(np.float64)
        assert kernel.stats["l2"][step] == pytest.approx(np.linalg.norm(w), rel=1e-5)
        assert kernel.stats["std"][step] == pytest.approx(w.std(), rel=1e-4)
    # histograms on their default schedule (log-spaced, then every 10th step)
    hist = kernel.histograms
    expected = [s for s in range(30) if as_schedule(DEFAULT_HISTOGRAMS).due(s)]
    assert list(hist.steps) == expected and 29 not in expected and 20 in expected
    assert hist.counts.shape == (len(expected), 64) and hist.edges.shape == (len(expected), 65)
    assert (hist.counts.sum(axis=1) == 60).all()
    w = written[20]["dense"]["kernel"]
    at = expected.index(20)
    np.testing.assert_allclose(
        hist.edges[at], np.linspace(w.min(), w.max(), 65), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(hist.counts[at], np.histogram(w, 64, (w.min(), w.max()))[0])

    assert kernel.snapshot_steps == [0, 10, 20, 29]  # 29: the last step, at close
    np.testing.assert_array_equal(kernel.at(20), written[20]["dense"]["kernel"])
    np.testing.assert_array_equal(kernel.at(-1), written[29]["dense"]["kernel"])

    traj = run["dense/bias"].trajectory()
    assert traj.elements == [(i,) for i in range(5)]
    np.testing.assert_array_equal(traj.values[29], written[29]["dense"]["bias"])

    # updates: the change since the previous logged step, and the ratio to the weight norm
    upd = kernel.update.stats
    d = written[5]["dense"]["kernel"].astype(np.float64) - written[4]["dense"]["kernel"]
    assert upd["l2"][list(upd.steps).index(5)] == pytest.approx(np.linalg.norm(d), rel=1e-5)
    ratio = kernel.update_ratio
    assert ratio.values[list(ratio.steps).index(5)] == pytest.approx(
        np.linalg.norm(d) / np.linalg.norm(written[5]["dense"]["kernel"]), rel=1e-5
    )
    assert "dense/bias" not in run.names("grad")


def test_a_big_tensor_gets_a_seeded_sample_of_probes(tmp_path):
    w = np.arange(100 * 50, dtype=np.float32).reshape(100, 50)
    with weightlapse.create(tmp_path / "r", max_probes=16) as run:
        run.log(0, {"w": w})
        run.log(1, {"w": w + 1})
    traj = weightlapse.open(tmp_path / "r")["w"].trajectory()
    assert traj.values.shape == (2, 16)
    for column, (i, j) in enumerate(traj.elements):
        assert traj.values[0, column] == w[i, j] and traj.values[1, column] == w[i, j] + 1
    assert weightlapse.open(tmp_path / "r")["w"].trajectory([traj.elements[3]]).values.shape == (
        2,
        1,
    )


def test_nan_and_inf_weights_are_recorded_and_counted(tmp_path):
    w = np.ones((4, 4), np.float32)
    w[0, 0], w[1, 1], w[2, 2] = np.nan, np.inf, -np.inf
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        run.log(0, {"w": w})
        run.log(1, {"w": np.full((4, 4), np.nan, np.float32)})
    h = weightlapse.open(tmp_path / "r")["w"]
    assert list(h.stats["nan_count"]) == [1, 16] and list(h.stats["inf_count"]) == [2, 0]
    assert h.stats["max"][0] == 1.0 and np.isnan(h.stats["max"][1])
    np.testing.assert_array_equal(h.at(0), w)  # NaN and Inf kept in the snapshot


def test_tensors_and_scalars_may_appear_later(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        run.log(0, {"a": np.zeros(3)})
        run.log(1, {"a": np.ones(3), "b": np.ones(2)}, loss=2.0)
    run = weightlapse.open(tmp_path / "r")
    assert run.tensors == ["a", "b"]
    assert list(run["b"].stats.steps) == [1]
    assert list(run["a"].stats.steps) == [0, 1]


def test_nested_structures_are_flattened_to_path_names(tmp_path):
    tree = {"encoder": [{"w": np.ones(2)}, {"w": np.ones(3)}], "head": np.ones(4)}
    with weightlapse.create(tmp_path / "r") as run:
        run.log(0, tree)
    assert weightlapse.open(tmp_path / "r").tensors == ["encoder/0/w", "encoder/1/w", "head"]


def test_creating_over_an_existing_run_is_refused_without_overwrite(tmp_path):
    write_run(tmp_path / "r", steps=2)
    with pytest.raises(RunFormatError, match="overwrite=True"):
        weightlapse.create(tmp_path / "r")
    weightlapse.create(tmp_path / "r", overwrite=True).close()
    assert weightlapse.open(tmp_path / "r").tensors == []


def test_a_newer_format_version_is_refused_with_advice(tmp_path):
    write_run(tmp_path / "r", steps=2)
    group = zarr.open_group(tmp_path / "r", mode="a")
    attrs = dict(group.attrs["weightlapse"])
    attrs["format_version"] = layout.FORMAT_VERSION + 1
    group.attrs["weightlapse"] = attrs
    with pytest.raises(RunFormatError, match="Upgrade weightlapse"):
        weightlapse.open(tmp_path / "r")


def test_non_numeric_input_is_a_clear_error_and_keeps_what_was_recorded(tmp_path):
    with weightlapse.create(tmp_path / "r") as run:
        run.log(0, {"w": np.ones(3)})
        with pytest.raises(WeightlapseError, match="'w'.*records real numbers"):
            run.log(1, {"w": np.array(["a", "b"])})
        run.log(2, {"w": np.ones(3)})
    assert list(weightlapse.open(tmp_path / "r").steps) == [0, 2]


def test_metadata_is_json(tmp_path):
    with weightlapse.create(tmp_path / "r", meta={"note": "x"}) as run:
        run.set_meta(input_shape=[28, 28])
        run.log(0, {"w": np.ones(1)})
    meta = weightlapse.open(tmp_path / "r").meta
    assert meta == {"framework": "generic", "note": "x", "input_shape": [28, 28]}
    json.dumps(meta)


def test_a_heartbeat_alone_is_not_news_but_liveness_sees_it(tmp_path):
    import json
    import socket

    run_writer = weightlapse.create(tmp_path / "r")
    run_writer.log(0, {"w": np.ones(2)})
    run_writer.flush()
    run = weightlapse.open(tmp_path / "r")
    doc_path = tmp_path / "r" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    writer = doc["attributes"]["weightlapse"]["writer"]
    writer.update(host=socket.gethostname() + "-elsewhere", heartbeat=0.0)  # as if stale
    doc_path.write_text(json.dumps(doc))
    assert run.refresh() is False  # nothing new was recorded
    assert not run.is_live  # but the stale heartbeat was read
    run_writer.close()


def test_histograms_follow_their_own_schedule_and_every_statistic_stays(tmp_path):
    with weightlapse.create(tmp_path / "r", histograms="every:5", gradients=True) as run:
        for step in range(12):
            w = np.full(6, float(step))
            run.log(step, {"w": w + np.arange(6)}, grads={"w": w})
    w = weightlapse.open(tmp_path / "r")["w"]
    assert list(w.stats.steps) == list(range(12))
    assert list(w.histograms.steps) == [0, 5, 10]
    assert list(w.grad.histograms.steps) == [0, 5, 10]
    with weightlapse.create(tmp_path / "n", histograms=None) as run:
        run.log(0, {"w": np.arange(3.0)})
    assert len(weightlapse.open(tmp_path / "n")["w"].histograms.steps) == 0
    with pytest.raises(weightlapse.WeightlapseError, match="not a schedule"):
        weightlapse.create(tmp_path / "x", histograms="sometimes")


@pytest.mark.parametrize("big_dtype", [np.float64, np.float32])
def test_many_small_tensors_pack_their_snapshots_into_few_arrays(tmp_path, big_dtype):
    """float32 throughout: each step's snapshots travel as one flat copy, written as slices
    of it into the packs after the first flush; a float64 tensor among them: one by one."""
    from weightlapse.store.check import check_run
    from weightlapse.store.snapshots import PACK_MIN

    rng = np.random.default_rng(0)
    n = PACK_MIN + 44
    arrays = {f"block{i}/w": rng.normal(size=(2, 3)).astype(np.float32) for i in range(n)}
    arrays["big"] = rng.normal(size=(80, 80)).astype(big_dtype)  # 51 KB: an array of its own
    odd = {k: v for i, (k, v) in enumerate(arrays.items()) if i % 2}  # a step logs half
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step in range(3):
            run.log(step, {k: v + step for k, v in arrays.items()})
            run.flush()  # later flushes find every tensor placed
        run.log(3, {k: v + 3 for k, v in odd.items()})
        run.log(4, {k: v + 4 for k, v in arrays.items()})
        run.log(5, {k: v + 5 for k, v in arrays.items()}, snapshot=False)
    run = weightlapse.open(tmp_path / "r")
    for name in ("block0/w", "block1/w", f"block{n - 1}/w", "big"):
        expected = [0, 1, 2, 3, 4, 5] if name in odd else [0, 1, 2, 4, 5]
        assert run[name].snapshot_steps == expected  # 5: the closing snapshot
        for step in expected:
            np.testing.assert_array_equal(run[name].at(step), arrays[name] + step)
    assert run.history("block0/w").at(2).dtype == np.float32
    files = sum(1 for f in (tmp_path / "r").rglob("*") if f.is_file())
    assert files < n  # not one array (and a file a snapshot) per tensor
    assert check_run(tmp_path / "r") == []


def as_older_version(path, version):
    """Rewrites a run as format 1 or 2 wrote it: snapshot steps (and a pack's rows) in
    the entries of the root attributes, probed elements listed there too, no index or
    probe element arrays."""
    import zarr

    from weightlapse.store import layout
    from weightlapse.store.snapshot_index import index_path, read_lists

    group = zarr.open_group(path, mode="r+")
    attrs = dict(group.attrs[layout.ROOT_ATTR])
    for kind, entries in attrs["snapshots"].items():
        lists = read_lists(group, attrs, kind)
        for name, entry in entries.items():
            steps, rows = lists.get(name, ([], []))
            entry["steps"] = steps
            if entry.pop("packed", False):
                entry["rows"] = rows
            else:
                assert rows == list(range(len(steps)))
        del group[index_path(kind)]
    for kind, spec in attrs["kinds"].items():
        values = group[f"{kind}/probe_elements"][:].tolist()
        ends = np.cumsum(spec["probe_counts"]).tolist()
        spec["probe_elements"] = [values[a:b] for a, b in zip([0, *ends[:-1]], ends)]
        del group[f"{kind}/probe_elements"]
    del attrs["snapshot_rows"]
    group.attrs[layout.ROOT_ATTR] = {**attrs, "format_version": version}


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_run_reads_resumes_into_the_new_format_and_a_newer_one_is_refused(
    tmp_path, version
):
    import zarr

    from weightlapse.store import layout

    small = {f"s{i}": np.full(3, float(i)) for i in range(300)}  # packed
    with weightlapse.create(tmp_path / "r", snapshots=1) as run:
        for step in range(3):
            run.log(step, {"w": np.arange(4.0) + step, **small})
    as_older_version(tmp_path / "r", version)
    old = weightlapse.open(tmp_path / "r")
    assert old.format_version == version
    assert old["w"].snapshot_steps == old["s7"].snapshot_steps == [0, 1, 2]
    np.testing.assert_array_equal(old["w"].at(2), np.arange(4.0) + 2)
    np.testing.assert_array_equal(old["s7"].at(1), np.full(3, 7.0))
    probed = old["w"].trajectory()
    assert probed.elements == [(0,), (1,), (2,), (3,)]
    np.testing.assert_array_equal(probed.values[:, 2], [2.0, 3.0, 4.0])
    assert check_run(tmp_path / "r") == []

    with weightlapse.create(tmp_path / "r", resume=True, snapshots=1) as run:
        run.log(3, {"w": np.arange(4.0) + 3, **small})
    new = weightlapse.open(tmp_path / "r")
    assert new.format_version == layout.FORMAT_VERSION
    assert new["w"].snapshot_steps == new["s7"].snapshot_steps == [0, 1, 2, 3]
    np.testing.assert_array_equal(new["w"].at(1), np.arange(4.0) + 1)
    np.testing.assert_array_equal(new["w"].at(3), np.arange(4.0) + 3)
    np.testing.assert_array_equal(new["s7"].at(3), np.full(3, 7.0))
    np.testing.assert_array_equal(new["w"].trajectory().values[:, 2], [2.0, 3.0, 4.0, 5.0])
    assert new["s299"].trajectory().elements == [(0,), (1,), (2,)]
    assert check_run(tmp_path / "r") == []
    attrs = dict(zarr.open_group(tmp_path / "r").attrs[layout.ROOT_ATTR])
    assert all("steps" not in e for e in attrs["snapshots"]["param"].values())

    group = zarr.open_group(tmp_path / "r", mode="r+")
    group.attrs[layout.ROOT_ATTR] = {**attrs, "format_version": layout.FORMAT_VERSION + 1}
    with pytest.raises(weightlapse.RunFormatError, match="Upgrade weightlapse"):
        weightlapse.open(tmp_path / "r")


def test_a_small_tensors_snapshots_share_chunks_and_each_reads_back_exactly(tmp_path):
    """Snapshots of a tensor up to 256 KiB share a chunk: a flush that adds one re-encodes
    the chunk with the earlier ones in it, across flushes and a resumed run; a bigger
    tensor keeps a chunk per snapshot."""
    rng = np.random.default_rng(0)
    small = rng.normal(size=(16, 8)).astype(np.float32)  # 512 bytes: 512 a chunk
    big = rng.normal(size=(300, 300)).astype(np.float32)  # 360 KB: one a chunk
    path = tmp_path / "r"
    with weightlapse.create(path, snapshots=1) as run:
        for step in range(6):
            run.log(step, {"small": small + step, "big": big + step})
            run.flush()  # each snapshot in a flush of its own
    with weightlapse.create(path, resume=True, snapshots=1) as run:
        for step in range(6, 9):
            run.log(step, {"small": small + step, "big": big + step})
    read = weightlapse.open(path)
    for name, values in (("small", small), ("big", big)):
        assert read[name].snapshot_steps == list(range(9))
        for step in range(9):
            np.testing.assert_array_equal(read[name].at(step), values + step)
    group = zarr.open_group(path, mode="r")
    entries = dict(group.attrs[layout.ROOT_ATTR])["snapshots"]["param"]
    assert group[entries["small"]["array"]].chunks[0] == 2**18 // small.nbytes
    assert group[entries["big"]["array"]].chunks[0] == 1
    small_files = [f for f in (path / entries["small"]["array"] / "c").rglob("*") if f.is_file()]
    assert len(small_files) == 1
    assert check_run(path) == []
