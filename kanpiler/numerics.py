"""Shared numerical fitting: least squares, curve fits, Levenberg–Marquardt, scaled LBFGS.

In: tensors of samples and parameters (and library functions for curve fits). Out: fitted
parameters with their quality (r², loss). Stage: numerics — a neutral layer below both the
runtime (grids, ``fix_symbolic``, training) and the converter (``auto_symbolic``, pipeline,
constant fitting), so neither imports the other for arithmetic.

* :func:`lstsq` — batched, rank-deficiency-safe least squares with optional ridge;
* :func:`fit_curves` — ``y ≈ c*f(a*x+b)+d`` for many curves and many functions at once: a
  grid of ``(a, b)`` starts with closed-form ``(c, d)``, refined by
* :func:`levenberg_marquardt` — one batched damped Gauss–Newton loop for any residual model;
* :func:`loss_scale`, :func:`make_lbfgs`, :func:`minimize_lbfgs` — LBFGS on a loss scaled to
  about 1 (torch's LBFGS tolerances are absolute), the one loop for short fits.

>>> import torch
>>> from kanpiler import library
>>> x = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(1, -1)
>>> fits = fit_curves(x, 3 * torch.sin(2 * x + 0.5) - 1, [library.get("sin")])
>>> round(float(fits.r2[0, 0]), 9)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import FitError
from .library import Function

__all__ = [
    "lstsq",
    "normal_equations",
    "CurveFits",
    "fit_curves",
    "value_and_slope",
    "levenberg_marquardt",
    "loss_scale",
    "make_lbfgs",
    "minimize_lbfgs",
]

# ---- least squares --------------------------------------------------------------------------


def lstsq(a: torch.Tensor, b: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """Batched least squares ``argmin |a @ c - b|`` for ``a (..., M, K)``, ``b (..., M, R)``.

    Works on rank-deficient systems on every device: SVD-based ``gelsd`` on CPU; elsewhere
    regularised normal equations (Cholesky), falling back to the pseudo-inverse. ``ridge`` adds
    ``ridge * |c|^2``. Raises :class:`FitError` if the result is not finite.
    """
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise FitError("least squares: the samples or targets contain NaN or inf")
    if a.device.type == "cpu" and ridge == 0.0:
        sol = torch.linalg.lstsq(a, b, driver="gelsd").solution
    else:
        sol = normal_equations(a, b, ridge)
    if not torch.isfinite(sol).all():
        raise FitError(
            f"least squares failed for a system of shape {tuple(a.shape)} on {a.device}: "
            "non-finite solution (try more samples or float64)"
        )
    return sol


def normal_equations(a: torch.Tensor, b: torch.Tensor, ridge: float) -> torch.Tensor:
    """``(a^T a + lam I)^-1 a^T b`` by Cholesky (``lam`` = ridge + a few ulps of the largest
    diagonal), the pseudo-inverse when the factorisation fails."""
    at = a.transpose(-1, -2)
    gram = at @ a
    diag = gram.diagonal(dim1=-2, dim2=-1)
    scale = diag.amax(dim=-1, keepdim=True).clamp(min=torch.finfo(a.dtype).tiny)
    lam = ridge + 10 * torch.finfo(a.dtype).eps * scale
    gram = gram + torch.diag_embed(lam.expand_as(diag))
    chol, info = torch.linalg.cholesky_ex(gram)
    if bool((info == 0).all()):
        return torch.cholesky_solve(at @ b, chol)
    return torch.linalg.pinv(a) @ b


# ---- Levenberg-Marquardt --------------------------------------------------------------------

Jacobian = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def levenberg_marquardt(
    residual: Jacobian,
    sse: Callable[[torch.Tensor], torch.Tensor],
    p: torch.Tensor,
    steps: int,
    lam: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``sse(p)`` per row of ``p (B, P)`` by damped Gauss–Newton steps.

    ``residual(p)`` returns ``(r (B, N), J (B, N, P))``; ``sse(p)`` the ``(B,)`` sums of
    squares (``inf`` where not finite). A row only moves when its loss drops; its damping
    shrinks by 0.3 on success and grows by 10 otherwise. A row whose Jacobian overflowed
    takes no step (LAPACK must never see NaN/inf). Returns ``(p, sse)``.
    """
    damping = torch.full_like(p[:, 0], lam)
    eye = torch.eye(p.shape[1], dtype=p.dtype, device=p.device)
    loss = sse(p)
    for _ in range(steps):
        r, J = residual(p)
        JtJ = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)
        top = JtJ.diagonal(0, 1, 2).amax(-1)[:, None, None]
        damp = damping[:, None, None] * (JtJ * eye + eye * 1e-12 * top)
        finite = torch.isfinite(JtJ).all(-1).all(-1) & torch.isfinite(g).all(-1)
        A = torch.where(finite[:, None, None], JtJ + damp, eye)
        rhs = torch.where(finite[:, None], -g, torch.zeros_like(g))
        step = torch.linalg.lstsq(A, rhs.unsqueeze(-1)).solution.squeeze(-1)
        trial = p + step.nan_to_num(0.0, 0.0, 0.0)
        new_loss = sse(trial)
        better = new_loss < loss
        p = torch.where(better[:, None], trial, p)
        loss = torch.where(better, new_loss, loss)
        damping = torch.where(better, damping * 0.3, damping * 10.0).clamp(1e-12, 1e12)
    return p, loss


