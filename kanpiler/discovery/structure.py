"""Structure first: split a problem into modules from a surrogate's derivatives, recursively.

In: a :class:`Problem` (real data of some input features, each a SymPy expression of the
original variables, and the target). Out: candidate formulas in the original variables.
Stage: discover (the heart of the search).

At every node, in this order, each step bounded by counts:

1. direct fits: one input -> :mod:`.univariate`; a few inputs -> :mod:`.sparse`;
   an (almost) exact fit ends the node;
2. a surrogate (:mod:`.surrogate`) gives gradients and Hessians at sample points;
3. inputs the target does not depend on are dropped;
4. symmetric pairs ``f(..., x_i*x_j**p, ...)`` and ``f(..., x_i + c*x_j, ...)`` (the ratios
   of ``x*df/dx`` or ``df/dx`` are constant): each pair becomes one new feature, merged
   greedily with the same surrogate;
5. additive, then multiplicative separability (finite mixed differences of ``f`` /
   ``log|f|`` vanish between groups): each group is solved on a slice of the surrogate (the
   other inputs at their medians), the last one on the real data's remainder;
6. output transforms ``T(f)`` (square, inverse, log, ...) that make step 5 apply.

A step whose best formula is not within the surrogate's accuracy hands over to the next.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations, product
from typing import Any

import sympy
import torch
from torch.func import hessian, jacrev, vmap

from . import sparse, univariate
from .expr import complexity, evaluate, fit_constants
from .surrogate import train_surrogate
from .univariate import Candidate, select

__all__ = ["Problem", "Search"]

#: a mixed-derivative score below this means separable (surrogate derivatives are ~5% off)
SEPARABLE = 0.004
#: a ratio of derivatives whose relative spread is below this counts as constant
SYMMETRIC = 0.03


@dataclass
class Problem:
    """Inputs ``F (N, k)`` named by ``features`` (SymPy in the original variables), target ``y``."""

    F: torch.Tensor
    features: list[sympy.Expr]
    y: torch.Tensor
    noise: float = 0.0  # relative error the target itself carries (a surrogate's slice)


@dataclass
class Budget:
    """Counts that bound the search (no clock)."""

    surrogates: int = 8
    depth: int = 6
    log: list[str] = field(default_factory=list)
    progress: bool = False


def _placeholders(k: int) -> list[sympy.Symbol]:
    return [sympy.Symbol(f"_u{i}") for i in range(k)]


def _substitute(e: sympy.Expr, feats: Sequence[sympy.Expr]) -> sympy.Expr:
    return e.xreplace({s: f for s, f in zip(_placeholders(len(feats)), feats)})


def _snap_ratio(r: float) -> sympy.Expr:
    fr = Fraction(r).limit_denominator(4)
    if abs(float(fr) - r) <= 0.03 * max(abs(r), 1e-12) and fr != 0 and abs(fr.numerator) <= 6:
        return sympy.Rational(fr.numerator, fr.denominator)
    return sympy.Float(r)


class Search:
    """The recursive solver; ``cols`` holds the original variables' data for evaluation."""

    def __init__(self, cols: dict[str, torch.Tensor], *, seed: int = 0, functions: Sequence[str] | None = None,
                 budget: Budget | None = None, surrogate_steps: tuple[int, int] = (300, 1500),
                 check: Callable[[], None] | None = None):  # fmt: skip
        self.cols, self.seed, self.functions = cols, seed, functions
        self.budget = budget or Budget()
        self.steps = surrogate_steps
        self.check = check or (lambda: None)
        self.trained = 0
        self.best: list[Candidate] = []  # the root problem's candidates so far (for a stop)

    # ---- helpers --------------------------------------------------------------------------
    def log(self, text: str) -> None:
        self.budget.log.append(text)
        if self.budget.progress:
            print(f"discover: {text}", file=sys.stderr, flush=True)

    def direct(self, p: Problem) -> list[Candidate]:
        k = p.F.shape[1]
        names = _placeholders(k)
        if k == 1:
            found = univariate.search(p.F[:, 0], p.y, functions=self.functions, floor=p.noise)
            t = univariate.T
            if p.noise == 0 and found and found[0].error > 1e-9:  # y**2, 1/y, 1/y**2 exactly
                for name, fwd, inv, ok in _TRANSFORMS:
                    if name not in ("square", "inverse", "inverse square") or not ok(p.y):
                        continue
                    ty = fwd(p.y)
                    if not bool(torch.isfinite(ty).all()) or float(ty.std()) <= 0:
                        continue
                    alt = univariate.search(p.F[:, 0], ty, functions=self.functions)
                    if alt and alt[0].error < 1e-9:
                        e = _substitute(inv(alt[0].expr).xreplace({t: names[0]}), p.features)
                        self.log(f"direct fit of {name}(y) on {p.features[0]}")
                        return [self.refit_on(p, e)]
            return [Candidate(_substitute(c.expr.xreplace({t: names[0]}), p.features), c.error,
                              c.complexity) for c in found]  # fmt: skip
        found = sparse.search(p.F, names, p.y, functions=self.functions, max_terms=6 if k <= 3 else 4)
        found = select(found, floor=p.noise)
        out = [Candidate(_substitute(c.expr, p.features), c.error, c.complexity) for c in found[:4]]
        if k <= 3 and p.noise == 0 and out and out[0].error > 1e-9:
            out += self.direct_transformed(p, names)
        return select(out)

    def direct_transformed(self, p: Problem, names: list[sympy.Symbol]) -> list[Candidate]:
        """Sparse fits of ``T(y)`` (square, inverse, cos, log); kept when exact."""
        out = []
        for name, fwd, inv, ok in _TRANSFORMS:
            if name not in ("square", "inverse", "inverse square", "cos", "log") or not ok(p.y):
                continue
            ty = fwd(p.y)
            if not bool(torch.isfinite(ty).all()) or float(ty.std()) <= 0:
                continue
            found = sparse.search(p.F, names, ty, functions=self.functions, max_terms=5)
            if found and found[0].error < 1e-9:
                e = _substitute(inv(found[0].expr), p.features)
                out.append(self.refit_on(p, e))
                self.log(f"direct fit of {name}(y) on {[str(f) for f in p.features]}")
                if out[-1].error < 1e-9:
                    break
        return out

    # ---- the recursion --------------------------------------------------------------------
    def solve(self, p: Problem, depth: int = 0) -> list[Candidate]:
        self.check()
        k = p.F.shape[1]
        sd = float(p.y.std())
        if k == 0 or sd <= 1e-14 * (float(p.y.abs().mean()) + 1e-300):
            return [Candidate(sympy.Float(float(p.y.mean())), 0.0, 1)]
        cands = self.direct(p)
        if depth == 0:
            self.best = list(cands)
        if (cands and cands[0].error < 1e-9) or k == 1 or depth >= self.budget.depth:
            return cands
        if self.trained >= self.budget.surrogates:
            return cands
        self.trained += 1
        S, serr = train_surrogate(p.F, p.y, seed=self.seed + depth, seeds=1,
                                  adam=self.steps[0], lbfgs=self.steps[1])  # fmt: skip
        self.log(f"depth {depth}: surrogate on {k} inputs, validation error {serr:.1e}")
        d = _derivs(S, p.F, self.seed)
        d["serr"] = serr
        d["pairs"] = _PairTest(S, p.F, self.seed)
        d["thr"] = max(SEPARABLE, 2.5 * serr)
        good = max(1e-9, 3 * serr, 2 * p.noise)
        for step in (self.drop_irrelevant, self.power_factors, self.symmetry, self.separate,
                     self.transform):  # fmt: skip
            self.check()
            out = step(p, S, d, depth)
            if out:
                cands = select(out + cands)
                if depth == 0:
                    self.best = list(cands)
                if cands[0].error <= good:
                    return cands
                self.log(f"depth {depth}: {step.__name__} gave error {cands[0].error:.1e}; trying on")
        return cands

    def drop_irrelevant(self, p: Problem, S: Any, d: dict, depth: int) -> list[Candidate] | None:
        g = d["grad"]
        scale = float(p.y.std())
        influence = (g.abs().mean(0) * p.F.std(0)) / scale
        keep = [i for i in range(p.F.shape[1]) if float(influence[i]) > 1e-3]
        if len(keep) == p.F.shape[1] or not keep:
            return None
        self.log(f"depth {depth}: dropped {[str(p.features[i]) for i in range(p.F.shape[1]) if i not in keep]}")
        sub = Problem(p.F[:, keep], [p.features[i] for i in keep], p.y)
        return self.solve(sub, depth + 1)

    # power-law factors -------------------------------------------------------------------
    def power_factors(self, p: Problem, S: Any, d: dict, depth: int) -> list[Candidate] | None:
        """Inputs that enter as a power factor, ``f = x_i**a * g(others)``: their elasticity
        ``x_i f_i / f`` is constant. The factors are divided out of the real data (no slice, so
        nothing is lost) and the rest is solved on the remaining inputs."""
        y = p.y
        k = p.F.shape[1]
        if k < 2 or not bool((y != 0).all()):
            return None
        X, g, v = d["X"], d["grad"], d["value"]
        tol = max(SYMMETRIC, 2 * d["serr"])
        powers: dict[int, sympy.Rational] = {}
        for i in range(k):
            if not bool((p.F[:, i] > 0).all()):
                continue
            el = X[:, i] * g[:, i] / v
            m = float(el.median())
            if not math.isfinite(m) or abs(m) < 0.05:
                continue
            if float((el - m).abs().median()) / abs(m) > tol:
                continue
            fr = Fraction(m).limit_denominator(3)
            if abs(float(fr) - m) > 0.05 * max(1.0, abs(m)) or abs(fr.numerator) > 12:
                continue
            powers[i] = sympy.Rational(fr.numerator, fr.denominator)
        if not powers or len(powers) == k and len(powers) == 1:
            return None
        factor = sympy.Integer(1)
        div = torch.ones_like(y)
        for i, a in powers.items():
            factor = factor * p.features[i] ** a
            div = div * p.F[:, i] ** float(a)
        rest = y / div
        if not bool(torch.isfinite(rest).all()):
            return None
        keep = [i for i in range(k) if i not in powers]
        self.log(f"depth {depth}: power factor {factor}")
        sub = Problem(p.F[:, keep], [p.features[i] for i in keep], rest, p.noise)
        return [self.refit_on(p, factor * c.expr) for c in self.solve(sub, depth + 1)[:3]]

    # separability --------------------------------------------------------------------------
    def separate(self, p: Problem, S: Any, d: dict, depth: int) -> list[Candidate] | None:
        k = p.F.shape[1]
        thr = d["thr"]
        add = _groups(k, lambda i, j: d["pairs"](i, j, None) >= thr)
        if len(add) > 1:
            return self.split(p, S, add, "add", depth, d["serr"])
        if bool((p.y > 0).all()) or bool((p.y < 0).all()):
            mul = _groups(k, lambda i, j: d["pairs"](i, j, _logabs) >= thr)
        elif bool((p.y != 0).all()):  # a sign change: f(a,b) f(a',b') = f(a',b) f(a,b')
            mul = _groups(k, lambda i, j: d["pairs"](i, j, _PRODUCT) >= thr)
        else:
            return None
        if len(mul) > 1:
            return self.split(p, S, mul, "mul", depth, d["serr"])
        return None

    def split(self, p: Problem, S: Any, groups: list[list[int]], kind: str, depth: int,
              serr: float) -> list[Candidate]:  # fmt: skip
        self.log(f"depth {depth}: {kind} split {[[str(p.features[i]) for i in gr] for gr in groups]}")
        med = p.F.median(0).values
        parts: list[list[Candidate]] = []
        for gr in groups[:-1]:
            Fs = med.repeat(p.F.shape[0], 1)
            Fs[:, gr] = p.F[:, gr]
            with torch.no_grad():
                ys = S(Fs)
            noise = 3 * serr * float(p.y.std()) / max(float(ys.std()), 1e-300)
            sub = Problem(p.F[:, gr], [p.features[i] for i in gr], ys, noise)
            parts.append(self.solve(sub, depth + 1)[:2])
        # the last group from the real data, given the best of the others
        last = groups[-1]
        first = [c[0].expr for c in parts if c]
        if len(first) != len(parts):
            return []
        vals = [evaluate(e, self.cols) for e in first]
        if kind == "add":
            rest = p.y - sum(vals[1:], vals[0])
        else:
            prod = vals[0]
            for v in vals[1:]:
                prod = prod * v
            rest = p.y / prod
        if not bool(torch.isfinite(rest).all()):
            return []
        sub = Problem(p.F[:, last], [p.features[i] for i in last], rest)
        parts.append(self.solve(sub, depth + 1)[:2])
        out = []
        for choice in _choices(parts, 4):
            e = sympy.Add(*choice) if kind == "add" else sympy.Mul(*choice)
            out.append(self.refit_on(p, e))
        return out

    def refit_on(self, p: Problem, e: sympy.Expr) -> Candidate:
        out, err = fit_constants(e, self.cols, p.y, steps=40)
        return Candidate(out, err, complexity(out))

    # symmetry ------------------------------------------------------------------------------
    def symmetry(self, p: Problem, S: Any, d: dict, depth: int) -> list[Candidate] | None:
        """Merge symmetric pairs greedily with one surrogate: after ``u = x_i * x_j**s`` the
        derivative along ``u`` is ``x_i f_i / u``; after ``u = x_i + x_j / r`` it is ``f_i``."""
        vals = [d["X"][:, m] for m in range(p.F.shape[1])]
        grads = [d["grad"][:, m] for m in range(p.F.shape[1])]
        feats = list(p.features)
        cols = [p.F[:, m] for m in range(p.F.shape[1])]
        merged = 0
        while len(feats) > 1:
            best = _best_pair(vals, grads)
            if best is None or best[0] > max(SYMMETRIC, 2 * d["serr"]):
                break
            score, i, j, kind, r = best
            rr = _snap_ratio(r)
            if kind == "mul":  # f(x_i**a * x_j**b) with a/b = r: u = x_i * x_j**(1/r)
                u = feats[i] * feats[j] ** (1 / rr)
                uv, ud = cols[i] * cols[j] ** float(1 / rr), vals[i] * vals[j] ** float(1 / rr)
                gu = vals[i] * grads[i] / ud
            else:  # f(a x_i + b x_j), a/b = r: u = x_i + x_j / r
                u = feats[i] + feats[j] / rr
                uv, ud = cols[i] + cols[j] / float(rr), vals[i] + vals[j] / float(rr)
                gu = grads[i]
            if not (bool(torch.isfinite(uv).all()) and bool(torch.isfinite(gu).all())):
                break
            self.log(f"depth {depth}: symmetric pair ({feats[i]}, {feats[j]}) -> {u} (score {score:.1e})")
            keep = [m for m in range(len(feats)) if m not in (i, j)]
            feats = [u] + [feats[m] for m in keep]
            cols = [uv] + [cols[m] for m in keep]
            vals = [ud] + [vals[m] for m in keep]
            grads = [gu] + [grads[m] for m in keep]
            merged += 1
        if not merged:
            return None
        sub = Problem(torch.stack(cols, 1), feats, p.y)
        return [self.refit_on(p, c.expr) for c in self.solve(sub, depth + 1)[:3]]

    # output transforms ---------------------------------------------------------------------
    def transform(self, p: Problem, S: Any, d: dict, depth: int) -> list[Candidate] | None:
        y = p.y
        for name, fwd, inv, ok in _TRANSFORMS:
            if not ok(y):
                continue
            ty = fwd(y)
            if not bool(torch.isfinite(ty).all()) or float(ty.std()) <= 0:
                continue
            k = p.F.shape[1]
            def linked(i: int, j: int, T: Callable = fwd) -> bool:
                return bool(d["pairs"](i, j, T) >= d["thr"])

            if len(_groups(k, linked)) > 1:
                self.log(f"depth {depth}: output transform {name}")
                sub = Problem(p.F, p.features, ty, p.noise)
                out = self.solve(sub, depth + 1)[:3]
                return [self.refit_on(p, inv(c.expr)) for c in out]
        return None


