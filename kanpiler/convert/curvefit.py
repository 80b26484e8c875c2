"""Batched affine-wrapped curve fitting: ``y ≈ c*f(a*x + b) + d`` for many curves and many f.

In: sampled curves ``x, y`` of shape ``(E, N)`` and candidate library functions.
Out: :class:`CurveFits`: per curve and function the fitted ``(a, b, c, d)`` and r².
Stage: convert (the numerical core of ``auto_symbolic``).

Each curve is first rescaled to ``x' in [-1, 1]``. Then, for every function at once over all
curves and a grid of ``(a', b')`` starts, ``c, d`` are solved in closed form (a linear least
squares: ``c = cov(z, y) / var(z)``) on a subsample; the best start per (curve, function) is
refined on all samples by a few batched Levenberg-Marquardt steps on ``(a, b, c, d)``. A fit
whose argument ``a*x + b`` leaves the function's domain on any sample is rejected (r² = -inf):
its formula would not be real there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..library import Function

A_GRID = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
B_GRID_HALF = 6.0
B_STEPS = 19
SUBSAMPLE = 96


@dataclass
class CurveFits:
    """``params[e, f] = (a, b, c, d)`` in the curve's own x; ``r2[e, f]`` (-inf: rejected)."""

    params: torch.Tensor  # (E, F, 4)
    r2: torch.Tensor  # (E, F)


