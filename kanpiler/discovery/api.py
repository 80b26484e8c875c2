"""``kanpiler.discover``: from samples ``(X, y)`` to the formula that generated them.

In: data (numpy, torch or pandas), options. Out: a :class:`Discovery` with the chosen SymPy
formula, the accuracy-complexity Pareto front, the structure found, a report, and (on first
use) the formula compiled into a MultKAN. Stage: discover (the package's entry point).

Route: check the data; hold out a fifth of the rows; search structure first, then symbols,
then constants (:mod:`.structure`); refit every candidate's constants on the training rows
(Levenberg-Marquardt, float64), snap them to closed forms, keep the snapped form when it fits
as well; rank on the held-out rows; pick the simplest formula within a small margin of the
most accurate one.

>>> import numpy as np
>>> x = np.linspace(0.5, 2.0, 200)[:, None]
>>> d = discover(x, 3 * x[:, 0] ** 2 + 1, ["x"], progress=False)
>>> d.formula
3*x**2 + 1
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch

from ..compiler import compile as kcompile
from ..convert.constants import snap_constants, snap_number
from ..errors import ConfigError, FitError, UnsupportedError
from .data import prepare
from .expr import complexity, evaluate, fit_constants, rel_rmse
from .structure import Budget, Problem, Search
from .units import groups as unit_groups
from .univariate import Candidate, select

__all__ = ["discover", "Discovery", "ParetoPoint"]


@dataclass(frozen=True)
class ParetoPoint:
    """One formula of the accuracy-complexity front: error is relative RMSE on held-out rows."""

    complexity: int
    error: float
    formula: sympy.Expr


@dataclass
class Discovery:
    """What :func:`discover` found. ``model`` compiles ``formula`` into a MultKAN on first use."""

    formula: sympy.Expr
    pareto: list[ParetoPoint]
    structure: list[str]
    report: dict[str, Any]
    variables: list[str]
    error: float
    _model: Any = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        """The formula as a float64 MultKAN (its constants are the fitted ones)."""
        if self._model is None:
            self._model = kcompile(self.formula, self.variables, dtype=torch.float64)
        return self._model

    def latex(self) -> str:
        """The formula in LaTeX."""
        return sympy.latex(self.formula)

    def predict(self, X: Any) -> torch.Tensor:
        """The formula's values at the rows of ``X`` (same columns as the data)."""
        Xt, _, _ = prepare(X, [0.0] * len(X), self.variables, min_samples=1)
        cols = {n: Xt[:, i] for i, n in enumerate(self.variables)}
        return (
            evaluate(self.formula, cols)
            if self.formula.free_symbols
            else torch.full((Xt.shape[0],), float(self.formula), dtype=torch.float64)
        )

    def __str__(self) -> str:
        lines = [f"formula: {self.formula}", f"held-out relative RMSE: {self.error:.2e}",
                 "structure:"] + [f"  {s}" for s in self.structure] + ["pareto front (complexity, error, formula):"]  # fmt: skip
        lines += [f"  {p.complexity:3d}  {p.error:.2e}  {p.formula}" for p in self.pareto]
        return "\n".join(lines)


class _Stop(Exception):
    pass


def _snap_loose(e: sympy.Expr, rtol: float) -> sympy.Expr:
    """Floats within ``rtol`` of a small rational (denominator <= 10) become that rational."""
    m = {}
    for f in e.atoms(sympy.Float):
        new = snap_number(float(f), rtol, max_den=10, max_num=40, decimals=0, rational_only=True)
        if new is not None:
            m[f] = new
    return e.xreplace(m)


def _snap(e: sympy.Expr, cols: dict, y: torch.Tensor, err: float) -> tuple[sympy.Expr, float]:
    """Snap constants to closed forms (any closed form at 1e-6; small rationals up to 1e-2,
    which only noisy data accept); refit the floats left over; keep the snapped form when its
    error is within 1% of the best so far."""
    e = sympy.nfloat(e)
    best = (e, err)
    for rtol in (1e-6, 1e-4, 1e-3, 1e-2):
        s = snap_constants(e, rtol=rtol) if rtol <= 1e-6 else _snap_loose(e, rtol)
        s = s.xreplace({f: sympy.Integer(0) for f in s.atoms(sympy.Float) if abs(float(f)) < 1e-10})
        if s == e:
            continue
        if s.atoms(sympy.Float):
            s, serr = fit_constants(sympy.nfloat(s), cols, y, steps=30)
            s = snap_constants(s, rtol=1e-6)
        serr = (
            rel_rmse(evaluate(s, cols), y)
            if s.free_symbols
            else rel_rmse(torch.full_like(y, float(s)), y)
        )
        if serr <= best[1] * 1.01 + 1e-12 or (
            serr <= 1e-9 and complexity(s) <= complexity(best[0])
        ):
            best = (s, serr)
    return best