def _pos(y: torch.Tensor) -> bool:
    return bool((y > 0).all())


def _nonzero(y: torch.Tensor) -> bool:
    return bool((y != 0).all())


_TRANSFORMS: list[tuple[str, Callable, Callable, Callable]] = [
    ("square", lambda y: y**2, lambda e: sympy.sqrt(e), _pos),
    ("inverse", lambda y: 1 / y, lambda e: 1 / e, _nonzero),
    ("sqrt", lambda y: y.sqrt(), lambda e: e**2, _pos),
    ("log", lambda y: y.log(), lambda e: sympy.exp(e), _pos),
    ("exp", lambda y: y.exp(), lambda e: sympy.log(e), lambda y: float(y.abs().max()) < 30),
    ("cos", lambda y: y.cos(), lambda e: sympy.acos(e), lambda y: bool(((y >= 0) & (y <= math.pi)).all())),
    ("sin", lambda y: y.sin(), lambda e: sympy.asin(e), lambda y: bool((y.abs() <= math.pi / 2).all())),
    ("inverse square", lambda y: 1 / y**2, lambda e: 1 / sympy.sqrt(e), _pos),
]


def _choices(parts: list[list[Candidate]], limit: int) -> list[list[sympy.Expr]]:
    """Combinations of the parts' candidates, best-first by summed rank, at most ``limit``."""
    ranked = sorted(product(*[range(len(c)) for c in parts]), key=lambda t: (sum(t), t))
    return [[parts[m][r].expr for m, r in enumerate(t)] for t in ranked[:limit]]


