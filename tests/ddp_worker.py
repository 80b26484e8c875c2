"""A small data-parallel training run (helper of test_runtime_distributed.py, not a test).

Run as ``python tests/ddp_worker.py OUT [fit|loader]`` (one process, all data) or under
``torchrun --nproc_per_node 2 tests/ddp_worker.py OUT [fit|loader]`` (gloo; each rank trains
on its shard): a hand-written LBFGS loop with the helpers of
:mod:`kanpiler.runtime.distributed`, or (``fit``) ``model.fit``, which does the same itself, or
(``loader``) ``model.fit`` on DataLoaders, one per rank through a ``DistributedSampler``.
Rank 0 writes ``OUT`` (JSON): the loss per step and the final parameters and grids; every rank
calls ``model.save`` (into OUT's folder, named by its rank), and only rank 0 may write.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from kanpiler.numerics import make_lbfgs
from kanpiler.runtime import MultKAN, distributed

F64 = torch.float64


def data(n: int = 240) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, 2, generator=g, dtype=F64) * 1.8 - 0.9
    return x, torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2


def penalty(record) -> torch.Tensor:
    """The regulariser's magnitude: std of each edge over the batch / std of its input."""
    total = torch.zeros((), dtype=F64)
    for acts, edges in zip(record.acts, record.spline_acts):
        scale = distributed.batch_std(edges) / (distributed.batch_std(acts).unsqueeze(1) + 0.1)
        total = total + scale.sum()
    return total


def train(steps: int = 4) -> dict:
    torch.set_num_threads(1)
    model = MultKAN([2, 3, 1], grid=5, k=3, seed=int(os.environ.get("RANK", 0)), dtype=F64)
    distributed.broadcast_module(model)  # rank 0's initialisation everywhere
    x, y = data()
    xs, ys = distributed.shard(x, y)
    model.update_grid(distributed.gather_rows(xs))  # the grid of all samples
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_lbfgs(params, history_size=10, max_iter=8)
    losses = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        pred, record = model.run(xs, record=True)
        loss = torch.mean((pred - ys) ** 2) + 1e-3 * penalty(record)
        loss.backward()
        return distributed.average_gradients(params, xs.shape[0], loss.detach())

    for step in range(steps + 1):
        if step:
            opt.step(closure)
        with torch.no_grad():  # the loss over all data, from each rank's shard
            mse = torch.mean((model(xs) - ys) ** 2)
        losses.append(float(distributed.weighted_mean(mse, xs.shape[0])))
    state = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
    model.save(os.path.join(os.path.dirname(sys.argv[1]), f"model-rank{distributed.rank()}"))
    return {"losses": losses, "state": state, "world": distributed.world_size()}


def train_with_fit(steps: int = 4) -> dict:
    """The same through ``model.fit``, which shards the data itself under torchrun."""
    torch.set_num_threads(1)
    model = MultKAN([2, 3, 1], grid=5, k=3, seed=int(os.environ.get("RANK", 0)), dtype=F64)
    x, y = data()
    history = model.fit(x, y, steps=steps, lamb=1e-3, restarts=2, stop_grid_update_step=2,
                        grid_update_num=2, progress=True)  # fmt: skip
    state = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
    return {"losses": history["train_loss"], "state": state, "world": distributed.world_size()}


def train_with_loaders(steps: int = 5) -> dict:
    """``model.fit`` on DataLoaders: one process reads batches of 80 rows; under torchrun
    each rank reads 40 through a ``DistributedSampler`` (rank r: rows r, r + W, ...), so the
    ranks' batches together are the single process's batch."""
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    torch.set_num_threads(1)
    model = MultKAN([2, 3, 1], grid=5, k=3, seed=int(os.environ.get("RANK", 0)), dtype=F64)
    x, y = data()
    x_test, y_test = data(60)
    world = distributed.world_size()

    def loader(ds: TensorDataset, rows: int) -> DataLoader:
        if world == 1:
            return DataLoader(ds, batch_size=rows)
        sampler = DistributedSampler(ds, shuffle=False)  # rank and world from the group
        return DataLoader(ds, batch_size=rows // world, sampler=sampler)

    history = model.fit(
        loader(TensorDataset(x, y), 80), x_test=loader(TensorDataset(x_test, y_test), 20),
        steps=steps, lamb=1e-3, restarts=2, stop_grid_update_step=4, grid_update_num=2,
        progress=True,
    )  # fmt: skip
    state = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
    return {
        "losses": history["train_loss"], "test": history["test_loss"], "state": state,
        "world": world,
    }  # fmt: skip


def main() -> None:
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    try:
        mode = sys.argv[2] if len(sys.argv) > 2 else ""
        result = {"fit": train_with_fit, "loader": train_with_loaders}.get(mode, train)()
        if distributed.is_main():
            with open(sys.argv[1], "w") as f:
                json.dump(result, f)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
