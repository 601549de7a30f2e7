"""A run reads in xarray with no weightlapse import (named dimensions), and as labelled
xarray and pandas tables through the Run."""

from __future__ import annotations

import numpy as np
import pytest

import weightlapse
from tests.conftest import run_python

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")


@pytest.fixture
def run_path(tmp_path):
    path = tmp_path / "r"
    with weightlapse.create(path, snapshots=2, gradients=True) as run:
        for step in range(5):
            run.log(
                step,
                {"fc": {"w": np.full((3, 2), float(step)), "b": np.arange(2.0) * step}},
                grads={"fc/w": np.ones((3, 2))},
                loss=1.0 / (step + 1),
            )
    return path


def test_xarray_open_zarr_reads_a_run_without_weightlapse(run_path):
    proc = run_python(
        "import json, xarray as xr\n"
        f"root = xr.open_zarr({str(run_path)!r}, consolidated=False)\n"
        f"param = xr.open_zarr({str(run_path)!r}, group='param', consolidated=False)\n"
        "print(json.dumps({'root': dict(root.sizes), 'param': dict(param.sizes),\n"
        "    'l2': param.stats.isel(param_tensor=0, stat=4).values.tolist(),\n"
        "    'weightlapse_loaded': 'weightlapse' in __import__('sys').modules}))"
    )
    out = __import__("json").loads(proc.stdout)
    assert out["root"]["step"] == 5 and out["param"]["param_tensor"] == 2
    assert out["param"]["bin"] == 64 and not out["weightlapse_loaded"]
    np.testing.assert_allclose(out["l2"], [6**0.5 * s for s in range(5)])


def test_run_to_xarray_and_to_pandas_are_labelled(run_path):
    run = weightlapse.open(run_path)
    ds = run.to_xarray()
    assert list(ds.tensor.values) == ["fc/w", "fc/b"] and list(ds.step.values) == list(range(5))
    np.testing.assert_allclose(ds.stats.sel(tensor="fc/w", stat="l2"), run["fc/w"].stats["l2"])
    np.testing.assert_allclose(ds.loss, 1.0 / (np.arange(5) + 1))
    assert ds.hist.sel(tensor="fc/b").sum(dim="bin").values.tolist() == [2] * 5
    grads = run.to_xarray("grad")
    assert list(grads.tensor.values) == ["fc/w"]
    frame = run.to_pandas()
    assert len(frame) == 10 and set(frame.tensor) == {"fc/w", "fc/b"}
    row = frame[(frame.tensor == "fc/w") & (frame.step == 3)].iloc[0]
    assert row["mean"] == 3.0 and row["epoch"] == -1


def test_snapshot_arrays_say_which_tensor_they_hold(run_path):
    import zarr

    snaps = zarr.open_group(run_path, mode="r")["param/snapshots"]
    assert {snaps[k].attrs["tensor"] for k in snaps.array_keys()} == {"fc/w", "fc/b"}
    assert sorted(snaps.array_keys()) == ["fc%2Fb", "fc%2Fw"]  # named, never nested


def test_open_datatree_reads_every_group_with_snapshots_named_by_tensor(run_path):
    proc = run_python(
        "import json, xarray as xr\n"
        f"tree = xr.open_datatree({str(run_path)!r}, engine='zarr', consolidated=False)\n"
        "snaps = tree['param/snapshots']\n"
        "print(json.dumps({'groups': sorted(tree.groups), 'vars': sorted(snaps.data_vars),\n"
        "    'w': snaps['fc%2Fw'].values.tolist(), 'dims': list(snaps['fc%2Fw'].dims)}))"
    )
    out = __import__("json").loads(proc.stdout)
    assert {"/param", "/grad", "/param/snapshots"} <= set(out["groups"])
    assert out["vars"] == ["fc%2Fb", "fc%2Fw"]
    assert out["dims"] == ["fc%2Fw:step", "fc%2Fw:0", "fc%2Fw:1"]
    assert out["w"][0] == [[0.0, 0.0]] * 3 and out["w"][-1] == [[4.0, 4.0]] * 3


@pytest.mark.parametrize(
    "names",
    [
        ["..", ".", "./x", "a/../../b"],
        ["a/b", "a%2Fb", "a:b", "ä ü"],
        ["x" * 400, "x" * 399 + "y", "conv1.weight"],
    ],
)
def test_any_tensor_name_gets_its_own_snapshot_array_inside_the_run(tmp_path, names):
    path = tmp_path / "r"
    with weightlapse.create(path, snapshots=1) as run:
        run.log(0, {n: np.full(2, float(i)) for i, n in enumerate(names)})
    run = weightlapse.open(path)
    for i, name in enumerate(names):
        assert run[name].at(0).tolist() == [float(i)] * 2
    inside = {p.resolve() for p in (path / "param" / "snapshots").iterdir() if p.is_dir()}
    assert len(inside) == len(names)
    assert all(len(p.name) <= 130 for p in inside)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # nothing escaped the run
