"""Separability scores from batched derivatives: the measurements behind the tree converter.

In: :class:`~kanpiler.convert.derivatives.Derivatives` of ``f`` on samples.
Out: scores in ``[0, 1]``; 0 means the property holds exactly, values near 1 that it clearly
fails. Stage: convert.

Every score is a ratio of sums over the samples, ``sum|residual| / sum(size of its terms)``, so
it does not depend on the scale of ``f`` (a product context multiplies ``f`` by a factor that
varies from sample to sample) and a criterion whose terms all vanish scores 0.
"""

from __future__ import annotations

import torch

from .derivatives import Derivatives


def _ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    n, d = float(num.abs().sum()), float(den.abs().sum())
    tiny = 1e-12 * d + 1e-300
    return n / (d + tiny) if d > 0 else 0.0


def additive(d: Derivatives, i: int, j: int) -> float:
    """``f = g(.., x_i, ..) + h(.., x_j, ..)``: the mixed derivative vanishes."""
    H = d.hess
    hij = H[:, i, j].abs()
    return _ratio(hij, hij + (H[:, i, i] * H[:, j, j]).abs().sqrt())


def multiplicative(d: Derivatives, i: int, j: int) -> float:
    """``f = g(.., x_i, ..) * h(.., x_j, ..)``: the mixed derivative of ``log|f|`` vanishes.

    Uses ``f*f_ij - f_i*f_j`` (``f**2`` times that derivative), so ``f = 0`` is harmless.
    """
    f, g, H = d.value, d.grad, d.hess

    def L(a: int, b: int) -> torch.Tensor:
        return f * H[:, a, b] - g[:, a] * g[:, b]

    lij = L(i, j).abs()
    return _ratio(lij, lij + (L(i, i) * L(j, j)).abs().sqrt())


def multiplicative_offset(d: Derivatives, i: int, j: int) -> float:
    """``f = u(x_i) v(x_j) + beta`` for an unknown constant ``beta`` (second order only).

    For ``d`` taken where every other variable is held fixed (so an added function of them
    is a constant): ``(f - beta) f_ij = f_i f_j``; ``beta`` is the least-squares value.
    """
    f, g, H = d.value, d.grad, d.hess
    hij = H[:, i, j]
    beta = float((hij * (f * hij - g[:, i] * g[:, j])).sum() / (hij * hij).sum().clamp_min(1e-300))

    def L(a: int, b: int) -> torch.Tensor:
        return (f - beta) * H[:, a, b] - g[:, a] * g[:, b]

    lij = L(i, j).abs()
    return _ratio(lij, lij + (L(i, i) * L(j, j)).abs().sqrt())


def through_group(d: Derivatives, group: list[int], others: list[int]) -> float:
    """``f`` depends on the variables of ``group`` only through one function ``G(group)``.

    Then ``f_i / f_j`` (i, j in the group) is ``G_i / G_j``, free of every other variable k:
    ``f_ik f_j - f_jk f_i = 0``. The worst pair of the group is returned.
    """
    g, H = d.grad, d.hess
    worst = 0.0
    for a, i in enumerate(group):
        for j in group[a + 1 :]:
            num = torch.zeros_like(g[:, 0])
            den = torch.zeros_like(g[:, 0])
            for k in others:
                t1, t2 = H[:, i, k] * g[:, j], H[:, j, k] * g[:, i]
                num = num + (t1 - t2).abs()
                den = den + t1.abs() + t2.abs()
            worst = max(worst, _ratio(num, den))
    return worst


def sum_inside(d: Derivatives, i: int, j: int) -> float:
    """``f = F(u(x_i) + v(x_j) + ...)``: ``log|f_i / f_j|`` is additive in x_i and x_j.

    Written without division: ``(f_iij f_i - f_ij f_ii) f_j^2 = (f_ijj f_j - f_ij f_jj) f_i^2``.
    """
    g, H, T = d.grad, d.hess, d.third
    gi2, gj2 = g[:, i] ** 2, g[:, j] ** 2
    t = [
        T[:, i, i, j] * g[:, i] * gj2,
        H[:, i, j] * H[:, i, i] * gj2,
        T[:, i, j, j] * g[:, j] * gi2,
        H[:, i, j] * H[:, j, j] * gi2,
    ]
    num = (t[0] - t[1] - t[2] + t[3]).abs()
    return _ratio(num, t[0].abs() + t[1].abs() + t[2].abs() + t[3].abs())
