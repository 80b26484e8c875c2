"""Two-term edges: ``y ≈ c1*f1(a1*x+b1) + c2*f2(a2*x+b2) + d`` when no single function fits.

In: curves ``x, y`` ``(E, N)``, candidate functions and their single-term fits. Out: per curve
the best pair with its seven parameters and r². Stage: convert (used by ``auto_symbolic``).

A learned edge is often a sum of two simple functions (``sin(x) + x**2`` on one edge). For
every curve, each function is sampled at a few natural arguments ("atoms": ``a*x`` with
``a`` in 1, 2, 1/2, π, 2π, -1, plus the function's own single-term optimum); the best ``c1,
c2, d`` for ALL atom pairs follow from one Gram matrix per curve (a batched 2x2 solve), and
the winning pair is refined by a few steps of :func:`kanpiler.numerics.levenberg_marquardt`
on all seven parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..library import Function
from ..numerics import CurveFits, levenberg_marquardt, value_and_slope

NATURAL_A = (1.0, 2.0, 0.5, math.pi, 2 * math.pi, -1.0)


@dataclass
class PairFit:
    """Best two-term fit of one curve: ``terms = ((k1, a1, b1, c1), (k2, a2, b2, c2))``."""

    terms: tuple[tuple[int, float, float, float], ...]
    d: float
    r2: float


def _atoms(x: torch.Tensor, fns: list[Function], single: CurveFits, e: int) -> tuple:
    """Values ``(A, N)`` of the atoms of curve ``e`` and their ``(k, a, b)``."""
    specs, rows = [], []
    for k, fn in enumerate(fns):
        pairs = [(a, 0.0) for a in NATURAL_A]
        if single.r2[e, k] > -math.inf:
            a, b = single.params[e, k, :2].tolist()
            pairs.append((a, b))
        for a, b in pairs:
            u = a * x + b
            if bool(fn.in_domain(u).all()):
                z = fn.safe_fn(u)
                if bool(z.isfinite().all()) and float(z.std()) > 0:
                    specs.append((k, a, b))
                    rows.append(z)
    return torch.stack(rows), specs


def _best_pair(Z: torch.Tensor, y: torch.Tensor) -> tuple[int, int, float]:
    """Indices of the atom pair whose least-squares combination explains most of ``y``."""
    Zc = Z - Z.mean(1, keepdim=True)
    yc = y - y.mean()
    G = Zc @ Zc.T
    h = Zc @ yc
    gp, gq = G.diagonal()[:, None], G.diagonal()[None, :]
    det = gp * gq - G**2
    cp = (gq * h[:, None] - G * h[None, :]) / det
    cq = (gp * h[None, :] - G * h[:, None]) / det
    explained = cp * h[:, None] + cq * h[None, :]
    ok = (det > 1e-9 * gp * gq) & torch.ones_like(G, dtype=torch.bool).triu(1)
    explained = torch.where(ok & explained.isfinite(), explained, -torch.inf)
    flat = int(explained.argmax())
    p, q = divmod(flat, G.shape[0])
    return p, q, float(explained[p, q] / (yc @ yc))


def _value_and_jacobian(
    fns: list[Function], ks: tuple[int, int], p: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model value ``(1, N)`` and Jacobian ``(1, N, 7)`` for ``p = (a1, b1, c1, a2, b2, c2,
    d)`` of shape ``(1, 7)``."""
    q = p[0]
    cols, value = [], q[6] + torch.zeros_like(x)
    for t, k in enumerate(ks):
        a, b, c = q[3 * t : 3 * t + 3]
        z, dz = value_and_slope(fns[k], a * x + b)
        value = value + c * z
        cols += [c * dz * x, c * dz, z]
    return value[None], torch.stack([*cols, torch.ones_like(x)], 1)[None]


def _refine(
    fns: list[Function],
    ks: tuple[int, int],
    p: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
) -> tuple[torch.Tensor, float]:
    """Levenberg-Marquardt on ``(a1, b1, c1, a2, b2, c2, d)`` for one curve."""

    def residual(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value, jac = _value_and_jacobian(fns, ks, q, x)
        return value - y, jac

    def sse(q: torch.Tensor) -> torch.Tensor:
        r = _plain_value(fns, ks, q[0], x) - y
        return (r**2).sum().reshape(1).nan_to_num(torch.inf, torch.inf, torch.inf)

    best, loss = levenberg_marquardt(residual, sse, p[None], steps)
    return best[0], float(loss[0])


def _plain_value(
    fns: list[Function], ks: tuple[int, int], q: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    value = q[6] + torch.zeros_like(x)
    for t, k in enumerate(ks):
        a, b, c = q[3 * t : 3 * t + 3]
        value = value + c * fns[k].safe_fn(a * x + b)
    return value


def fit_pair(
    x: torch.Tensor, y: torch.Tensor, fns: list[Function], single: CurveFits, e: int,
    steps: int = 15,
) -> PairFit | None:  # fmt: skip
    """The best two-term fit of curve ``e`` (``x, y`` are that curve's samples, float64)."""
    Z, specs = _atoms(x, fns, single, e)
    if len(specs) < 2:
        return None
    p_i, q_i, _ = _best_pair(Z, y)
    (k1, a1, b1), (k2, a2, b2) = specs[p_i], specs[q_i]
    A = torch.stack([Z[p_i], Z[q_i], torch.ones_like(y)], 1)
    c1, c2, d = torch.linalg.lstsq(A, y[:, None]).solution.flatten().tolist()
    p0 = torch.tensor([a1, b1, c1, a2, b2, c2, d], dtype=x.dtype, device=x.device)
    p, sse = _refine(fns, (k1, k2), p0, x, y, steps)
    for t, k in enumerate((k1, k2)):
        if not bool(fns[k].in_domain(p[3 * t] * x + p[3 * t + 1]).all()):
            return None
    syy = float(((y - y.mean()) ** 2).sum())
    a1, b1, c1, a2, b2, c2, d = p.tolist()
    return PairFit(((k1, a1, b1, c1), (k2, a2, b2, c2)), d, 1 - sse / max(syy, 1e-300))
