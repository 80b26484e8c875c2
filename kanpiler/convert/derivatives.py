"""Batched first, second and third derivatives of a black-box function on samples.

In: a callable ``f`` mapping ``(N, n)`` tensors to ``(N,)`` or ``(N, 1)``, and samples ``X``.
Out: :class:`Derivatives` with ``f (N,)``, ``grad (N, n)``, ``hess (N, n, n)`` and, on demand,
``third (N, n, n, n)``. Stage: convert (the tree converter's measurements).

``torch.func`` (``vmap`` of ``jacfwd``/``jacrev``) is tried first; callables that ``vmap``
cannot trace (in-place updates, data-dependent Python branches) fall back to plain autograd
with one backward pass per input dimension, which relies only on rows being independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.func import jacfwd, jacrev, vmap

from ..errors import ShapeError

Fn = Callable[[torch.Tensor], torch.Tensor]


def _scalar_rows(f: Fn, X: torch.Tensor) -> torch.Tensor:
    y = f(X)
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != X.shape[:1]:
        raise ShapeError(
            f"tree: the function must return one value per sample, shape ({X.shape[0]},) or "
            f"({X.shape[0]}, 1); got {tuple(y.shape)} (pick one output of a multi-output model)"
        )
    return y


def _single(f: Fn) -> Fn:
    return lambda x: _scalar_rows(f, x.unsqueeze(0))[0]


def _func_derivs(f: Fn, X: torch.Tensor, order: int) -> list[torch.Tensor]:
    g1 = jacrev(_single(f))
    outs = [vmap(g1)(X)]
    if order >= 2:
        outs.append(vmap(jacfwd(g1))(X))
    if order >= 3:
        outs.append(vmap(jacfwd(jacfwd(g1)))(X))
    return outs


def _autograd_derivs(f: Fn, X: torch.Tensor, order: int) -> list[torch.Tensor]:
    X = X.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = _scalar_rows(f, X)
        (g,) = torch.autograd.grad(y.sum(), X, create_graph=order > 1)
        outs = [g.detach()]
        n = X.shape[1]
        if order >= 2:
            rows = [
                torch.autograd.grad(g[:, i].sum(), X, retain_graph=True, create_graph=order > 2)[0]
                for i in range(n)
            ]
            H = torch.stack(rows, dim=1)
            outs.append(H.detach())
        if order >= 3:
            cols = []
            for i in range(n):
                for j in range(n):
                    (t,) = torch.autograd.grad(H[:, i, j].sum(), X, retain_graph=True)
                    cols.append(t)
            outs.append(torch.stack(cols, dim=1).reshape(X.shape[0], n, n, n).detach())
    return outs


@dataclass
class Derivatives:
    """Values and derivatives of ``f`` at the rows of ``X`` (third order computed lazily)."""

    f: Fn = field(repr=False)
    X: torch.Tensor = field(repr=False)
    value: torch.Tensor = field(init=False)
    grad: torch.Tensor = field(init=False)
    hess: torch.Tensor = field(init=False)
    method: str = "torch.func"
    _third: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        with torch.no_grad():
            self.value = _scalar_rows(self.f, self.X).detach()
        self.grad, self.hess = self._compute(2)

    def _compute(self, order: int) -> list[torch.Tensor]:
        if self.method == "torch.func":
            try:
                return [t.detach() for t in _func_derivs(self.f, self.X, order)]
            except ShapeError:
                raise
            except Exception:  # not traceable by vmap: fall back to plain autograd
                self.method = "autograd"
        return _autograd_derivs(self.f, self.X, order)

    @property
    def third(self) -> torch.Tensor:
        """``T[s, i, j, k] = d^3 f / dx_i dx_j dx_k`` at sample s."""
        if self._third is None:
            self._third = self._compute(3)[2]
        return self._third