def _groups(k: int, linked: Callable[[int, int], bool]) -> list[list[int]]:
    parent = list(range(k))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in combinations(range(k), 2):
        if linked(i, j):
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(k):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _best_pair(vals: list[torch.Tensor], grads: list[torch.Tensor]) -> tuple[float, int, int, str, float] | None:
    best: tuple[float, int, int, str, float] | None = None
    for i, j in combinations(range(len(vals)), 2):
        for kind in ("mul", "lin"):
            if kind == "mul":
                if not (bool((vals[i] > 0).all()) and bool((vals[j] > 0).all())):
                    continue
                a, b = vals[i] * grads[i], vals[j] * grads[j]
            else:
                a, b = grads[i], grads[j]
            score, r = _ratio_score(a, b)
            if best is None or score < best[0]:
                best = (score, i, j, kind, r)
    return best


def _logabs(v: torch.Tensor) -> torch.Tensor:
    return v.abs().log()


def _PRODUCT(v: torch.Tensor) -> torch.Tensor:  # noqa: N802 - a marker: the product test
    return v


class _PairTest:
    """Finite mixed differences of ``T(S)``: ``f(a,b) + f(a',b') - f(a',b) - f(a,b')`` for a
    pair of inputs moved between random sample rows, relative to the moves' own effects.
    0 means separable (additively in ``T(f)``); cached per (pair, transform)."""

    def __init__(self, S: Any, F: torch.Tensor, seed: int, n: int = 400):
        gen = torch.Generator().manual_seed(seed + 17)
        N = F.shape[0]
        self.base = F[torch.randperm(N, generator=gen)[:n]]
        self.alt = F[torch.randperm(N, generator=gen)[:n]]
        self.S = S
        self.cache: dict[tuple, float] = {}

    def __call__(self, i: int, j: int, T: Callable | None) -> float:
        key = (i, j, id(T))
        if key not in self.cache:
            self.cache[key] = self._score(i, j, T)
        return self.cache[key]

    def _score(self, i: int, j: int, T: Callable | None) -> float:
        x00 = self.base
        x10, x01, x11 = x00.clone(), x00.clone(), x00.clone()
        x10[:, i] = self.alt[:, i]
        x01[:, j] = self.alt[:, j]
        x11[:, i], x11[:, j] = self.alt[:, i], self.alt[:, j]
        with torch.no_grad():
            f = [self.S(x) for x in (x00, x10, x01, x11)]
        if T is _PRODUCT:
            num = (f[0] * f[3] - f[1] * f[2]).abs().mean()
            den = (f[0].abs() * ((f[3] - f[1]).abs() + (f[3] - f[2]).abs())
                   + f[3].abs() * ((f[1] - f[0]).abs() + (f[2] - f[0]).abs())).mean()  # fmt: skip
            return 0.0 if float(den) <= 1e-300 else float(num / den)
        if T is not None:
            f = [T(v) for v in f]
        if not all(bool(torch.isfinite(v).all()) for v in f):
            return float("inf")
        num = (f[0] + f[3] - f[1] - f[2]).abs().mean()
        den = ((f[1] - f[0]).abs() + (f[2] - f[0]).abs() + (f[3] - f[1]).abs() + (f[3] - f[2]).abs()).mean()
        if float(den) <= 1e-300:
            return 0.0
        return float(num / den)


