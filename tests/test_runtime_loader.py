"""``fit`` on a DataLoader or any iterable of ``(x, y)`` batches: where the semantics coincide
with tensors (one batch of all data; the mini-batches ``batch=`` draws) the result is the
same, a generator works and ends the fit, and bad batches raise before the model changes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from kanpiler.errors import ConfigError, ShapeError
from kanpiler.runtime import MultKAN, fit
from kanpiler.runtime.batches import BatchStream

F64 = torch.float64


def data(n: int = 96, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=F64) * 2 - 1
    return x, torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2


def model() -> MultKAN:
    return MultKAN([2, 3, 1], grid=4, k=3, seed=0, dtype=F64)


def assert_same_state(a: MultKAN, b: MultKAN, tol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], atol=tol, rtol=tol, msg=key)


def test_one_batch_loader_equals_full_batch_tensors() -> None:
    """LBFGS (with warm-up, regulariser and grid updates) on a loader whose one batch is all
    the data: the same steps as on the tensors. (The same tensors at every step keep the line
    search going across steps, as with tensors; a new batch starts a new one.)"""
    x, y = data()
    xt, yt = data(40, seed=2)

    def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().mean()

    opts = dict(steps=3, lamb=1e-3, restarts=1, warmup=10, stop_grid_update_step=4,
                grid_update_num=2, metrics=[mae], progress=False)  # fmt: skip
    a, b = model(), model()
    ha = fit(a, x, y, x_test=xt, y_test=yt, **opts)
    test = DataLoader(TensorDataset(xt, yt), batch_size=16)  # 3 batches: a weighted pass
    hb = fit(b, [(x, y)], x_test=test, **opts)
    for key in ("train_loss", "test_loss", "reg", "mae"):
        assert hb[key] == pytest.approx(ha[key], rel=1e-9), key
    assert_same_state(a, b, 1e-9)
    assert ha["train_loss"][-1] < 0.2 * ha["train_loss"][0]  # it trained


def test_loader_of_the_drawn_batches_equals_batch_option() -> None:
    """Adam with ``batch=b`` draws ``randperm(n)[:b]`` from a generator seeded with ``seed``
    per step; a DataLoader of exactly those batches gives the same model and test losses."""
    x, y = data()
    xt, yt = data(40, seed=2)
    b, steps = 24, 12
    gen = torch.Generator().manual_seed(0)
    drawn = [torch.randperm(len(x), generator=gen)[:b].tolist() for _ in range(steps)]
    batches = [(x[ids], y[ids]) for ids in drawn]
    loader = DataLoader(TensorDataset(x, y), batch_sampler=drawn)
    opts = dict(steps=steps, opt="Adam", lr=0.02, update_grid=False, seed=0, progress=False)
    m1, m2 = model(), model()
    h1 = fit(m1, x, y, x_test=xt, y_test=yt, batch=b, **opts)
    h2 = fit(m2, loader, x_test=xt, y_test=yt, **opts)
    assert h2["test_loss"] == pytest.approx(h1["test_loss"], rel=1e-9)
    assert_same_state(m1, m2, 1e-9)
    # the training loss is reported on the step's batch (after the step)
    with torch.no_grad():
        last = torch.mean((m2(batches[-1][0]) - batches[-1][1]) ** 2).item()
    assert h2["train_loss"][-1] == pytest.approx(last, rel=1e-9)


def test_generator_of_batches_trains_and_ends_the_fit() -> None:
    x, y = data()
    chunks = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]
    m = model()
    history = fit(m, (c for _ in range(4) for c in chunks), steps=50, opt="Adam", lr=0.05,
                  progress=False)  # fmt: skip
    assert len(history["train_loss"]) == 12  # 12 batches, then the generator ended
    with torch.no_grad():
        before = torch.mean((model()(x) - y) ** 2).item()
        after = torch.mean((m(x) - y) ** 2).item()
    assert after < 0.5 * before


def test_grid_update_reads_ahead_within_the_pass_without_reordering() -> None:
    """The grid sample is the batch and the next ones of its pass (bounded), and the batches
    read ahead are still trained on, in order."""
    x = torch.arange(10.0, dtype=F64).reshape(10, 1)
    pairs = [(x[i : i + 2], x[i : i + 2]) for i in range(0, 10, 2)]
    stream = BatchStream(pairs, lambda item, i: (item[0], item[1]), "training")
    first = stream.next()
    assert first is not None
    sample = stream.sample(first[0], rows=5)  # 2 + 2 + 2 rows: stops past the bound
    assert sample.flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert stream.sample(first[0], rows=100).shape[0] == 10  # the end of the pass
    order = [stream.next()[0][0, 0].item() for _ in range(6)]  # type: ignore[index]
    assert order == [2.0, 4.0, 6.0, 8.0, 0.0, 2.0]


def test_a_distributed_sampler_is_told_the_epoch() -> None:
    x, y = data(8)
    ds = TensorDataset(x, y)
    sampler = torch.utils.data.DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    stream = BatchStream(loader, lambda item, i: (item[0], item[1]), "training")
    for _ in range(5):  # 2 batches per pass: the third pass has begun
        stream.next()
    assert sampler.epoch == 2


def _state(m: MultKAN) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda x, y: (x[:, :1], y), r"training batch 2 inputs must be \(N, 2\)"),
        (
            lambda x, y: (x.masked_fill(x > 0.5, float("nan")), y),
            "training batch 2 inputs hold NaN",
        ),
        (lambda x, y: ((x * 10).long(), y), "training batch 2 inputs are torch.int64"),
        (lambda x, y: (x.float(), y), "training batch 2 inputs are torch.float32"),
        (lambda x, y: (x, y[:-1]), "training batch 2 data: 8 inputs but 7 targets"),
        (lambda x, y: (x, y, y), "training batch 2 must be a pair"),
        (lambda x, y: x, "training batch 2 must be a pair"),
    ],
)
def test_bad_batches_raise_and_leave_the_model(bad, match) -> None:
    x, y = data(24)
    pairs = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 16, 8)] + [bad(x[16:], y[16:])]
    m = model()
    before = _state(m)
    with pytest.raises(ShapeError, match=match):
        fit(m, pairs, steps=5, opt="Adam", lr=0.05, stop_grid_update_step=0, progress=False)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_loader_calls_raise_before_training() -> None:
    x, y = data(16)
    pairs = [(x[:8], y[:8]), (x[8:], y[8:])]
    m = model()
    with pytest.raises(ConfigError, match="yields no batches"):
        fit(m, [], steps=2, progress=False)
    with pytest.raises(ConfigError, match="without separate targets"):
        fit(m, pairs, y, steps=2, progress=False)
    with pytest.raises(ShapeError, match=r"got Tensor; for tensors x, y call fit\(model, x, y\)"):
        fit(m, (x, y), steps=2, progress=False)
    with pytest.raises(ConfigError, match="batch= does not apply"):
        fit(m, pairs, steps=2, batch=4, progress=False)
    with pytest.raises(ConfigError, match="one-shot iterator"):
        fit(m, pairs, x_test=iter(pairs), steps=2, progress=False)
    with pytest.raises(ShapeError, match="test batch 0 inputs must be"):
        fit(m, pairs, x_test=[(x[:, :1], y)], steps=2, progress=False)
    with pytest.raises(ShapeError, match="test batch 1 inputs hold NaN"):  # during the pass
        fit(m, pairs, x_test=[(x, y), (x * float("nan"), y)], steps=2, opt="Adam",
            progress=False)  # fmt: skip
