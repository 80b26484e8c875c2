"""Dimensional analysis: units of the variables and the target -> dimensionless groups.

In: ``units`` (each variable's dimension and the target's, under the key ``"target"``), the
variables' names. Out: a :class:`Groups`: the target's unit as a product of powers of the
variables (``y = prefactor * f(pi_1, ..., pi_m)``) and the dimensionless groups ``pi_j`` (the
integer nullspace of the dimension matrix, Buckingham's theorem). Stage: discover (applied
before the structure search, which then solves the dimensionless problem).

A dimension is a mapping ``{base: exponent}`` (``{"m": 1, "s": -2}``) or a sequence of
exponents over bases in a fixed order of the user's choice (``(1, -2, 0, 0, 0)``); exponents
are integers or fractions. All arithmetic is exact (SymPy rationals).

>>> g = groups({"F": {"kg": 1, "m": 1, "s": -2}, "m": {"kg": 1}, "a": {"m": 1, "s": -2},
...             "target": {"kg": 1, "m": 1, "s": -2}}, ["F", "m", "a"])
>>> g.prefactor, g.groups
({'F': 1}, [{'F': -1, 'm': 1, 'a': 1}])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import Any

import sympy

from ..errors import ConfigError

__all__ = ["Groups", "groups", "TARGET"]

#: the key of ``units`` that gives the target's dimension
TARGET = "target"


@dataclass(frozen=True)
class Groups:
    """``y = prod(x**p for x, p in prefactor) * f(pi_1, ...)``, ``pi_j = prod(x**q for x, q in groups[j])``."""

    prefactor: dict[str, sympy.Rational]
    groups: list[dict[str, sympy.Rational]]


def _exponent(v: Any, where: str) -> sympy.Rational:
    if isinstance(v, bool) or not isinstance(v, (int, float, Fraction, sympy.Rational)):
        raise ConfigError(f"discover: units of {where}: exponent {v!r} is not a number")
    fr = Fraction(v).limit_denominator(1000) if isinstance(v, float) else Fraction(str(v))
    if isinstance(v, float) and abs(float(fr) - v) > 1e-9:
        raise ConfigError(f"discover: units of {where}: exponent {v!r} is not a simple fraction")
    return sympy.Rational(fr.numerator, fr.denominator)


def _dimension(v: Any, where: str) -> dict[Any, sympy.Rational]:
    if isinstance(v, Mapping):
        out = {}
        for base, e in v.items():
            if not isinstance(base, str) or not base:
                raise ConfigError(f"discover: units of {where}: base unit {base!r} is not a name")
            out[base] = _exponent(e, where)
        return out
    if isinstance(v, Sequence) and not isinstance(v, str):
        return {i: _exponent(e, where) for i, e in enumerate(v)}
    raise ConfigError(
        f"discover: units of {where}: expected a mapping {{base: exponent}} or a sequence of "
        f"exponents, got {type(v).__name__}"
    )


def groups(units: Mapping[str, Any], names: Sequence[str]) -> Groups:
    """The prefactor and dimensionless groups of ``names`` under ``units`` (see the module)."""
    if not isinstance(units, Mapping):
        raise ConfigError(f"discover: units must be a mapping, got {type(units).__name__}")
    if TARGET in names:
        raise ConfigError(f"discover: a variable is called {TARGET!r}, the key for the target's units")
    missing = [n for n in [*names, TARGET] if n not in units]
    if missing:
        raise ConfigError(f"discover: units missing for {missing}")
    extra = sorted(set(units) - {*names, TARGET})
    if extra:
        raise ConfigError(f"discover: units given for unknown variables {extra}")
    dims = {n: _dimension(units[n], n) for n in [*names, TARGET]}
    kinds = {type(b) for d in dims.values() for b in d}
    if len(kinds) > 1:
        raise ConfigError("discover: units mix named base units and exponent sequences")
    bases = sorted({b for d in dims.values() for b in d}, key=str)
    D = sympy.Matrix([[dims[n].get(b, 0) for n in names] for b in bases]) if bases else sympy.zeros(0, len(names))
    t = sympy.Matrix([dims[TARGET].get(b, 0) for b in bases])
    pre = _particular(D, t, len(names))
    if pre is None:
        raise ConfigError("discover: the target's units are not a product of powers of the variables' units")
    null = D.nullspace() if D.rows else [sympy.eye(len(names))[:, i] for i in range(len(names))]
    gs = []
    for v in null:
        den = sympy.ilcm(*[sympy.fraction(sympy.nsimplify(x))[1] for x in v])
        w = v * den
        g = sympy.igcd(*[int(x) for x in w if x != 0])
        w = w / g
        if sum(1 for x in w if x < 0) > sum(1 for x in w if x > 0):
            w = -w
        gs.append({n: sympy.Rational(w[i]) for i, n in enumerate(names) if w[i] != 0})
    prefactor = {n: pre[i] for i, n in enumerate(names) if pre[i] != 0}
    return Groups(prefactor, gs)


def _particular(D: sympy.Matrix, t: sympy.Matrix, n: int) -> list[sympy.Rational] | None:
    """A solution of ``D p = t`` with the fewest variables (then the smallest exponents)."""
    if all(x == 0 for x in t):
        return [sympy.Integer(0)] * n
    best = None
    for size in range(1, n + 1):
        for cols in combinations(range(n), size):
            sub = D[:, list(cols)]
            try:
                sol, params = sub.gauss_jordan_solve(t)
            except ValueError:
                continue
            sol = sol.xreplace({p: 0 for p in params})
            if any(x == 0 for x in sol):
                continue
            key = (sum(abs(x) for x in sol), tuple(cols))
            if best is None or key < best[0]:
                p = [sympy.Integer(0)] * n
                for c, x in zip(cols, sol):
                    p[c] = sympy.Rational(x)
                best = (key, p)
        if best is not None:
            return best[1]
    return None