def _variants(
    e: sympy.Expr, err: float, cols: dict, y: torch.Tensor
) -> list[tuple[sympy.Expr, float]]:
    """The fitted formula, and its expanded / common-factor forms (constants refitted): a
    product of constants spread over a sum snaps only once it is multiplied out."""
    out = [(e, err)]
    if complexity(e) > 120:
        return out
    try:
        ex = sympy.expand(e)
        forms = [ex, sympy.factor_terms(ex)] if complexity(ex) <= 200 else []
    except Exception:  # noqa: BLE001 - a rewrite that fails is simply not offered
        forms = []
    for f in forms:
        if f != e and all(str(f) != str(o[0]) for o in out):
            g, gerr = fit_constants(sympy.nfloat(f), cols, y, steps=40)
            if gerr <= err * 1.01 + 1e-12:
                out.append((g, gerr))
    return out


def _finish(cands: list[Candidate], cols: dict, y: torch.Tensor, hold: dict, yh: torch.Tensor,
            limit: int) -> list[ParetoPoint]:  # fmt: skip
    points: dict[str, ParetoPoint] = {}
    for c in select(cands)[:limit]:
        e0, err0 = fit_constants(c.expr, cols, y, steps=80)
        if not math.isfinite(err0):
            continue
        for e, err in _variants(e0, err0, cols, y):
            e, err = _snap(e, cols, y, err)
            try:
                herr = rel_rmse(
                    evaluate(e, hold) if e.free_symbols else torch.full_like(yh, float(e)), yh
                )
            except (ValueError, KeyError, TypeError, RuntimeError, UnsupportedError):
                continue
            if math.isfinite(herr):
                points.setdefault(str(e), ParetoPoint(complexity(e), herr, e))
    front: list[ParetoPoint] = []
    for p in sorted(points.values(), key=lambda p: (p.complexity, p.error, str(p.formula))):
        if not front or p.error < front[-1].error:
            front.append(p)
    return front


def _pick(front: list[ParetoPoint], margin: float = 0.05, floor: float = 1e-9) -> ParetoPoint:
    best = min(p.error for p in front)
    ok = [p for p in front if p.error <= best * (1 + margin) + floor]
    return min(ok, key=lambda p: (p.complexity, p.error))


def _dimensionless(units: Any, names: list[str], symbols: list[sympy.Symbol], p: Problem,
                   report: dict, search: Search) -> tuple[sympy.Expr, torch.Tensor, list, torch.Tensor] | None:  # fmt: skip
    """``y = prefactor * f(pi_1, ...)``: the prefactor and the dimensionless problem (groups'
    values, their formulas, ``y / prefactor``), or None when the groups are not finite here."""
    g = unit_groups(units, names)
    sym = dict(zip(names, symbols))
    col = {n: p.F[:, i] for i, n in enumerate(names)}

    def mono(powers: dict[str, sympy.Rational]) -> tuple[sympy.Expr, torch.Tensor]:
        e, v = sympy.Integer(1), torch.ones_like(p.y)
        for n, a in powers.items():
            e, v = e * sym[n] ** a, v * col[n] ** float(a)
        return e, v

    pre, pv = mono(g.prefactor)
    feats = [mono(q) for q in g.groups]
    y0 = p.y / pv
    F = torch.stack([v for _, v in feats], 1) if feats else p.F[:, :0]
    report["units"] = {"prefactor": str(pre), "groups": [str(e) for e, _ in feats]}
    if not (bool(torch.isfinite(y0).all()) and bool(torch.isfinite(F).all())):
        search.log("dimensional analysis: groups not finite on the data; not applied")
        return None
    search.log(f"dimensional analysis: y = {pre} * f({', '.join(str(e) for e, _ in feats)})")
    return pre, F, [e for e, _ in feats], y0


