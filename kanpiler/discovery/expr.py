"""Candidate formulas as numbers: evaluation, constant fitting and complexity.

In: SymPy expressions over the problem's variables (constants as ``Float``), data columns.
Out: values (torch float64), the same expressions with their constants fitted to data by
Levenberg-Marquardt, and a complexity count. Stage: discover (used by every search step).

Walks the expression itself with the function library's exact torch callables; no code is
generated or evaluated.

>>> import sympy, torch
>>> x = sympy.Symbol("x")
>>> X = {"x": torch.linspace(1, 2, 50, dtype=torch.float64)}
>>> e, err = fit_constants(sympy.Float(1.0) * sympy.exp(sympy.Float(0.5) * x), X, 3 * torch.exp(2 * X["x"]))
>>> round(float(e.subs(x, 0)), 9), round(float(e.subs(x, 1)) / float(e.subs(x, 0)), 9), err < 1e-12
(3.0, 7.389056099, True)
"""

from __future__ import annotations

from typing import Any

import sympy
import torch
from torch.func import jacfwd

from ..convert.evaluate import evaluate_sympy
from ..errors import UnsupportedError

F64 = torch.float64

__all__ = ["evaluate", "fit_constants", "complexity", "parametrize", "rel_rmse"]


def evaluate(
    expr: sympy.Basic,
    cols: dict[str, torch.Tensor],
    params: dict[sympy.Symbol, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Values of ``expr`` with each variable ``cols[name]`` and each parameter ``params[s]``
    (the converter's :func:`~kanpiler.convert.evaluate.evaluate_sympy`)."""
    return evaluate_sympy(expr, cols, dict(params or {}))


def complexity(expr: sympy.Basic) -> int:
    """Nodes of the expression tree; a fitted float counts 3 (a free parameter), an exact
    number or a variable 1."""
    return sum(3 if n.is_Float else 1 for n in sympy.preorder_traversal(expr))


def parametrize(expr: sympy.Expr) -> tuple[sympy.Expr, list[sympy.Symbol], list[float]]:
    """Every ``Float`` of ``expr`` becomes a parameter symbol ``_c0, _c1, ...`` (in a fixed order)."""
    floats = sorted(expr.atoms(sympy.Float), key=lambda f: (float(f), str(f)))
    syms = [sympy.Symbol(f"_c{i}") for i in range(len(floats))]
    return expr.xreplace(dict(zip(floats, syms))), syms, [float(f) for f in floats]


def rel_rmse(pred: torch.Tensor, y: torch.Tensor) -> float:
    """RMSE relative to the standard deviation of y (to its RMS if y is constant); inf if not finite."""
    if not bool(torch.isfinite(pred).all()):
        return float("inf")
    scale = (
        float(y.std()) if y.numel() > 1 and float(y.std()) > 0 else float(y.abs().mean()) + 1e-300
    )
    return float(((pred - y) ** 2).mean().sqrt()) / scale


def fit_constants(
    expr: sympy.Expr,
    cols: dict[str, torch.Tensor],
    y: torch.Tensor,
    *,
    steps: int = 60,
) -> tuple[sympy.Expr, float]:
    """Fit every ``Float`` of ``expr`` to ``y`` (least squares, Levenberg-Marquardt, float64).

    Returns the expression with the fitted constants and its relative RMSE (inf if it cannot
    be evaluated on the data). A bounded number of steps; no randomness.
    """
    template, syms, start = parametrize(expr)
    if not syms:
        try:
            return expr, rel_rmse(evaluate(expr, cols), y)
        except (ValueError, KeyError, TypeError, RuntimeError, UnsupportedError):
            return expr, float("inf")
    p = torch.tensor(start, dtype=F64)

    def resid(q: torch.Tensor) -> torch.Tensor:
        return evaluate(template, cols, {s: q[i] for i, s in enumerate(syms)}) - y

    try:
        p = _levenberg_marquardt(resid, p, steps)
        out = expr.xreplace({f: sympy.Float(float(v)) for f, v in zip(_floats(expr), p)})
        return out, rel_rmse(resid(p) + y, y)
    except (ValueError, KeyError, TypeError, RuntimeError, UnsupportedError):
        return expr, float("inf")


def _floats(expr: sympy.Expr) -> list[sympy.Float]:
    return sorted(expr.atoms(sympy.Float), key=lambda f: (float(f), str(f)))


def _levenberg_marquardt(resid: Any, p: torch.Tensor, steps: int) -> torch.Tensor:
    with torch.no_grad():
        r = resid(p)
    cost = float((r * r).sum()) if bool(torch.isfinite(r).all()) else float("inf")
    if cost == float("inf"):
        return p
    lam = 1e-3
    for _ in range(steps):
        J = jacfwd(resid)(p)
        if not bool(torch.isfinite(J).all()):
            break
        A = J.T @ J
        g = J.T @ r
        improved = False
        for _ in range(8):
            D = torch.diag(A.diagonal().clamp_min(1e-30)) * lam
            try:
                step = torch.linalg.solve(A + D, -g)
            except RuntimeError:
                lam *= 10
                continue
            q = p + step
            with torch.no_grad():
                rq = resid(q)
            c = float((rq * rq).sum())
            if c == c and c < cost:
                p, r, lam, improved = q, rq, max(lam / 3, 1e-12), True
                done = cost - c <= 1e-15 * cost
                cost = c
                break
            lam *= 10
        if not improved or done or cost <= 1e-300:
            break
    return p
