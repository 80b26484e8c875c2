"""Data-parallel training: two gloo processes under torchrun give the single-process result,
and every helper is the identity without a process group."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kanpiler.runtime import MultKAN, distributed

WORKER = Path(__file__).with_name("ddp_worker.py")
F64 = torch.float64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    result["stderr"] = done.stderr
    return result


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(WORKER),
            *args]  # fmt: skip


@pytest.mark.slow
def test_fit_on_two_gloo_processes_matches_one(tmp_path) -> None:
    """``model.fit`` under torchrun shards the data, reduces losses, gradients, the
    regulariser's statistics and grid samples: the single-process run, to rounding."""
    one_out, two_out = tmp_path / "one.json", tmp_path / "two.json"
    one = _run([sys.executable, str(WORKER), str(one_out), "fit"], one_out)
    two = _run(_torchrun(str(two_out), "fit"), two_out)
    assert (one["world"], two["world"]) == (1, 2)
    assert len(one["losses"]) == len(two["losses"]) == 4
    for a, b in zip(one["losses"], two["losses"]):
        assert b == pytest.approx(a, rel=1e-5)
    for key, values in one["state"].items():
        torch.testing.assert_close(
            torch.tensor(two["state"][key]), torch.tensor(values), atol=1e-5, rtol=1e-5
        )
    assert two["stderr"].count("100%") == 1  # one progress bar, on rank 0


@pytest.mark.slow
def test_fit_on_loaders_on_two_gloo_processes_matches_one(tmp_path) -> None:
    """``model.fit`` on DataLoaders, each rank its own through a ``DistributedSampler``:
    batch losses, gradients, grid samples (read ahead in the pass) and the test pass are
    reduced over ranks, so two processes give the one-process run, to rounding."""
    one_out, two_out = tmp_path / "one.json", tmp_path / "two.json"
    one = _run([sys.executable, str(WORKER), str(one_out), "loader"], one_out)
    two = _run(_torchrun(str(two_out), "loader"), two_out)
    assert (one["world"], two["world"]) == (1, 2)
    assert len(one["losses"]) == len(two["losses"]) == 5  # 3 batches a pass: a second pass
    for key in ("losses", "test"):
        for a, b in zip(one[key], two[key]):
            assert b == pytest.approx(a, rel=1e-5)
    assert one["test"][-1] < 0.5 * one["test"][0]  # it trained
    for key, values in one["state"].items():
        torch.testing.assert_close(
            torch.tensor(two["state"][key]), torch.tensor(values), atol=1e-5, rtol=1e-5
        )
    assert two["stderr"].count("100%") == 1  # one progress bar, on rank 0


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path) -> None:
    one = _run([sys.executable, str(WORKER), str(tmp_path / "one.json")], tmp_path / "one.json")
    two = _run(_torchrun(str(tmp_path / "two.json")), tmp_path / "two.json")
    assert (one["world"], two["world"]) == (1, 2)
    saved = sorted(f.name for f in tmp_path.iterdir() if f.name.startswith("model-"))
    assert saved == ["model-rank0.json", "model-rank0.safetensors"]  # rank 1 wrote nothing
    assert one["losses"][-1] < 0.05 * one["losses"][0]  # it trained
    for a, b in zip(one["losses"], two["losses"]):
        assert b == pytest.approx(a, rel=1e-9)
    assert one["state"].keys() == two["state"].keys()
    for key, values in one["state"].items():
        torch.testing.assert_close(
            torch.tensor(two["state"][key]), torch.tensor(values), atol=1e-9, rtol=1e-9
        )


def test_helpers_are_identities_without_a_group() -> None:
    x = torch.arange(12.0, dtype=F64).reshape(6, 2)
    assert not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard(x)[0] is not None and torch.equal(distributed.shard(x)[0], x)
    assert distributed.gather_rows(x) is x
    assert distributed.total_count(6) == 6
    assert (distributed.every(True), distributed.every(False)) == (True, False)
    loss, grad = torch.tensor(2.0), torch.ones(3)
    assert distributed.mean_loss_and_grad(loss, grad, 4) == (loss, grad)
    assert distributed.weighted_mean(grad, 4) is grad
    torch.testing.assert_close(distributed.batch_std(x), x.std(dim=0))
    model = MultKAN([2, 1], grid=3, dtype=F64)
    before = [p.detach().clone() for p in model.parameters()]
    distributed.broadcast_module(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("world", [2, 3, 5])
def test_shards_cover_the_rows_in_order(world: int) -> None:
    x = torch.arange(17.0).reshape(17, 1)
    parts = [distributed.shard(x, rank=r, world=world)[0] for r in range(world)]
    assert torch.equal(torch.cat(parts), x)
    assert max(p.shape[0] for p in parts) - min(p.shape[0] for p in parts) <= 1


def test_batches_cycle_and_reshuffle_per_epoch() -> None:
    class Sampler:
        epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

    class Loader(list):
        sampler = Sampler()

    x = torch.arange(4.0).reshape(4, 1)
    loader = Loader([(x[:2], x[:2] * 2), (x[2:], x[2:] * 2)])
    stream = distributed.Batches(loader)
    seen = [next(stream)[0][0, 0].item() for _ in range(5)]
    assert seen == [0.0, 2.0, 0.0, 2.0, 0.0]
    assert Sampler.epochs == [1, 2]
