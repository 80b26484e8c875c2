"""Brute-force search for one-variable formulas: every short expression, linear constants by
least squares, batched over the candidates.

In: samples ``t`` (N,) of one input and ``y`` (N,) of a module's output (float64), the
library functions allowed. Out: candidate SymPy expressions in a placeholder symbol with
their relative RMSE and complexity, simplest-within-tolerance first. Stage: discover.

The candidates are ``a*g(t) + b`` for ``g`` an outer function of an inner one (``exp(-t**2)``,
``sin(pi*t)``, ``log(t)``, ``sqrt(1/t)``, ...), ``a*g1 + b*g2 + c`` for pairs of the best
singles, and polynomials up to degree 6. One matrix product scores them all.

>>> import torch
>>> t = torch.linspace(0.5, 2, 200, dtype=torch.float64)
>>> best = search(t, 3 * torch.exp(-t**2) + 1)[0]
>>> str(best.expr), best.error < 1e-12
('1.0 + 3.0*exp(-t**2)', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
import torch

from .. import library
from .expr import F64, complexity, evaluate, fit_constants

__all__ = ["Candidate", "search", "basis", "select"]

T = sympy.Symbol("t")

#: outer functions (library names or powers)
OUTER = ("x", "x^2", "x^3", "1/x", "1/x^2", "sqrt", "x^-0.5", "exp", "log", "sin", "cos", "tan",
         "asin", "acos", "atan", "sinh", "cosh", "tanh")  # fmt: skip
#: outer functions whose powers are candidates too (``sin(t/2)**-4``), and those powers
_WRAPPED = ("sin", "cos", "tan", "exp", "log", "sinh", "cosh", "tanh", "atan")
_POWERS = (2, 3, 4, -1, -2, -4)
#: inner maps: (SymPy of t, complexity)
_INNER_SCALES = (-1, 2, sympy.Rational(1, 2), sympy.pi, 2 * sympy.pi)


@dataclass(frozen=True)
class Candidate:
    """A fitted formula in ``t`` with its relative RMSE and node count."""

    expr: sympy.Expr
    error: float
    complexity: int


def _fn(name: str) -> tuple[Callable, Callable]:
    f = library.get(name)
    return f.sympy_fn, f.torch_fn


def _inner(allowed: set[str] | None) -> list[sympy.Expr]:
    out: list[sympy.Expr] = [T, T**2, T**3, 1 / T, 1 / T**2, sympy.sqrt(T), -(T**2)]
    out += [k * T for k in _INNER_SCALES]
    for name in ("exp", "log", "sin", "cos"):
        if allowed is None or name in allowed:
            out.append(library.get(name).sympy_fn(T))
    out.append(sympy.exp(-T))
    return out


def basis(t: torch.Tensor, functions: Sequence[str] | None = None) -> tuple[list[sympy.Expr], torch.Tensor]:
    """Distinct finite, non-constant basis functions ``g(t)`` and their values ``(B, N)``."""
    allowed = set(functions) if functions is not None else None
    outers = [o for o in OUTER if allowed is None or "^" in o or "/" in o or o == "x" or o in allowed]
    exprs: list[sympy.Expr] = []
    vals: list[torch.Tensor] = []
    seen: set[sympy.Expr] = set()
    for inner in _inner(allowed):
        if allowed is not None and any(
            f.func.__name__ not in allowed and f.func.__name__ in ("exp", "log", "sin", "cos")
            for f in inner.atoms(sympy.Function)
        ):
            continue
        iv = _value(inner, t)
        for o in outers:
            sym_fn, torch_fn = _fn(o)
            e = sym_fn(inner)
            if e in seen or complexity(e) > 9:
                continue
            seen.add(e)
            with torch.no_grad():
                v = torch_fn(iv)
            if not bool(torch.isfinite(v).all()) or float(v.std()) <= 1e-12 * (float(v.abs().max()) + 1e-300):
                continue
            if float(v.abs().max()) > 1e150:
                continue
            exprs.append(e)
            vals.append(v)
            if o in _WRAPPED:
                for q in _POWERS:
                    w = e**q
                    vw = v**q if q > 0 else 1.0 / v ** (-q)
                    if w in seen or not bool(torch.isfinite(vw).all()) or float(vw.abs().max()) > 1e150:
                        continue
                    seen.add(w)
                    exprs.append(w)
                    vals.append(vw)
    return exprs, torch.stack(vals) if vals else torch.zeros(0, t.numel(), dtype=F64)


def _value(e: sympy.Expr, t: torch.Tensor) -> torch.Tensor:
    return evaluate(e, {"t": t})


def _linear(G: torch.Tensor, y: torch.Tensor, intercept: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched fits y ~ a*g (+ b): slopes, intercepts and RMSE per row of G."""
    if intercept:
        gm, ym = G.mean(1, keepdim=True), y.mean()
        gc, yc = G - gm, y - ym
        a = (gc @ yc) / (gc * gc).sum(1).clamp_min(1e-300)
        b = ym - a * gm[:, 0]
        r = yc - a[:, None] * gc
    else:
        a = (G @ y) / (G * G).sum(1).clamp_min(1e-300)
        b = torch.zeros_like(a)
        r = y - a[:, None] * G
    return a, b, (r * r).mean(1).sqrt()


