"""The one-call discovery pipeline: prune -> fit edges -> fine-tune constants -> formula.

In: a trained ``MultKAN`` and its data ``x, y``. Out: :class:`PipelineResult` with one SymPy
expression per output, the symbolic model, the fitting report and the final RMSE.
Stage: convert (the last one: it drives autosym, extract and fitconst).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy
import torch

from ..errors import KanpilerError, ShapeError
from ..numerics import minimize_lbfgs
from ..runtime import MultKAN
from .autosym import SymbolicReport, auto_symbolic
from .canonical import canonical_affine
from .constants import snap_constants
from .extract import bounded_simplify, formula
from .fitconst import drop_abs, fit_constants, snap_on_data

__all__ = [
    "symbolic_pipeline",
    "PipelineResult",
    "tune_affine",
    "canonicalize_model",
]


@dataclass
class PipelineResult:
    """What :func:`symbolic_pipeline` found. ``expression`` is one SymPy expression per
    output."""

    expression: list[sympy.Expr]
    model: MultKAN
    report: SymbolicReport
    rmse: float

    def __str__(self) -> str:
        body = "\n".join(f"  y{k + 1} = {f}" for k, f in enumerate(self.expression))
        return f"{body}\n  (rmse {self.rmse:.3g} after tuning)"


def _rmse(model: MultKAN, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).mean().sqrt())


def tune_affine(model: MultKAN, x: torch.Tensor, y: torch.Tensor, steps: int = 50) -> float:
    """Fit the ``a, b, c, d`` of every symbolic edge to ``(x, y)`` by LBFGS; returns the RMSE.

    Only the symbolic affine parameters move (splines, grids and node affines stay frozen);
    they are put back if the fit does not lower the error.
    """
    params = [sym.affine for sym in model.symbolic if sym.active]
    if not params or steps <= 0:
        return _rmse(model, x, y)
    saved = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in params))
    try:
        _, end = minimize_lbfgs(params, lambda: ((model(x) - y) ** 2).mean(), steps)
    finally:
        for p in model.parameters():
            p.requires_grad_(saved[id(p)])
    return _rmse(model, x, y)


def canonicalize_model(model: MultKAN) -> None:
    """Rewrite every symbolic edge's ``a, b, c, d`` in canonical form (same function)."""
    for sym in model.symbolic:
        on = torch.nonzero(sym.mask != 0).tolist()
        if not on:
            continue
        edges = []
        for i, j in on:
            a, b, c, d = sym.affine[i, j].tolist()
            if c == 0.0:  # a flat edge: the constant d
                edges.append((i, j, "x", 0.0, 0.0, 0.0, d))
            else:
                edges.append(
                    (i, j, sym.function(i, j), *canonical_affine(sym.function(i, j), a, b, c, d))
                )
        sym.set_edges(edges)


def symbolic_pipeline(
    model: MultKAN,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    prune: bool = True,
    prune_kwargs: dict[str, Any] | None = None,
    library: Sequence[Any] | None = None,
    r2_threshold: float = 0.9,
    weight_simple: float = 1.0,
    tune_steps: int = 50,
    simplify: bool = True,
    timeout: float = 5.0,
    rtol: float = 1e-2,
    progress: bool = False,
) -> PipelineResult:
    """Prune a copy of ``model``, fit every edge, fine-tune the constants, return the formula.

    ``model`` itself is never changed; ``result.model`` is the fitted copy. Steps: prune ->
    :func:`auto_symbolic` -> LBFGS on the symbolic ``a, b, c, d`` -> formula -> constants
    refitted to ``(x, y)`` -> each constant snapped to 0 or a closed form within ``rtol`` if
    the data agree (:func:`~kanpiler.convert.fitconst.snap_on_data`) -> simplified.

    >>> result = symbolic_pipeline(model, x, y)  # doctest: +SKIP
    >>> result.expression  # doctest: +SKIP
    [exp(y**2 + sin(pi*x))]

    Raises a ``KanpilerError`` if an edge could not be fitted above ``r2_threshold`` (the
    report in the message names it).
    """
    x = torch.as_tensor(x, dtype=model.dtype, device=model.device)
    y = torch.as_tensor(y, dtype=model.dtype, device=model.device)
    if x.dim() != 2 or y.shape[0] != x.shape[0] or y.numel() != x.shape[0] * model.n_outputs:
        raise ShapeError(
            f"symbolic_pipeline: x must be (N, {model.n_inputs}) and y (N, {model.n_outputs}); "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    y = y.reshape(x.shape[0], -1)
    model = model.prune(x, **(prune_kwargs or {})) if prune else copy.deepcopy(model)
    report = auto_symbolic(model, library, x=x, r2_threshold=r2_threshold,
                           weight_simple=weight_simple, progress=progress)  # fmt: skip
    left = [e for e in report.edges if e.status == "spline"]
    if left:
        raise KanpilerError(
            f"symbolic_pipeline: {len(left)} edge(s) fit no library function above r2 "
            f"{r2_threshold}:\n{report}\nlower r2_threshold, add functions, or train longer"
        )
    rmse = tune_affine(model, x, y, tune_steps)
    canonicalize_model(model)
    raw = formula(model, simplify=False, rtol=1e-9)
    env = {name: x[:, k].to(torch.float64) for k, name in enumerate(model.variables)}
    found = []
    for k, expr in enumerate(raw):
        target = y[:, k].to(torch.float64)
        expr = fit_constants(expr, env, target, tune_steps)
        for _ in range(2):  # expanding and simplifying merge constants that may then snap
            expr = sympy.expand_mul(expr)
            expr = drop_abs(snap_on_data(expr, env, target, rtol=rtol), env)
            if simplify:
                expr = snap_constants(bounded_simplify(expr, timeout))
        found.append(expr)
    return PipelineResult(expression=found, model=model, report=report, rmse=rmse)
