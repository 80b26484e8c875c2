"""One matrix product per layer for the dense bases, with a hand-written backward.

In: inputs ``x (N, in)``, a :class:`DenseBasis` that can ``fill`` and the layer's weight in
basis-major order (:func:`dense_weight`). Out: the layer output ``(N, out)``. Stage: runtime.

The features are ``[silu(x) | B_0(x) | B_1(x) | ... ]`` with each block ``(N, in)``: basis
function ``j`` of every input is one contiguous block of each row, so a basis writes its
values straight into the feature matrix, one ``(N, in)`` slice (or one ``(N, nb, in)`` strided
view) at a time, and the layer is ``feats @ W``. Backward: ``gW = feats^T g``,
``gfeat = g W^T`` and ``gx = silu'(x) gfeat_0 + sum_j gfeat_j dB_j/dx`` from what the basis kept
in forward (``grad_input``). Double backward (``create_graph=True``), ``torch.func`` transforms
and bases with learnable state use the plain autograd path, so every derivative stays exact.

>>> import torch
>>> from kanpiler.runtime.bases import Chebyshev
>>> basis = Chebyshev(degree=3, in_features=2, dtype=torch.float64)
>>> x = torch.rand(5, 2, dtype=torch.float64)
>>> w = torch.rand(2 * 5, 3, dtype=torch.float64)
>>> bool(torch.allclose(FusedDense.apply(x, w, basis), reference_dense(x, w, basis)))
True
"""

from __future__ import annotations

from typing import Any

import torch

from . import native
from .dense import DenseBasis, contract
from .native import dense_kernel


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return torch.rsub(s, 1).mul_(x).add_(1).mul_(s)


def dense_weight(scale_base: torch.Tensor, coef_scaled: torch.Tensor) -> torch.Tensor:
    """``(in * (nb + 1), out)``: the base rows ``(in, out)``, then basis ``j``'s rows of
    every input for ``j = 0 .. nb-1`` (``coef_scaled`` is ``(in, out, nb)``)."""
    n_in, n_out, nb = coef_scaled.shape
    spline = coef_scaled.permute(2, 0, 1).reshape(nb * n_in, n_out)
    return torch.cat([scale_base, spline])


def reference_dense(x: torch.Tensor, weight: torch.Tensor, basis: DenseBasis) -> torch.Tensor:
    """The plain autograd version of :class:`FusedDense` (any order of derivatives)."""
    vals = basis(x).transpose(1, 2).reshape(x.shape[0], -1)  # (N, nb * in), basis-major
    return torch.cat([torch.nn.functional.silu(x), vals], dim=1) @ weight


def fusable(basis: Any) -> bool:
    """Whether ``basis`` can take the fused path (a dense basis with ``fill`` and no
    learnable state, outside ``torch.func`` transforms)."""
    return (
        isinstance(basis, DenseBasis)
        and type(basis).fill is not DenseBasis.fill
        and not any(p.requires_grad for p in basis.parameters())
        and not torch._C._are_functorch_transforms_active()
    )


def _native_fill(x: torch.Tensor, feats: torch.Tensor, basis: DenseBasis):
    """``(slopes,)`` after the native kernel wrote silu and the values into ``feats``, or
    ``None`` (no kernel, another device or dtype, or a family without one)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    args = basis.native_args(x)
    kernel = dense_kernel() if args is not None else None
    if kernel is None or args is None or x.numel() == 0:
        return None
    lo, hi = torch.aminmax(x)
    if not bool((lo > -native.LIMIT) & (hi < native.LIMIT)):  # also False for NaN
        return None
    slopes = torch.empty(x.shape[0], basis.n_basis, x.shape[1], dtype=x.dtype, device=x.device)
    kernel(args[0], x.contiguous(), feats, slopes, *args[1:])
    return (slopes,)


class FusedDense(torch.autograd.Function):
    """``[silu(x) | B(x)] @ W`` for a dense basis, with the backward described above."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, basis: DenseBasis) -> torch.Tensor:
        n, n_in = x.shape
        nb = basis.n_basis
        feats = torch.empty(n, n_in * (nb + 1), dtype=x.dtype, device=x.device)
        cols = feats[:, n_in:].view(n, nb, n_in)
        state = _native_fill(x, feats, basis)
        ctx.native = state is not None
        if state is None:
            torch.ops.aten.silu.out(x, out=feats[:, :n_in])
            state = basis.fill(x, cols)
        ctx.basis = basis
        ctx.save_for_backward(x, weight, feats, *state)
        return feats @ weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, feats, *state = ctx.saved_tensors
        basis = ctx.basis
        if torch.is_grad_enabled():  # double backward: differentiate the reference path
            wanted = [t for t, need in zip((x, weight), ctx.needs_input_grad) if need]
            with torch.enable_grad():
                out = reference_dense(x, weight, basis)
                found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return (*(next(found) if need else None for need in ctx.needs_input_grad[:2]), None)
        gx = gw = None
        n, n_in = x.shape
        if ctx.needs_input_grad[0]:
            gfeat = grad @ weight.t()
            gcols = gfeat[:, n_in:].view(n, basis.n_basis, n_in)
            cols = feats[:, n_in:].view(n, basis.n_basis, n_in)
            kernel = dense_kernel() if ctx.native else None
            if kernel is not None and gfeat.is_contiguous():
                gx = torch.empty_like(x)
                kernel.grad(x.contiguous(), gfeat, state[0], gx)  # type: ignore[attr-defined]
            else:
                if ctx.native:
                    gx = contract(gcols, state[0])
                else:
                    gx = basis.grad_input(x, cols, gcols, state)
                gx.addcmul_(gfeat[:, :n_in], _silu_grad(x))
        if ctx.needs_input_grad[1]:
            gw = feats.t() @ grad
        return gx, gw, None
