"""Sparse regression over a dictionary of terms: polynomials, rational functions and short
products of library functions of a few inputs, found by exhaustive and beam searches over term subsets.

In: inputs ``F (N, k)`` with their SymPy names, a target ``y (N,)``. Out: candidate formulas
(one per number of terms, for ``y = sum c_j phi_j`` and ``y = P / (1 + Q)``) with their
relative RMSE. Stage: discover (the direct route tried on every module before splitting it).

>>> import sympy, torch
>>> x, y = sympy.symbols("x y")
>>> F = torch.rand(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.5
>>> best = search(F, [x, y], F[:, 0] ** 2 * F[:, 1] + 3 * torch.sin(F[:, 1]))[0]
>>> sorted(map(str, best.expr.as_ordered_terms())), best.error < 1e-12
(['1.0*x**2*y', '3.0*sin(y)'], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import sympy
import torch

from .expr import F64, complexity
from .univariate import Candidate, select

__all__ = ["dictionary", "search"]


def _unaries(u: sympy.Expr, v: torch.Tensor, functions: set[str] | None) -> list[tuple[sympy.Expr, torch.Tensor]]:
    pos = bool((v > 0).all())
    nonzero = bool((v != 0).all())
    out = [(u, v), (u**2, v**2), (u**3, v**3)]
    if nonzero:
        out += [(1 / u, 1 / v), (1 / u**2, 1 / v**2)]
    if pos:
        out += [(sympy.sqrt(u), v.sqrt())]
    ok = lambda n: functions is None or n in functions  # noqa: E731
    if pos and ok("log"):
        out.append((sympy.log(u), v.log()))
    if ok("exp") and float(v.abs().max()) < 30:
        out.append((sympy.exp(u), v.exp()))
    if ok("sin"):
        out.append((sympy.sin(u), v.sin()))
        out.append((sympy.sin(u) ** 2, v.sin() ** 2))
    if ok("cos"):
        out.append((sympy.cos(u), v.cos()))
    return out


def dictionary(F: torch.Tensor, names: Sequence[sympy.Expr], *, functions: Sequence[str] | None = None,
               max_terms: int = 400) -> tuple[list[sympy.Expr], torch.Tensor]:  # fmt: skip
    """Terms ``phi_j`` and their values ``(N, D)``: 1, unary terms, products of two and of three.

    Products of two pair a power or function of one input with a power of another; products
    of three multiply first powers (and inverses) of three inputs. At most ``max_terms``.
    """
    fs = set(functions) if functions is not None else None
    k = F.shape[1]
    un = [_unaries(names[i], F[:, i], fs) for i in range(k)]
    terms: list[tuple[sympy.Expr, torch.Tensor]] = [(sympy.Integer(1), torch.ones_like(F[:, 0]))]
    for lst in un:
        terms += lst
    powers = [[(e, v) for e, v in lst if e.is_Pow or e.is_Symbol] for lst in un]
    for i, j in combinations(range(k), 2):
        for e1, v1 in un[i]:
            for e2, v2 in powers[j]:
                terms.append((e1 * e2, v1 * v2))
        for e2, v2 in un[j]:
            if not (e2.is_Pow or e2.is_Symbol):
                for e1, v1 in (powers[i] if k > 2 else un[i]):
                    terms.append((e1 * e2, v1 * v2))
    first = [[(e, v) for e, v in powers[i] if e == names[i] or e == 1 / names[i]] for i in range(k)]
    for i, j, m in combinations(range(k), 3):
        for e1, v1 in first[i]:
            for e2, v2 in first[j]:
                for e3, v3 in first[m]:
                    terms.append((e1 * e2 * e3, v1 * v2 * v3))
    if k <= 4:  # x*y*g(z): two first powers and a library function of a third input
        for i, j in combinations(range(k), 2):
            for m in range(k):
                if m in (i, j):
                    continue
                for e3, v3 in un[m]:
                    if e3.is_Pow or e3.is_Symbol:
                        continue
                    for e1, v1 in first[i]:
                        for e2, v2 in first[j]:
                            terms.append((e1 * e2 * e3, v1 * v2 * v3))
    seen: set[sympy.Expr] = set()
    exprs, vals = [], []
    for e, v in terms:
        if e in seen or not bool(torch.isfinite(v).all()) or float(v.abs().max()) > 1e100:
            continue
        seen.add(e)
        exprs.append(e)
        vals.append(v)
        if len(exprs) >= max_terms:
            break
    return exprs, torch.stack(vals, 1)


def _batched_rss(G: torch.Tensor, b: torch.Tensor, yy: float, S: torch.Tensor) -> torch.Tensor:
    """Residual sum of squares of the least-squares fit on each column subset (row of S)."""
    out = []
    for chunk in torch.split(S, 100_000):
        Gs = G[chunk.unsqueeze(2), chunk.unsqueeze(1)]
        bs = b[chunk]
        s = chunk.shape[1]
        Gs = Gs + 1e-13 * torch.eye(s, dtype=G.dtype)
        sol = torch.linalg.solve(Gs, bs.unsqueeze(2))[..., 0]
        rss = yy - (bs * sol).sum(1)
        bad = ~torch.isfinite(rss)
        rss[bad] = float("inf")
        out.append(rss)
    return torch.cat(out)


def _best_subsets(A: torch.Tensor, y: torch.Tensor, k_max: int, pool: int = 120, beam: int = 24) -> list[tuple[list[int], torch.Tensor, float]]:
    """Exhaustive best subsets of 1 and 2 terms; of 3 among the ``pool`` most useful terms and
    by extending the ``beam`` best pairs with every term; then a beam search onward (the
    ``beam`` best supports of each size extended by every term). (support, coef, rmse) each."""
    norms = A.norm(dim=0).clamp_min(1e-300)
    An = A / norms
    G, b = An.T @ An, An.T @ y
    yy = float(y @ y)
    D = A.shape[1]
    found: list[list[int]] = []
    idx = torch.arange(D)
    single = _batched_rss(G, b, yy, idx.unsqueeze(1))
    found.append([int(torch.argmin(single))])
    if D >= 2 and k_max >= 2:
        pairs = torch.combinations(idx, 2)
        rss2 = _batched_rss(G, b, yy, pairs)
        order = torch.argsort(rss2)
        found.append(pairs[order[0]].tolist())
        cols = list(dict.fromkeys(pairs[order[:400]].flatten().tolist()))[:pool]
        level = pairs[order[:beam]]
        for size in range(3, min(k_max, D) + 1):
            ext = torch.cat([level.repeat_interleave(D, 0), idx.repeat(level.shape[0]).unsqueeze(1)], 1)
            ext = ext[(ext[:, :-1] != ext[:, -1:]).all(1)]
            ext = torch.unique(ext.sort(1).values, dim=0)
            if size == 3 and len(cols) >= 3:
                ext = torch.unique(torch.cat([ext, torch.combinations(torch.tensor(cols), 3)]), dim=0)
            if ext.shape[0] == 0:
                break
            rss = _batched_rss(G, b, yy, ext)
            order = torch.argsort(rss, stable=True)
            found.append(ext[order[0]].tolist())
            level = ext[order[:beam]]
    out = []
    for sup in found:
        coef = torch.linalg.lstsq(An[:, sup], y.unsqueeze(1)).solution[:, 0]
        r = y - An[:, sup] @ coef
        out.append((sup, coef / norms[sup], float((r * r).mean().sqrt())))
    return out


def search(
    F: torch.Tensor,
    names: Sequence[sympy.Expr],
    y: torch.Tensor,
    *,
    functions: Sequence[str] | None = None,
    max_terms: int = 6,
    rational: bool = True,
) -> list[Candidate]:
    """Sparse candidates for ``y`` over the inputs' dictionary, best first (:func:`select`)."""
    F, y = F.to(F64), y.to(F64)
    sd = float(y.std())
    if sd <= 1e-300:
        return [Candidate(sympy.Float(float(y.mean())), 0.0, 1)]
    exprs, A = dictionary(F, names, functions=functions, max_terms=800 if F.shape[1] <= 3 else 400)
    cands: list[Candidate] = []
    for support, coef, err in _best_subsets(A, y, max_terms):
        e = sum(sympy.Float(float(c)) * exprs[j] for j, c in zip(support, coef))
        cands.append(Candidate(e, err / sd, complexity(e)))
        if err / sd < 1e-11:
            break
    if rational and min(c.error for c in cands) > 1e-11:
        cands += _rational(exprs, A, y, sd, max_terms)
    return select([c for c in cands if math.isfinite(c.error)])


def _rational(exprs: list[sympy.Expr], A: torch.Tensor, y: torch.Tensor, sd: float, max_terms: int) -> list[Candidate]:
    """``y = P / (1 + Q)``: linear in the coefficients as ``P - y*Q = y``."""
    D = A.shape[1]
    B = torch.cat([A, -y.unsqueeze(1) * A[:, 1:]], 1)
    out = []
    for support, coef, _ in _best_subsets(B, y, max_terms + 2):
        P = sum(sympy.Float(float(c)) * exprs[j] for j, c in zip(support, coef) if j < D)
        Q = 1 + sum(sympy.Float(float(c)) * exprs[j - D + 1] for j, c in zip(support, coef) if j >= D)
        if Q == 1 or P == 0:
            continue
        num = A[:, [j for j in support if j < D]] @ coef[[i for i, j in enumerate(support) if j < D]]
        qi = [i for i, j in enumerate(support) if j >= D]
        den = 1 + A[:, [support[i] - D + 1 for i in qi]] @ coef[qi]
        pred = num / den
        if not bool(torch.isfinite(pred).all()):
            continue
        e = P / Q
        out.append(Candidate(e, float(((pred - y) ** 2).mean().sqrt()) / sd, complexity(e)))
    return out
