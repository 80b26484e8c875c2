"""Training past one process: the ``torch.distributed`` steps that ``fit`` takes under torchrun.

In: what one process holds (its shard of the data, the loss and gradients of its shard, its
activations). Out: the same quantities over every process of the default process group, so
that every rank takes the same optimiser step from the same parameters. Stage: runtime.
Everything here is the identity when ``torch.distributed`` is not initialised or the world has
one process: single-process code pays a function call, no communication.

The recipe (data parallel, exact up to the order of floating-point sums):

* :func:`broadcast_module` once: every rank starts from rank 0's parameters and grids;
* :func:`shard`: rank ``r`` of ``W`` takes rows ``[r N / W, (r + 1) N / W)``;
* per loss evaluation, :func:`mean_loss_and_grad` (flat gradients, one ``all_reduce``) or
  :func:`average_gradients` (``p.grad`` in place and the loss, for torch optimisers): the
  sample-weighted mean over ranks, so the loss and gradient equal those of the whole batch and
  LBFGS's line search sees the same numbers on every rank;
* statistics over the batch (the regulariser's standard deviations, pruning scores) through
  :func:`global_sums` / :func:`batch_std`: their value is that of the whole batch and their
  gradient is scaled so that the weighted gradient mean above stays exact;
* grid updates from :func:`gather_rows` (every rank's samples, in rank order: the same grid on
  every rank, and with contiguous shards the very grid of a single process);
* writing (checkpoints, progress bars, logs) only where :func:`is_main`.

>>> import torch
>>> x = torch.arange(10.0).reshape(5, 2)
>>> shard(x, rank=1, world=2)[0].tolist()  # rows 2..4 of 5
[[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
>>> active(), is_main(), gather_rows(x) is x   # not initialised: identities
(False, True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.distributed as dist

__all__ = [
    "active", "rank", "world_size", "is_main", "shard", "total_count", "weighted_mean",
    "mean_loss_and_grad",
    "average_gradients", "gather_rows", "global_sums", "batch_std", "broadcast_module",
    "every", "Batches",
]  # fmt: skip


def active() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes: checkpoints, progress bars, logs."""
    return rank() == 0


def shard(
    *tensors: torch.Tensor, rank: int | None = None, world: int | None = None
) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous rows of each tensor (all of them with one process)."""
    r = globals()["rank"]() if rank is None else rank
    w = world_size() if world is None else world
    out = []
    for t in tensors:
        n = t.shape[0]
        out.append(t[r * n // w : (r + 1) * n // w])
    return tuple(out)


def total_count(count: int, device: torch.device | str = "cpu") -> int:
    """The sum of ``count`` over ranks."""
    if not active():
        return int(count)
    buf = torch.tensor([float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(buf)
    return int(buf.item())


def mean_loss_and_grad(
    loss: torch.Tensor, grad: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean over ranks of ``loss`` and ``grad`` (any shapes), weighted by each rank's
    sample ``count``: the loss and gradient of the whole batch when each rank's are the means
    over its own samples. One ``all_reduce`` of one flat buffer."""
    if not active():
        return loss, grad
    flat = torch.cat([loss.detach().reshape(-1), grad.reshape(-1), loss.new_ones(1)]) * count
    dist.all_reduce(flat)
    flat = flat[:-1] / flat[-1]
    n = loss.numel()
    return flat[:n].reshape(loss.shape), flat[n:].reshape(grad.shape)


def weighted_mean(values: torch.Tensor, count: int) -> torch.Tensor:
    """The mean over ranks of ``values`` (any shape, no gradient), weighted by each rank's
    sample ``count``: e.g. the loss over the whole data from each rank's loss on its shard."""
    if not active():
        return values
    flat = torch.cat([values.detach().reshape(-1), values.new_ones(1)]) * count
    dist.all_reduce(flat)
    return (flat[:-1] / flat[-1]).reshape(values.shape)


