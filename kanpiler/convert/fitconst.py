"""Constants of a formula fitted and snapped against data.

In: a SymPy formula with ``Float`` constants and data ``(values, y)``. Out: the formula with
its floats tuned by LBFGS (:func:`kanpiler.numerics.minimize_lbfgs`), snapped to closed forms (or dropped) where the data allow it, and
``Abs`` of an argument with one sign on the data rewritten without it. Stage: convert (the
last steps of :func:`~kanpiler.convert.symbolic_pipeline`).

>>> import sympy, torch
>>> x = sympy.Symbol("x")
>>> xs = torch.linspace(-1, 1, 50, dtype=torch.float64)
>>> snap_on_data(sympy.Float(2.0003) * sympy.sin(sympy.Float(0.9998) * x), {"x": xs}, 2 * torch.sin(xs))
2*sin(x)
"""

from __future__ import annotations

import math

import sympy
import torch

from ..numerics import minimize_lbfgs
from .constants import snap_candidates
from .evaluate import evaluate_sympy

__all__ = ["fit_constants", "snap_on_data", "drop_abs", "formula_rmse"]


def formula_rmse(expr: sympy.Expr, env: dict[str, torch.Tensor], y: torch.Tensor) -> float:
    """Root mean square error of ``expr`` on the data (``inf`` when not finite)."""
    with torch.no_grad():
        err = float(((evaluate_sympy(expr, env) - y) ** 2).mean().sqrt())
    return err if math.isfinite(err) else math.inf


def _lift(expr: sympy.Expr) -> tuple[sympy.Expr, dict[sympy.Dummy, float]]:
    """Each ``Float`` of ``expr`` replaced by a ``Dummy`` constant, with the values."""
    floats = sorted(expr.atoms(sympy.Float), key=str)
    dummies = {f: sympy.Dummy(f"k{n}") for n, f in enumerate(floats)}
    return expr.xreplace(dummies), {d: float(f) for f, d in dummies.items()}


def _lower(expr: sympy.Expr, values: dict[sympy.Dummy, float]) -> sympy.Expr:
    return expr.xreplace({d: sympy.Float(v) for d, v in values.items()})


def _tune(
    expr: sympy.Expr, values: dict[sympy.Dummy, float], env: dict, y: torch.Tensor, steps: int
) -> dict[sympy.Dummy, float]:
    """LBFGS on the constants' values; the input values if that does not help."""
    keys = [d for d in values if d in expr.free_symbols]
    if not keys or steps <= 0:
        return values
    theta = torch.tensor([values[d] for d in keys], dtype=y.dtype, device=y.device)
    theta.requires_grad_(True)

    def loss() -> torch.Tensor:
        consts = {d: theta[k] for k, d in enumerate(keys)}
        return ((evaluate_sympy(expr, env, consts) - y) ** 2).mean()

    minimize_lbfgs([theta], loss, steps)  # puts theta back unless the loss improved
    return {**values, **{d: float(v) for d, v in zip(keys, theta.tolist())}}


def fit_constants(
    expr: sympy.Expr, env: dict[str, torch.Tensor], y: torch.Tensor, steps: int = 30
) -> sympy.Expr:
    """``expr`` with its ``Float`` constants fitted to ``(env, y)`` by LBFGS (kept if worse)."""
    lifted, values = _lift(expr)
    return _lower(lifted, _tune(lifted, values, env, y, steps))


def drop_abs(expr: sympy.Expr, env: dict[str, torch.Tensor]) -> sympy.Expr:
    """``Abs(u)`` -> ``u`` or ``-u`` where ``u`` keeps one sign on all the data points."""
    for node in sorted(expr.atoms(sympy.Abs), key=sympy.count_ops):
        if node not in expr.atoms(sympy.Abs):
            continue
        with torch.no_grad():
            u = evaluate_sympy(node.args[0], env)
        if bool((u >= 0).all()):
            expr = expr.xreplace({node: node.args[0]})
        elif bool((u <= 0).all()):
            expr = expr.xreplace({node: -node.args[0]})
    return expr


def snap_on_data(
    expr: sympy.Expr,
    env: dict[str, torch.Tensor],
    y: torch.Tensor,
    *,
    rtol: float = 1e-2,
    slack: float = 1.5,
    retune: int = 20,
) -> sympy.Expr:
    """Replace floats of ``expr`` by 0 or a close closed form when the data allow it.

    Floats are tried smallest first; after each replacement the other floats are refitted
    (``retune`` LBFGS steps) and the change is kept when the RMSE stays within ``slack``
    times the starting one (plus 1e-6 of y's spread). Learned constants carry the training
    error, so this checks that a snapped constant is what the data say, not merely close.
    """
    floor = 1e-6 * float(y.std()) if y.numel() > 1 else 1e-12
    limit = slack * formula_rmse(expr, env, y) + floor
    lifted, values = _lift(expr)
    for d in sorted(values, key=lambda k: abs(values[k])):
        for cand in [sympy.Integer(0), *snap_candidates(values[d], rtol, decimals=1)]:
            trial = lifted.xreplace({d: cand})
            rest = {k: v for k, v in values.items() if k != d}
            tuned = _tune(trial, rest, env, y, retune)
            if formula_rmse(_lower(trial, tuned), env, y) <= limit:
                lifted, values = trial, tuned
                break
    return _lower(lifted, values)