# ---- curve fitting: c*f(a*x+b)+d ------------------------------------------------------------

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
    """``fn(u)`` and ``fn'(u)`` (by autograd; non-finite slopes become 0)."""
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        z = fn.safe_fn(u)
        (dz,) = torch.autograd.grad(z.sum(), u)
    return z.detach(), dz.nan_to_num(0.0, 0.0, 0.0)


def _affine_sse(fn: Function, x: torch.Tensor, y: torch.Tensor) -> Callable:
    def sse(p: torch.Tensor) -> torch.Tensor:
        a, b, c, d = p.unbind(-1)
        pred = c[:, None] * fn.safe_fn(a[:, None] * x + b[:, None]) + d[:, None]
        return ((pred - y) ** 2).sum(-1).nan_to_num(torch.inf, torch.inf, torch.inf)

    return sse


def _affine_residual(fn: Function, x: torch.Tensor, y: torch.Tensor) -> Jacobian:
    def residual(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, c, d = p.unbind(-1)
        z, dz = value_and_slope(fn, a[:, None] * x + b[:, None])
        r = c[:, None] * z + d[:, None] - y
        return r, torch.stack([c[:, None] * dz * x, c[:, None] * dz, z, torch.ones_like(z)], -1)

    return residual


def fit_curves(
    x: torch.Tensor, y: torch.Tensor, functions: Sequence[Function], *, steps: int = 12
) -> CurveFits:
    """Fit ``c*f(a*x+b)+d`` to every curve (rows of ``x, y``, ``(E, N)``) for every function.

    Each curve is rescaled to ``x' in [-1, 1]``; for every function at once over all curves
    and a grid of ``(a', b')`` starts, ``c, d`` are solved in closed form on a subsample; the
    best start per (curve, function) is refined on all samples by ``steps`` batched
    Levenberg–Marquardt steps. A fit whose argument ``a*x + b`` leaves the function's domain
    on any sample is rejected (r² = -inf). Works in float64 on ``x``'s device.
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
        start = torch.stack([a0, b0, c0, d0], -1)
        sse = _affine_sse(fn, xn, y)
        p, loss = levenberg_marquardt(_affine_residual(fn, xn, y), sse, start, steps)
        a, b, c, d = p.unbind(-1)
        ok = _in_domain(fn, a[:, None] * xn + b[:, None]) & p.isfinite().all(-1)
        fit_r2 = 1 - loss / syy.clamp_min(1e-300)
        r2[:, k] = torch.where(ok & fit_r2.isfinite(), fit_r2, -torch.inf)
        # back to the curve's own x: a*x' + b = (a/half)*x + (b - a*mid/half)
        params[:, k] = torch.stack([a / half[:, 0], b - a * mid[:, 0] / half[:, 0], c, d], -1)
    return CurveFits(params=params, r2=r2)


# ---- LBFGS with loss scaling ----------------------------------------------------------------


def loss_scale(value: float) -> float:
    """``1 / value`` for a starting loss below 1 (else 1; ``1e-30`` floors it).

    LBFGS minimises the scaled loss (same minimiser): torch's LBFGS skips curvature pairs with
    ``y·s <= 1e-10`` and stops on absolute tolerances, which stalls it once an unscaled loss
    is around 1e-8. Raises :class:`FitError` for a non-finite loss.
    """
    if not math.isfinite(value):
        raise FitError(f"the initial loss is {value}: check the data and the model")
    return 1.0 / min(max(value, 1e-30), 1.0)


def make_lbfgs(
    params: Sequence[torch.Tensor],
    *,
    lr: float = 1.0,
    max_iter: int = 20,
    history_size: int = 100,
    tolerance_grad: float = 1e-32,
    tolerance_change: float = 1e-32,
) -> torch.optim.LBFGS:
    """torch's LBFGS with a strong-Wolfe line search (the settings every kanpiler fit uses)."""
    return torch.optim.LBFGS(
        list(params), lr=lr, max_iter=int(max_iter), history_size=int(history_size),
        line_search_fn="strong_wolfe", tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
    )  # fmt: skip


def minimize_lbfgs(
    params: Sequence[torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
    steps: int,
    *,
    tolerance_grad: float = 1e-12,
    tolerance_change: float = 1e-15,
) -> tuple[float, float]:
    """Up to ``steps`` LBFGS iterations on ``loss_fn()`` scaled by :func:`loss_scale`.

    The parameters are put back when the loss did not improve (or the line search met a
    non-finite value). Returns the ``(start, end)`` loss, unscaled.
    """
    params = list(params)
    with torch.no_grad():
        start = float(loss_fn())
    if steps <= 0 or not math.isfinite(start):
        return start, start
    scale = 1.0 / start if start > 0.0 else 1.0
    before = [p.detach().clone() for p in params]
    opt = make_lbfgs(params, max_iter=steps, tolerance_grad=tolerance_grad,
                     tolerance_change=tolerance_change)  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn() * scale
        if loss.requires_grad:
            loss.backward()
        return loss

    try:
        opt.step(closure)
        with torch.no_grad():
            end = float(loss_fn())
    except RuntimeError:  # a non-finite value stopped the line search
        end = math.nan
    if not (math.isfinite(end) and end <= start):
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(old)
        end = start
    return start, end