def average_gradients(
    params: Iterable[torch.Tensor], count: int, loss: torch.Tensor | None = None
) -> torch.Tensor | None:
    """``p.grad`` of every parameter replaced by the count-weighted mean over ranks (missing
    gradients count as zero), for torch optimisers (LBFGS, Adam); with ``loss``, its weighted
    mean is returned, detached (what an LBFGS closure returns). One ``all_reduce``."""
    if not active():
        return None if loss is None else loss.detach()
    params = [p for p in params if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    head = [] if loss is None else [loss.detach().reshape(1).to(grads[0].dtype)]
    flat = torch.cat(head + [g.reshape(-1) for g in grads] + [grads[0].new_ones(1)]) * count
    dist.all_reduce(flat)
    flat = flat[:-1] / flat[-1]
    start = len(head)
    for p, g in zip(params, grads):
        size = g.numel()
        if p.grad is None:
            p.grad = flat[start : start + size].view_as(g).clone()
        else:  # in place: gradients may be views of one flat buffer
            p.grad.copy_(flat[start : start + size].view_as(g))
        start += size
    return None if loss is None else flat[0].to(loss.dtype).reshape(loss.shape)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x``, concatenated in rank order (ranks may hold different
    numbers of rows); ``x`` itself with one process."""
    if not active():
        return x
    n = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    top = max(counts)
    padded = x.new_zeros((top, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def global_sums(local: torch.Tensor, count: int) -> torch.Tensor:
    """``local`` (sums over this rank's samples) summed over ranks, for statistics of the whole
    batch inside a loss. The value is the global sum; the gradient flows through this rank's
    part only, scaled by ``total / count``, so that :func:`mean_loss_and_grad` /
    :func:`average_gradients` (which weight rank ``r`` by ``count_r / total``) add up to the
    exact gradient of the whole batch."""
    if not active():
        return local
    buf = torch.cat([local.detach().reshape(-1), local.new_full((1,), float(count))])
    dist.all_reduce(buf)
    total = float(buf[-1])
    glob = buf[:-1].reshape(local.shape)
    return glob + (local - local.detach()) * (total / count)


def batch_std(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The (unbiased) standard deviation of ``t`` along the batch dimension ``dim`` over the
    samples of every rank; ``t.std(dim)`` with one process. Two passes (the global mean, then
    the squared deviations from it): no cancellation in float32. The mean enters detached,
    which leaves the gradient exact (the sum of squares is stationary in the mean there)."""
    if not active():
        return t.std(dim=dim)
    n = t.shape[dim]
    buf = torch.cat([t.detach().sum(dim=dim).reshape(-1), t.new_full((1,), float(n))])
    dist.all_reduce(buf)
    n_all = float(buf[-1])
    mean = (buf[:-1] / n_all).reshape(t.sum(dim=dim).shape).unsqueeze(dim)
    m2 = global_sums((t - mean).square().sum(dim=dim), n)
    return (m2 / (n_all - 1)).sqrt()


def every(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` holds on every rank (``flag`` itself with one process): e.g. whether
    every rank still has a batch, so that all stop at the same step."""
    if not active():
        return bool(flag)
    buf = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.all_reduce(buf, op=dist.ReduceOp.MIN)
    return bool(buf.item())


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Parameters and buffers (grids, masks) of rank ``src`` copied to every rank."""
    if not active():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src)


class Batches:
    """An endless stream of ``(x, y)`` batches from an iterable (e.g. a ``DataLoader``; use a
    ``DistributedSampler`` so that each rank reads its own part), restarted at its end."""

    def __init__(self, source: Iterable[Sequence[torch.Tensor]]) -> None:
        self.source = source
        self._it: Iterator[Sequence[torch.Tensor]] | None = None
        self.epoch = 0

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._it is None:
            self._it = iter(self.source)
        try:
            item = next(self._it)
        except StopIteration:
            self.epoch += 1
            set_epoch = getattr(getattr(self.source, "sampler", None), "set_epoch", None)
            if set_epoch is not None:  # a DistributedSampler reshuffles per epoch
                set_epoch(self.epoch)
            self._it = iter(self.source)
            item = next(self._it)
        x, y = item[0], item[1]
        return x, y

    def __iter__(self) -> Batches:
        return self
