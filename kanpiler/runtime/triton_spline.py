"""Triton kernels for cubic B-spline layers on uniform grids: basis and product fused (GPU).

In: inputs ``x (N, in)``, the block weight ``W (in * (n_basis + 1), out)`` of a
:class:`~kanpiler.runtime.layer.KANLayer` and its uniform cubic grid. Out: ``(N, out)`` and, on
backward, the gradients of ``x`` and ``W``. Stage: runtime (the CUDA path of
:class:`~kanpiler.runtime.fused.FusedSpline`, which also does the autograd bookkeeping).

The feature matrix ``[silu(x) | B(x)]`` is never stored: each program computes a tile of it in
registers from ``x`` (the cubic pieces of the cardinal B-spline at the position in the knot
interval) and multiplies it with a tile of ``W`` (``tl.dot``); the weight gradient does the same
with the transposed tile and a tile of the output gradient. The input gradient takes
``grad @ W^T`` (one cuBLAS product) and one pass that weights each input's columns with the
B-spline derivatives and ``silu'``. Any point is handled (outside the grid the basis is 0), so
there is no data-dependent fallback and no host synchronisation.

Triton is optional (it comes with CUDA builds of torch): :func:`available` says whether the
kernels can run on a tensor. With ``TRITON_INTERPRET=1`` (set before Triton is imported) they
run on CPU tensors in Triton's interpreter, which is how the tests check them without a GPU.

>>> available(__import__("torch").zeros(1)) in (True, False)
True
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import Any

import torch

from .basis import BSplineBasis

__all__ = ["available", "applies", "forward", "backward", "features"]

BLOCK_N, BLOCK_O, BLOCK_K = 32, 32, 32


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(x: torch.Tensor) -> bool:
    """Whether the kernels can run on ``x``: Triton is installed and ``x`` is on a CUDA device
    (or on CPU in interpreter mode), in float32 or float64."""
    if x.dtype not in (torch.float32, torch.float64):
        return False
    if not (x.is_cuda or (x.device.type == "cpu" and interpreting())):
        return False
    return _installed()


@lru_cache(maxsize=1)
def _installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def applies(x: torch.Tensor, basis: Any) -> bool:
    """Whether the kernels compute this layer: a uniform cubic B-spline grid, ``x`` on a GPU."""
    return (
        isinstance(basis, BSplineBasis)
        and basis.k == 3
        and basis.uniform
        and basis.knots.dtype == x.dtype
        and available(x)
    )


#: filled in by :func:`_kernels` (Triton imported on first use): the kernels below resolve
#: ``tl`` and ``tile`` as module globals, as Triton requires of the functions a kernel calls
tl: Any = None
tile: Any = None


@lru_cache(maxsize=2)
def _kernels(interpret: bool) -> dict[str, Any]:
    """The jitted kernels, built once per interpreter setting (Triton is imported here)."""
    import triton
    import triton.language

    globals()["tl"] = triton.language
    globals()["tile"] = triton.jit(_tile)
    return {
        "forward": triton.jit(_forward_kernel),
        "grad_weight": triton.jit(_grad_weight_kernel),
        "grad_x": triton.jit(_grad_x_kernel),
        "cdiv": triton.cdiv,
    }


# --- kernel bodies (plain functions until _kernels jits them) --------------------------------


def _tile(x_ptr, g0_ptr, ih_ptr, rows, cols, n, n_in, nb):
    """``(len(rows), len(cols))`` features: silu columns, then ``nb`` B-splines per input."""
    n_cols = n_in * (nb + 1)
    base = cols < n_in
    spline = tl.where(base, 0, cols - n_in)
    i = tl.where(base, cols, spline // nb)
    i = tl.where(cols < n_cols, i, 0)
    j = (spline % nb).to(tl.float32)
    mask = (rows[:, None] < n) & (cols[None, :] < n_cols)
    xv = tl.load(x_ptr + rows[:, None] * n_in + i[None, :], mask=mask, other=0.0)
    g0 = tl.load(g0_ptr + i)
    ih = tl.load(ih_ptr + i)
    t = (xv - g0[None, :]) * ih[None, :]
    m = tl.floor(t)
    u = t - m
    v = 1.0 - u
    u2 = u * u
    v2 = v * v
    p = m - j[None, :].to(t.dtype)  # which piece of basis j: 0 .. 3 inside its support
    val = tl.where(
        p == 0.0,
        u2 * u / 6.0,
        tl.where(
            p == 1.0,
            (2.0 / 3.0 - v2) + v2 * v * 0.5,
            tl.where(p == 2.0, (2.0 / 3.0 - u2) + u2 * u * 0.5, v2 * v / 6.0),
        ),
    )
    val = tl.where((p >= 0.0) & (p <= 3.0), val, 0.0)
    silu = xv / (1.0 + tl.exp(-xv))
    return tl.where(mask, tl.where(base[None, :], silu, val), 0.0)


def _forward_kernel(x_ptr, g0_ptr, ih_ptr, w_ptr, out_ptr, n, n_in, nb, n_out,
            BN: tl.constexpr, BO: tl.constexpr, BK: tl.constexpr,
            PRECISION: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    outs = tl.program_id(1) * BO + tl.arange(0, BO)
    n_cols = n_in * (nb + 1)
    acc = tl.zeros((BN, BO), dtype=out_ptr.dtype.element_ty)
    for k0 in range(0, n_cols, BK):
        cols = k0 + tl.arange(0, BK)
        f = tile(x_ptr, g0_ptr, ih_ptr, rows, cols, n, n_in, nb)
        wmask = (cols[:, None] < n_cols) & (outs[None, :] < n_out)
        w = tl.load(w_ptr + cols[:, None] * n_out + outs[None, :], mask=wmask, other=0.0)
        acc += tl.dot(f.to(w.dtype), w, input_precision=PRECISION)
    omask = (rows[:, None] < n) & (outs[None, :] < n_out)
    tl.store(out_ptr + rows[:, None] * n_out + outs[None, :], acc, mask=omask)


def _grad_weight_kernel(x_ptr, g0_ptr, ih_ptr, grad_ptr, gw_ptr, n, n_in, nb, n_out,
                BN: tl.constexpr, BO: tl.constexpr, BK: tl.constexpr,
                PRECISION: tl.constexpr):  # fmt: skip
    cols = tl.program_id(0) * BK + tl.arange(0, BK)
    outs = tl.program_id(1) * BO + tl.arange(0, BO)
    n_cols = n_in * (nb + 1)
    acc = tl.zeros((BK, BO), dtype=gw_ptr.dtype.element_ty)
    for n0 in range(0, n, BN):
        rows = n0 + tl.arange(0, BN)
        f = tile(x_ptr, g0_ptr, ih_ptr, rows, cols, n, n_in, nb)
        gmask = (rows[:, None] < n) & (outs[None, :] < n_out)
        g = tl.load(grad_ptr + rows[:, None] * n_out + outs[None, :], mask=gmask, other=0.0)
        acc += tl.dot(tl.trans(f.to(g.dtype)), g, input_precision=PRECISION)
    wmask = (cols[:, None] < n_cols) & (outs[None, :] < n_out)
    tl.store(gw_ptr + cols[:, None] * n_out + outs[None, :], acc, mask=wmask)


def _grad_x_kernel(x_ptr, g0_ptr, ih_ptr, gf_ptr, gx_ptr, n, n_in, nb, BE: tl.constexpr):
    e = tl.program_id(0) * BE + tl.arange(0, BE)
    emask = e < n * n_in
    row = e // n_in
    i = e % n_in
    xv = tl.load(x_ptr + e, mask=emask, other=0.0)
    ih = tl.load(ih_ptr + i, mask=emask, other=1.0)
    t = (xv - tl.load(g0_ptr + i, mask=emask, other=0.0)) * ih
    m = tl.floor(t)
    u = t - m
    v = 1.0 - u
    q0 = 0.5 * v * v
    q2 = 0.5 * u * u
    q1 = 1.0 - q0 - q2
    n_cols = n_in * (nb + 1)
    s = 1.0 / (1.0 + tl.exp(-xv))
    gb = tl.load(gf_ptr + row * n_cols + i, mask=emask, other=0.0)
    acc = gb * (s + xv * s * (1.0 - s))
    start = row * n_cols + n_in + i * nb
    for r in tl.static_range(4):  # bases m-3+r: derivative pieces -q0, q0-q1, q1-q2, q2
        j = m - 3.0 + r
        ok = emask & (j >= 0.0) & (j < nb)
        jj = tl.where(ok, j, 0.0).to(tl.int64)
        g = tl.load(gf_ptr + start + jj, mask=ok, other=0.0)
        d = tl.where(r == 0, -q0, tl.where(r == 1, q0 - q1, tl.where(r == 2, q1 - q2, q2)))
        acc += g * d * ih
    tl.store(gx_ptr + e, acc, mask=emask)


def _precision(x: torch.Tensor) -> str:
    if x.dtype == torch.float32 and x.is_cuda and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def _spacing(basis: BSplineBasis) -> tuple[torch.Tensor, torch.Tensor]:
    g0, inv_h = basis.spacing()
    return g0.contiguous(), inv_h.contiguous()


def features(x: torch.Tensor, basis: BSplineBasis) -> torch.Tensor:
    """The feature matrix ``[silu(x) | B(x)]`` ``(N, in * (n_basis + 1))``: the fused forward
    times an identity (for tests and inspection; training never stores it)."""
    cols = x.shape[1] * (basis.n_basis + 1)
    eye = torch.eye(cols, dtype=x.dtype, device=x.device)
    return forward(x.contiguous(), eye, basis)


def forward(x: torch.Tensor, weight: torch.Tensor, basis: BSplineBasis) -> torch.Tensor:
    """``[silu(x) | B(x)] @ W`` (``x`` contiguous), the features never stored."""
    k = _kernels(interpreting())
    (n, n_in), n_out = x.shape, weight.shape[1]
    g0, inv_h = _spacing(basis)
    out = torch.empty(n, n_out, dtype=x.dtype, device=x.device)
    grid = (k["cdiv"](n, BLOCK_N), k["cdiv"](n_out, BLOCK_O))
    k["forward"][grid](x, g0, inv_h, weight.contiguous(), out, n, n_in, basis.n_basis, n_out,
                       BN=BLOCK_N, BO=BLOCK_O, BK=BLOCK_K, PRECISION=_precision(x))  # fmt: skip
    return out


def backward(
    x: torch.Tensor,
    weight: torch.Tensor,
    basis: BSplineBasis,
    grad: torch.Tensor,
    needs: tuple[bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``x`` and ``W`` (those ``needs`` asks for) of ``forward(x, W)``."""
    k = _kernels(interpreting())
    (n, n_in), n_out, nb = x.shape, weight.shape[1], basis.n_basis
    g0, inv_h = _spacing(basis)
    grad = grad.contiguous()
    gx = gw = None
    if needs[0]:
        gfeat = grad @ weight.t()
        gx = torch.empty_like(x)
        k["grad_x"][(k["cdiv"](n * n_in, 256),)](x, g0, inv_h, gfeat, gx, n, n_in, nb, BE=256)
    if needs[1]:
        gw = torch.empty(weight.shape, dtype=x.dtype, device=x.device)
        grid = (k["cdiv"](weight.shape[0], BLOCK_K), k["cdiv"](n_out, BLOCK_O))
        k["grad_weight"][grid](x, g0, inv_h, grad, gw, n, n_in, nb, n_out,
                               BN=BLOCK_N, BO=BLOCK_O, BK=BLOCK_K,
                               PRECISION=_precision(x))  # fmt: skip
    return gx, gw