def _mixed_score(H: torch.Tensor, i: int, j: int) -> float:
    num = H[:, i, j].abs()
    den = num + (H[:, i, i] * H[:, j, j]).abs().sqrt()
    return float(num.sum() / den.sum().clamp_min(1e-300)) if float(den.sum()) > 0 else 0.0


def _ratio_score(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """How constant ``a / b`` is over the samples (0 = constant), and its median."""
    mask = (b.abs() > 1e-3 * b.abs().median()) & (a.abs() > 1e-3 * a.abs().median())
    if int(mask.sum()) < 10:
        return float("inf"), 0.0
    r = a[mask] / b[mask]
    m = float(r.median())
    if m == 0 or not math.isfinite(m):
        return float("inf"), 0.0
    return float((r - m).abs().median()) / abs(m), m


def _derivs(S: Callable, F: torch.Tensor, seed: int, n: int = 300) -> dict:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(F.shape[0], generator=gen)[:n]
    X = F[idx].detach()

    def one(x: torch.Tensor) -> torch.Tensor:
        return S(x.unsqueeze(0))[0]

    with torch.no_grad():
        value = S(X)
    grad = vmap(jacrev(one))(X)
    hess = vmap(hessian(one))(X)
    return {"X": X, "value": value, "grad": grad, "hess": hess}