def _closed_form_cd(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Best ``c, d`` and r² of ``y ≈ c*z + d`` along the last dim (broadcasting)."""
    zm, ym = z.mean(-1, keepdim=True), y.mean(-1, keepdim=True)
    zc, yc = z - zm, y - ym
    szz, syy, szy = (zc * zc).mean(-1), (yc * yc).mean(-1), (zc * yc).mean(-1)
    c = szy / szz.clamp_min(1e-300)
    d = ym.squeeze(-1) - c * zm.squeeze(-1)
    r2 = szy * szy / (szz * syy).clamp_min(1e-300)
    r2 = torch.where((szz > 1e-24 * syy.clamp_min(1e-300)) & r2.isfinite(), r2, -torch.inf)
    return c, d, r2


def _starts(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor(A_GRID, dtype=dtype, device=device)
    a = torch.cat([a, -a])
    b = torch.linspace(-B_GRID_HALF, B_GRID_HALF, B_STEPS, dtype=dtype, device=device)
    A, B = torch.meshgrid(a, b, indexing="ij")
    return A.flatten(), B.flatten()


def _in_domain(fn: Function, u: torch.Tensor) -> torch.Tensor:
    if fn.domain_text == "all reals":  # only overflow can leave the domain: checked later
        return torch.ones(u.shape[:-1], dtype=torch.bool, device=u.device)
    return fn.in_domain(u).all(-1)


def _grid_search(xs: torch.Tensor, y: torch.Tensor, fn: Function) -> tuple[torch.Tensor, ...]:
    """Best start (a', b', c, d, r²) per curve for one function; xs (E, n), y (E, n)."""
    A, B = _starts(xs.dtype, xs.device)
    u = A[None, :, None] * xs[:, None, :] + B[None, :, None]  # (E, P, n)
    z = fn.safe_fn(u)
    c, d, r2 = _closed_form_cd(z, y[:, None, :])
    r2 = torch.where(_in_domain(fn, u), r2, -torch.inf)
    best = r2.argmax(dim=1)
    pick = (torch.arange(xs.shape[0], device=xs.device), best)
    return A[best], B[best], c[pick], d[pick], r2[pick]


def value_and_slope(fn: Function, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        z = fn.safe_fn(u)
        (dz,) = torch.autograd.grad(z.sum(), u)
    return z.detach(), dz.nan_to_num(0.0, 0.0, 0.0)


def _sse(fn: Function, p: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    a, b, c, d = p.unbind(-1)
    pred = c[:, None] * fn.safe_fn(a[:, None] * x + b[:, None]) + d[:, None]
    return ((pred - y) ** 2).sum(-1).nan_to_num(torch.inf, torch.inf, torch.inf)


def _levenberg_marquardt(
    fn: Function, p: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int
) -> torch.Tensor:
    """Refine ``p = (a, b, c, d)`` per curve (rows of x, y) by damped Gauss-Newton steps."""
    lam = torch.full_like(p[:, 0], 1e-3)
    eye = torch.eye(4, dtype=p.dtype, device=p.device)
    loss = _sse(fn, p, x, y)
    for _ in range(steps):
        a, b, c, d = p.unbind(-1)
        z, dz = value_and_slope(fn, a[:, None] * x + b[:, None])
        r = c[:, None] * z + d[:, None] - y
        J = torch.stack([c[:, None] * dz * x, c[:, None] * dz, z, torch.ones_like(z)], -1)
        JtJ = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)
        damp = lam[:, None, None] * (
            JtJ * eye + eye * 1e-12 * JtJ.diagonal(0, 1, 2).amax(-1)[:, None, None]
        )
        # a curve whose Jacobian overflowed (a pole inside the window) takes no step: LAPACK
        # must never see NaN/inf, it fails with an internal assert on them
        finite = torch.isfinite(JtJ).all(-1).all(-1) & torch.isfinite(g).all(-1)
        A = torch.where(finite[:, None, None], JtJ + damp, eye)
        rhs = torch.where(finite[:, None], -g, torch.zeros_like(g))
        step = torch.linalg.lstsq(A, rhs.unsqueeze(-1)).solution.squeeze(-1)
        trial = p + step.nan_to_num(0.0, 0.0, 0.0)
        new_loss = _sse(fn, trial, x, y)
        better = new_loss < loss
        p = torch.where(better[:, None], trial, p)
        loss = torch.where(better, new_loss, loss)
        lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(1e-12, 1e12)
    return p


def fit_curves(
    x: torch.Tensor, y: torch.Tensor, functions: list[Function], *, steps: int = 12
) -> CurveFits:
    """Fit ``c*f(a*x+b)+d`` to every curve (rows of ``x, y``) for every function.

    Works in float64 on ``x``'s device; loops over functions only (each step is batched over
    all curves and all starts).
    """
    x, y = x.to(torch.float64), y.to(torch.float64)
    E, N = x.shape
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    mid, half = (hi + lo) / 2, ((hi - lo) / 2).clamp_min(1e-12)
    xn = (x - mid) / half
    order = xn.argsort(dim=1)
    pick = torch.linspace(0, N - 1, min(N, SUBSAMPLE), device=x.device).round().long()
    sub = order[:, pick]
    xs, ys = xn.gather(1, sub), y.gather(1, sub)
    params = torch.zeros(E, len(functions), 4, dtype=x.dtype, device=x.device)
    r2 = torch.full((E, len(functions)), -torch.inf, dtype=x.dtype, device=x.device)
    syy = ((y - y.mean(1, keepdim=True)) ** 2).sum(1)
    for k, fn in enumerate(functions):
        a0, b0, c0, d0, _ = _grid_search(xs, ys, fn)
        p = _levenberg_marquardt(fn, torch.stack([a0, b0, c0, d0], -1), xn, y, steps)
        a, b, c, d = p.unbind(-1)
        u = a[:, None] * xn + b[:, None]
        ok = _in_domain(fn, u) & p.isfinite().all(-1)
        fit_r2 = 1 - _sse(fn, p, xn, y) / syy.clamp_min(1e-300)
        r2[:, k] = torch.where(ok & fit_r2.isfinite(), fit_r2, -torch.inf)
        # back to the curve's own x: a*x' + b = (a/half)*x + (b - a*mid/half)
        params[:, k] = torch.stack([a / half[:, 0], b - a * mid[:, 0] / half[:, 0], c, d], -1)
    return CurveFits(params=params, r2=r2)