def _pairs(G: torch.Tensor, y: torch.Tensor, idx: list[int]) -> tuple[list[tuple[int, int]], torch.Tensor, torch.Tensor]:
    pairs = [(i, j) for a, i in enumerate(idx) for j in idx[a + 1 :]]
    if not pairs:
        return [], torch.zeros(0, 3, dtype=F64), torch.zeros(0, dtype=F64)
    ii = torch.tensor([p[0] for p in pairs])
    jj = torch.tensor([p[1] for p in pairs])
    ones = torch.ones(len(pairs), y.numel(), dtype=F64)
    A = torch.stack([G[ii], G[jj], ones], dim=2)  # (P, N, 3)
    AtA = A.transpose(1, 2) @ A
    Aty = A.transpose(1, 2) @ y
    reg = 1e-12 * AtA.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * torch.eye(3, dtype=F64)
    coef = torch.linalg.solve(AtA + reg, Aty.unsqueeze(2))[..., 0]
    r = y - (A @ coef.unsqueeze(2))[..., 0]
    return pairs, coef, (r * r).mean(1).sqrt()


def _num(v: float) -> sympy.Float:
    return sympy.Float(float(v))


def search(
    t: torch.Tensor,
    y: torch.Tensor,
    *,
    functions: Sequence[str] | None = None,
    top: int = 6,
    pair_pool: int = 30,
    max_degree: int = 6,
    refine: int = 4,
    floor: float = 0.0,
) -> list[Candidate]:
    """Candidates for ``y = f(t)``, ordered by :func:`select` (best first); at most ``top``.

    All candidates are scored numerically first; SymPy expressions are built only for the
    best ``4 * top`` of them, and the best ``refine`` get their inner constants fitted too
    (``g(p*t + q)``, ``t**p``) when no candidate is exact.
    """
    t, y = t.to(F64), y.to(F64)
    sd = float(y.std()) if y.numel() > 1 else 0.0
    if sd <= 1e-300:
        return [Candidate(_num(float(y.mean())), 0.0, 1)]
    exprs, G = basis(t, functions)
    sizes = [complexity(e) for e in exprs]
    rows: list[tuple[float, int, Callable[[], sympy.Expr]]] = []
    singles: list[tuple[float, int, Callable[[], sympy.Expr]]] = []
    if len(exprs):
        for intercept in (True, False):
            a, b, err = _linear(G, y, intercept)
            for k in range(len(exprs)):
                rows.append((float(err[k]) / sd, sizes[k] + (4 if intercept else 2),
                             _single(exprs[k], float(a[k]), float(b[k]), intercept)))
        singles = sorted(rows, key=lambda r: (r[0], r[1]))[:refine]
        _, _, err = _linear(G, y, True)
        order = torch.argsort(err).tolist()[:pair_pool]
        pairs, coef, perr = _pairs(G, y, order)
        for (i, j), c, e_ in zip(pairs, coef, perr):
            rows.append((float(e_) / sd, sizes[i] + sizes[j] + 6, _double(exprs[i], exprs[j], c.tolist())))
        prods = torch.stack([G[i] * G[j] for i, j in pairs]) if pairs else G[:0]
        a, b, perr = _linear(prods, y, True)
        for (i, j), a_, b_, e_ in zip(pairs, a.tolist(), b.tolist(), perr.tolist()):
            rows.append((e_ / sd, sizes[i] + sizes[j] + 5, _single(exprs[i] * exprs[j], a_, b_, True)))
    cands = _polynomials(t, y, sd, max_degree)
    rows = [r for r in rows if math.isfinite(r[0])]
    rows.sort(key=lambda r: (r[0], r[1]))
    best = rows[0][0] if rows else float("inf")
    tol = 2 * min(best, min((c.error for c in cands), default=best)) + 1e-9
    simple = sorted((r for r in rows if r[0] <= tol), key=lambda r: (r[1], r[0]))[: 2 * top]
    for err_, _, build in simple + rows[: 2 * top]:
        e = build()
        cands.append(Candidate(e, err_, complexity(e)))
    out = select([c for c in cands if math.isfinite(c.error)], floor=floor + 1e-9)
    if refine and out and out[0].error > 1e-10:
        base = [Candidate(b(), e, n) for e, n, b in singles]
        out = select(out + _refined(base, t, y), floor=floor + 1e-9)
    return out[:top]