def discover(
    X: Any,
    y: Any,
    variables: Sequence[str] | None = None,
    *,
    units: dict[str, Any] | None = None,
    time_limit: float | None = 120,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
    functions: Sequence[str] | None = None,
    drop_nonfinite: bool = False,
    max_samples: int = 2000,
    surrogates: int = 8,
) -> Discovery:
    """Find a formula ``y = f(X)``: structure first, then symbols, then constants.

    ``X``: (N, n) numpy array, torch tensor or pandas DataFrame (column names become the
    variables); ``y``: N values. ``functions`` restricts the library functions tried.
    ``time_limit`` (seconds, or None) and Ctrl-C stop the search early and return the best
    formula found so far; otherwise the work is bounded by counts (``surrogates``: how many
    surrogate networks the search may train), so the same seed and data give the same
    formula on any machine load. At most ``max_samples`` rows (picked with ``seed``) are used.
    ``units`` (each variable's dimension and the target's under the key ``"target"``, see
    :mod:`.units`) turns the problem dimensionless first: ``y = prefactor * f(pi_1, ...)``;
    ``device`` must be None or a CPU device for now; ``progress`` prints each search step
    to stderr as it happens.
    """
    t0 = time.perf_counter()
    if device is not None and torch.device(device).type != "cpu":
        raise ConfigError(f"discover: runs on the CPU for now, got device={device!r}")
    Xt, yt, names = prepare(X, y, variables, drop_nonfinite=drop_nonfinite)
    gen = torch.Generator().manual_seed(seed)
    if Xt.shape[0] > max_samples:
        Xt, yt = (t[torch.randperm(Xt.shape[0], generator=gen)[:max_samples]] for t in (Xt, yt))
    report: dict[str, Any] = {"samples": int(Xt.shape[0]), "variables": names, "seed": seed,
                              "units": units, "stages": []}  # fmt: skip
    if float(yt.std()) <= 1e-12 * (float(yt.abs().mean()) + 1e-300):
        c = snap_constants(sympy.Float(float(yt.mean())))
        pt = ParetoPoint(1, 0.0, c)
        report["stages"].append("y is constant")
        return Discovery(c, [pt], ["constant"], report, names, 0.0)
    perm = torch.randperm(Xt.shape[0], generator=gen)
    nh = max(2, Xt.shape[0] // 5)
    hi, ti = perm[:nh], perm[nh:]
    cols = {n: Xt[ti, i] for i, n in enumerate(names)}
    hold = {n: Xt[hi, i] for i, n in enumerate(names)}
    deadline = None if time_limit is None else t0 + float(time_limit)

    def check() -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise _Stop

    budget = Budget(surrogates=surrogates, progress=progress)
    search = Search(cols, seed=seed, functions=functions, budget=budget, check=check)
    symbols = [sympy.Symbol(n, positive=True) if bool((Xt[:, i] > 0).all()) else sympy.Symbol(n, real=True)
               for i, n in enumerate(names)]  # fmt: skip
    problem = Problem(Xt[ti], symbols, yt[ti])
    prefactor = _dimensionless(units, names, symbols, problem, report, search) if units is not None else None
    if prefactor is not None:
        problem = Problem(*prefactor[1:])
    stopped = None
    try:
        cands = search.solve(problem)
    except _Stop:
        stopped = "time limit"
    except KeyboardInterrupt:
        stopped = "interrupted"
    if stopped:
        report["stages"].append(f"stopped early ({stopped}); best so far")
        cands = search.best or search.direct(problem)
    if prefactor is not None:
        cands = [search.refit_on(Problem(Xt[ti], symbols, yt[ti]), prefactor[0] * c.expr) for c in cands[:6]]
    report["stages"] += budget.log
    report["surrogates"] = search.trained
    front = _finish(cands, cols, yt[ti], hold, yt[hi], limit=10)
    if not front:
        raise FitError("discover: no candidate formula could be evaluated on the data")
    best = _pick(front)
    formula = best.formula.xreplace({s: sympy.Symbol(s.name) for s in best.formula.free_symbols})
    pareto = [ParetoPoint(p.complexity, p.error,
                          p.formula.xreplace({s: sympy.Symbol(s.name) for s in p.formula.free_symbols}))
              for p in front]  # fmt: skip
    report["seconds"] = time.perf_counter() - t0
    keys = ("split", "pair", "transform", "dropped", "power factor", "dimensional")
    structure = [s for s in budget.log if any(k in s for k in keys)]
    return Discovery(formula, pareto, structure or ["direct fit"], report, names, best.error)
