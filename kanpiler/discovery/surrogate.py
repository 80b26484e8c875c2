"""A smooth, accurate stand-in for the data: the function whose derivatives the structure
search reads.

In: samples ``X (N, n)``, ``y (N,)`` (float64), a seed and step counts. Out: a
:class:`Surrogate` (a float64 torch module, inputs and output standardised inside) and its
validation error. Stage: discover (first step of the search).

A tanh MLP trained full-batch with Adam then L-BFGS; a few seeds, the best on a held-out
tenth is kept. Initialisation draws from a private ``torch.Generator``; the work is bounded
by step counts only.
"""

from __future__ import annotations

import math

import torch

from .expr import F64

__all__ = ["Surrogate", "train_surrogate"]


class Surrogate(torch.nn.Module):
    """``f(X)`` for ``X (N, n)`` -> ``(N,)``: an MLP on standardised inputs and output."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, ym: float, ys: float,
                 width: int, depth: int, gen: torch.Generator, sign: float = 0.0,
                 logcols: torch.Tensor | None = None):  # fmt: skip
        super().__init__()
        self.logcols: torch.Tensor
        self.register_buffer("logcols", logcols if logcols is not None else torch.zeros(mean.numel(), dtype=torch.bool))
        self.sign = sign  # nonzero: the net models log|y| and y = sign * exp(net)
        n = mean.numel()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.ym, self.ys = ym, ys
        sizes = [n] + [width] * depth + [1]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            w = torch.randn(a, b, generator=gen, dtype=F64) * math.sqrt(1.0 / a)
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(torch.zeros(b, dtype=F64)))

    def raw(self, X: torch.Tensor) -> torch.Tensor:
        """The network's own output (``log|y|`` when ``sign`` is set)."""
        if bool(self.logcols.any()):
            X = torch.where(self.logcols, X.clamp_min(1e-300).log(), X)
        h = (X - self.mean) / self.std
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < last:
                h = torch.tanh(h)
        return h[:, 0] * self.ys + self.ym

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        out = self.raw(X)
        return self.sign * torch.exp(out) if self.sign else out


def _train(model: Surrogate, X: torch.Tensor, y: torch.Tensor, adam: int, lbfgs: int) -> None:
    yt = (y - model.ym) / model.ys
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(adam):
        opt.zero_grad()
        loss = (((model.raw(X) - model.ym) / model.ys - yt) ** 2).mean()
        loss.backward()
        opt.step()
    if lbfgs:
        lb = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=lbfgs, history_size=50,
                               tolerance_grad=1e-14, tolerance_change=1e-16,
                               line_search_fn="strong_wolfe")  # fmt: skip

        def closure() -> torch.Tensor:
            lb.zero_grad()
            loss = (((model.raw(X) - model.ym) / model.ys - yt) ** 2).mean()
            loss.backward()
            return loss

        lb.step(closure)


def train_surrogate(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int = 0,
    seeds: int = 2,
    width: int = 32,
    depth: int = 4,
    adam: int = 300,
    lbfgs: int = 1500,
    log_inputs: bool = True,
) -> tuple[Surrogate, float]:
    """The best of ``seeds`` MLPs by relative RMSE on a held-out tenth, and that error.

    A target of one sign spanning more than a factor 10 is modelled as ``log|y|``; the error
    is then that of ``log|y|`` relative to its standard deviation.
    """
    gen = torch.Generator().manual_seed(seed)
    N = X.shape[0]
    perm = torch.randperm(N, generator=gen)
    nval = max(1, N // 10)
    va, tr = perm[:nval], perm[nval:]
    # positive inputs spanning a bounded ratio are read on a log scale: power laws become linear
    lo, hi = X.min(0).values, X.max(0).values
    logcols = (lo > 0) & (hi < 50 * lo) if log_inputs else torch.zeros(X.shape[1], dtype=torch.bool)
    Xin = torch.where(logcols, X.clamp_min(1e-300).log(), X)
    mean, std = Xin[tr].mean(0), Xin[tr].std(0).clamp_min(1e-12)
    sign = 0.0
    target = y
    if bool((y > 0).all()) or bool((y < 0).all()):
        ratio = float(y.abs().max() / y.abs().min())
        if ratio > 10:  # wide dynamic range: model log|y|
            sign = 1.0 if float(y[0]) > 0 else -1.0
            target = y.abs().log()
    ym, ys = float(target[tr].mean()), float(target[tr].std()) or 1.0
    best: tuple[Surrogate, float] | None = None
    for k in range(seeds):
        g = torch.Generator().manual_seed(seed * 1000 + k + 1)
        model = Surrogate(mean, std, ym, ys, width, depth, g, sign, logcols)
        _train(model, X[tr], target[tr], adam, lbfgs)
        with torch.no_grad():  # error in the space the net models (log|y| or y), relative
            err = float(((model.raw(X[va]) - target[va]) ** 2).mean().sqrt()) / ys
        if not math.isfinite(err):
            continue
        if best is None or err < best[1]:
            best = (model, err)
    if best is None:
        raise RuntimeError("surrogate training diverged")
    best[0].requires_grad_(False)
    return best
