"""DDP on CPU (gloo, world size 2, torch.multiprocessing): every rank calls watch() as a
user would; rank 0 alone writes one run, whose numbers are those of the same training
done in one process on both ranks' data."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import weightlapse
import weightlapse.torch

pytestmark = pytest.mark.slow
STEPS = 4


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = torch.nn.Linear(5, 4)
        self.out = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def batches(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return [(torch.randn(8, 5, generator=g), torch.randn(8, 1, generator=g)) for _ in range(STEPS)]


def worker(rank, world, port, path, mode):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(Net())
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        outcome = {"rank": rank}
        try:
            rec = weightlapse.torch.watch(
                model, path, optimizer=opt, gradients=True, rank_zero_only=mode == "default"
            )
            outcome["recording"] = rec.run is not None
        except weightlapse.WeightlapseError as exc:
            outcome["error"] = str(exc)
            rec = None
        dist.barrier()
        for x, y in batches(rank):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            if rec is not None:
                rec.log_scalars(rank_seen=float(rank))
        if rec is not None:
            rec.close()
        dist.barrier()
        with open(f"{path}.rank{rank}.json", "w") as f:
            json.dump(outcome, f)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(path, mode):
    mp.spawn(worker, args=(2, free_port(), str(path), mode), nprocs=2, join=True)
    return [json.load(open(f"{path}.rank{r}.json")) for r in range(2)]


def reference():
    """One process, both ranks' batches: DDP averages the two ranks' gradients."""
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    grads = []
    for (x0, y0), (x1, y1) in zip(batches(0), batches(1)):
        opt.zero_grad()
        loss = (
            torch.nn.functional.mse_loss(net(x0), y0) + torch.nn.functional.mse_loss(net(x1), y1)
        ) / 2
        loss.backward()
        grads.append(net.hidden.weight.grad.clone())
        opt.step()
    return net, grads


def test_ddp_every_rank_calls_watch_and_rank_zero_writes_one_correct_run(tmp_path):
    outcomes = spawn(tmp_path / "run", "default")
    assert [o.get("recording") for o in outcomes] == [True, False]
    assert not any("error" in o for o in outcomes)

    run = weightlapse.open(tmp_path / "run")
    assert run.meta["model"]["class"] == "Net"
    assert set(run.tensors) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    assert list(run.steps) == list(range(STEPS + 1)) and not run.is_live
    assert set(run.scalar("rank_seen")[1:]) == {0.0}

    net, grads = reference()
    recorded = run["hidden.weight"].grad.trajectory().values
    np.testing.assert_allclose(recorded, np.stack([g.numpy().ravel() for g in grads]), rtol=1e-5)
    np.testing.assert_allclose(
        run["hidden.weight"].at(-1), net.hidden.weight.detach().numpy(), rtol=1e-5
    )


def test_two_ranks_writing_one_path_get_a_clear_error_not_a_broken_run(tmp_path):
    outcomes = spawn(tmp_path / "run", "every-rank")
    errors = [o["error"] for o in outcomes if "error" in o]
    assert len(errors) == 1 and "being recorded by pid" in errors[0]
    run = weightlapse.open(tmp_path / "run")
    assert list(run.steps) == list(range(STEPS + 1))