def _single(g: sympy.Expr, a: float, b: float, intercept: bool) -> Callable[[], sympy.Expr]:
    return lambda: _num(a) * g + (_num(b) if intercept else 0)


def _double(g1: sympy.Expr, g2: sympy.Expr, c: list[float]) -> Callable[[], sympy.Expr]:
    return lambda: _num(c[0]) * g1 + _num(c[1]) * g2 + _num(c[2])


def _refined(cands: list[Candidate], t: torch.Tensor, y: torch.Tensor) -> list[Candidate]:
    """Inner constants fitted too: ``t -> p*t`` and ``t -> p*t + q``; plus ``a*t**p + b``."""
    starts = [sympy.Float(1.0) * T ** sympy.Float(p) + sympy.Float(0.01) for p in (0.5, 2.0, -1.0)]
    for c in cands:
        starts.append(c.expr.xreplace({T: sympy.Float(1.0) * T}))
        starts.append(c.expr.xreplace({T: sympy.Float(1.0) * T + sympy.Float(0.01)}))
    out = []
    for s in starts:
        e, err = fit_constants(s, {"t": t}, y, steps=40)
        if math.isfinite(err):
            out.append(Candidate(e, err, complexity(e)))
    return out


def _polynomials(t: torch.Tensor, y: torch.Tensor, sd: float, max_degree: int) -> list[Candidate]:
    out = []
    scale = float(t.abs().max()) or 1.0
    for deg in range(1, max_degree + 1):
        V = torch.stack([(t / scale) ** k for k in range(deg + 1)], 1)
        coef = torch.linalg.lstsq(V, y.unsqueeze(1)).solution[:, 0]
        r = y - V @ coef
        e = sum(_num(float(c) / scale**k) * T**k for k, c in enumerate(coef))
        out.append(Candidate(e, float((r * r).mean().sqrt()) / sd, complexity(e)))
    return out


def select(cands: list[Candidate], rho: float = 1.0, floor: float = 1e-9) -> list[Candidate]:
    """Order candidates: those within ``(1 + rho) * best + floor`` of the best error first,
    simplest first among them; then the rest by error. Ties break on the printed text."""
    if not cands:
        return []
    best = min(c.error for c in cands)
    tol = (1 + rho) * best + floor
    good = sorted((c for c in cands if c.error <= tol), key=lambda c: (c.complexity, c.error, str(c.expr)))
    rest = sorted((c for c in cands if c.error > tol), key=lambda c: (c.error, c.complexity, str(c.expr)))
    seen: set[str] = set()
    out = []
    for c in good + rest:
        k = str(c.expr)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out
