"""FSDP on CPU (gloo, world sizes 2 and 4, torch.multiprocessing): every rank calls
watch() with the same path, reduces its own shard, and writes its own snapshot regions;
rank 0 writes the run. Its numbers are those of the same model trained in one process on
the whole batch: statistics to float tolerance, snapshots equal, and every histogram and
statistic exactly what the unsharded recorder gives for the recorded snapshot values.
No rank ever holds a whole parameter (FSDP2's and FSDP1's shards only)."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import zarr

import weightlapse
import weightlapse.torch
from weightlapse.record.stats import Segments, summarize_host

pytestmark = pytest.mark.slow
STEPS = 5
BATCH = 8  # per rank


class Net(torch.nn.Module):
    """Shapes that split unevenly: 10 rows over 4 ranks are 3, 3, 3, 1; 3 rows are
    1, 1, 1 and nothing. The first weight (60 values) has more than the 32 probes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = torch.nn.Linear(6, 10)
        self.out = torch.nn.Linear(10, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def batches(world):
    g = torch.Generator().manual_seed(7)
    return [
        (torch.randn(BATCH * world, 6, generator=g), torch.randn(BATCH * world, 3, generator=g))
        for _ in range(STEPS)
    ]


OPTIONS = dict(gradients=True, updates=True, snapshots=1, histograms=1)


def train(model, opt, data, rank, world, record):
    for x, y in data:
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[mine]), y[mine]).backward()
        opt.step()
        record.log_scalars(loss_rank=float(rank))


def worker(rank, world, port, path, engine):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = Net()
        if engine == "fsdp2":
            from torch.distributed.fsdp import fully_shard

            fully_shard(model.hidden)
            fully_shard(model.out)
            fully_shard(model)
        else:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            model = FSDP(model, use_orig_params=True, device_id=torch.device("cpu"))
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        biggest = max(_local_numel(p) for p in model.parameters())
        record = weightlapse.torch.watch(model, path, optimizer=opt, **OPTIONS)
        train(model, opt, batches(world), rank, world, record)
        record.close()
        with open(f"{path}.rank{rank}.json", "w") as f:
            json.dump({"rank": rank, "biggest_local": biggest}, f)
    finally:
        dist.destroy_process_group()


def _local_numel(p):
    return p.to_local().numel() if hasattr(p, "to_local") else p.numel()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(path, world):
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    with weightlapse.torch.watch(model, path, optimizer=opt, **OPTIONS):
        for x, y in batches(world):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    return weightlapse.open(path)


@pytest.mark.parametrize("engine", ["fsdp2", "fsdp1"])
@pytest.mark.parametrize("world", [2, 4])
def test_sharded_records_equal_the_unsharded(tmp_path, engine, world):
    path = tmp_path / "sharded"
    mp.spawn(worker, args=(world, free_port(), str(path), engine), nprocs=world, join=True)
    ranks = [json.load(open(f"{path}.rank{r}.json")) for r in range(world)]
    whole = weightlapse.open(reference(tmp_path / "whole", world).path)
    run = weightlapse.open(path)

    names = ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert run.tensors == whole.tensors == names
    assert run.steps.tolist() == whole.steps.tolist() == list(range(STEPS + 1))
    # no rank held a whole parameter (the biggest has 60 values); each wrote its part
    assert all(r["biggest_local"] < 60 for r in ranks)
    for entry in run._attrs["snapshots"]["param"].values():
        arr = zarr.open_array(path, path=entry["array"], mode="r")
        assert arr.attrs["sharded"] and ("start" in entry) == (engine == "fsdp1")
    for name in names:
        for kind in ("param", "grad", "update"):
            got, want = run.history(name, kind), whole.history(name, kind)
            assert got.shape == want.shape
            np.testing.assert_allclose(got.stats.table, want.stats.table, rtol=2e-5, atol=1e-7)
            np.testing.assert_allclose(
                got.trajectory().values, want.trajectory().values, rtol=2e-5, atol=1e-7
            )
            assert np.abs(got.histograms.counts - want.histograms.counts).sum(axis=1).max() <= 2
        tensor = run[name]
        assert tensor.snapshot_steps == whole[name].snapshot_steps == list(range(STEPS + 1))
        for step in tensor.snapshot_steps:
            snap = tensor.at(step)
            assert snap.shape == whole[name].at(step).shape
            np.testing.assert_allclose(snap, whole[name].at(step), rtol=1e-5, atol=1e-7)
            exact_summary_matches(tensor, step, snap)


def exact_summary_matches(tensor, step, values):
    """The sharded statistics and histogram of a step are those the unsharded recorder
    computes from the same values: histograms equal, statistics to rounding."""
    flat = values.reshape(-1).astype(np.float32)
    s = summarize_host(flat, Segments.build([flat.size], [np.arange(0)]), bins=64)
    k = list(tensor.stats.steps).index(step)
    np.testing.assert_array_equal(tensor.histograms.counts[k], s.counts[0])
    np.testing.assert_allclose(tensor.stats.table[k], s.stats[0], rtol=1e-6, atol=1e-9)
