"""Constant snapping: floats that are within tolerance of simple closed forms become exact.

In: a SymPy expression with ``Float`` coefficients (as read off a trained or compiled network).
Out: the same expression with those floats replaced by integers, small rationals, π, e, √2, ...
Stage: convert (the last clean-up before a formula is shown to the user).

>>> import sympy
>>> x = sympy.Symbol("x")
>>> snap_constants(1.0 * sympy.exp(1.0 * x) * 0.398942280401433)
sqrt(2)*exp(x)/(2*sqrt(pi))
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Any

import sympy

from ..errors import KanpilerError
from .cleanup import drop_noise, merge_constants

__all__ = ["snap_constants", "snap_number", "snap_candidates", "decimal_cost", "CLOSED_FORMS"]


@lru_cache(maxsize=1)
def _closed_forms() -> tuple[tuple[sympy.Expr, float], ...]:
    """The table of base constants B, simplest first; a float snaps to r*B or r/B (r rational)."""
    pi, e = sympy.pi, sympy.E
    forms = (
        sympy.Integer(1),
        pi,
        e,
        sympy.sqrt(2),
        sympy.sqrt(3),
        sympy.sqrt(pi),
        1 / sympy.sqrt(2 * pi),  # the normal density's constant
        pi**2,
        sympy.sqrt(5),
        sympy.log(2),
    )
    return tuple((b, float(b)) for b in forms)


#: Human-readable list of the closed forms the snapper knows (products with small rationals).
CLOSED_FORMS: tuple[str, ...] = ("1", "pi", "e", "sqrt(2)", "sqrt(3)", "sqrt(pi)")
CLOSED_FORMS += ("1/sqrt(2*pi)", "pi**2", "sqrt(5)", "log(2)", "pi**3", "e**k", "sqrt(n)")
CLOSED_FORMS += ("n + pi", "e - pi", "pi/e")


def _rational_near(q: float, rtol: float, max_den: int, max_num: int) -> Fraction | None:
    """A fraction n/d with d <= max_den and |n| <= max_num within rtol of q, else None."""
    if not math.isfinite(q) or q == 0.0:
        return None
    fr = Fraction(q).limit_denominator(max_den)
    if abs(fr.numerator) > max_num or fr == 0:
        return None
    if abs(float(fr) - q) <= rtol * abs(q):
        return fr
    return None


def snap_candidates(
    value: float,
    rtol: float = 1e-6,
    *,
    max_den: int = 12,
    max_num: int = 100,
    decimals: int = 3,
    rational_only: bool = False,
) -> list[sympy.Expr]:
    """Every closed form within ``rtol`` of ``value``, simplest first (see :func:`snap_number`).

    >>> snap_candidates(3.1416, rtol=1e-4)
    [pi, 63*sqrt(2)/(16*sqrt(pi)), 3217/1024]
    """
    if not math.isfinite(value):
        return []
    if value == 0.0:
        return [sympy.Integer(0)]
    out: list[sympy.Expr] = []
    if abs(round(value) - value) <= rtol * abs(value):
        out.append(sympy.Integer(round(value)))
    fr = _rational_near(value, rtol, max_den, max_num)
    if fr is not None and fr.denominator > 1:
        out.append(sympy.Rational(fr.numerator, fr.denominator))
    # decimals (4.52 = 113/25) and binary fractions (0.0625 = 1/16): trusted before the
    # closed forms only when the tolerance window is far below their spacing 1/den (else a
    # random float would match them often)
    sharp: list[sympy.Rational] = []
    blunt: list[sympy.Rational] = []
    dens = ([10**decimals] if decimals else []) + [2**k for k in range(4, 11)]
    for den in dens if abs(value) < 10**3 else []:
        n = round(value * den)
        if n and abs(n / den - value) <= rtol * abs(value):
            (sharp if 2 * rtol * abs(value) * den <= 0.05 else blunt).append(sympy.Rational(n, den))
    out += sharp
    for base, bval in () if rational_only else _closed_forms()[1:]:
        fr = _rational_near(value / bval, rtol, max_den, max_num)
        if fr is not None:
            out.append(sympy.Rational(fr.numerator, fr.denominator) * base)
        fr = _rational_near(value * bval, rtol, max_den, max_num)
        if fr is not None:
            out.append(sympy.Rational(fr.numerator, fr.denominator) / base)
    return list(dict.fromkeys(out + blunt))


@lru_cache(maxsize=1)
def _named_forms() -> tuple[tuple[sympy.Expr, float, int], ...]:
    """Closed forms B with their cost (how much a reader must take in), cheapest first.

    A float snaps to ``r*B``, ``r/B`` or ``r + B``/``r - B`` for a small rational ``r``.
    """
    pi, e, sq = sympy.pi, sympy.E, sympy.sqrt
    forms: list[tuple[sympy.Expr, int]] = [(pi, 1), (e, 1)]
    forms += [(sq(n), 1 + _digits(n)) for n in (2, 3, 5, 6, 7, 10)]
    forms += [(pi**k, 2) for k in (2, 3, 4)] + [(e**k, 2) for k in (2, 3, 4)]
    forms += [(sq(pi), 2), (sympy.log(2), 2), (sq(e), 2), (1 / sq(2 * pi), 4)]
    forms += [(pi / e, 3), (pi * e, 3), (e - pi, 3), (e + pi, 3), (sympy.log(10), 3)]
    return tuple((b, float(b), c) for b, c in forms)


def _digits(n: int) -> int:
    return len(str(abs(n)))


def _rational_cost(fr: Fraction) -> int:
    return _digits(fr.numerator) + (_digits(fr.denominator) if fr.denominator > 1 else 0)


def decimal_cost(value: float, rtol: float) -> int:
    """Significant digits a decimal needs to hold ``value`` within ``rtol`` (at most 17).

    >>> decimal_cost(3.14159, 1e-3), decimal_cost(2.0, 1e-9)
    (3, 1)
    """
    if value == 0.0 or not math.isfinite(value):
        return 1
    for d in range(1, 18):
        if abs(float(f"{value:.{d - 1}e}") - value) <= rtol * abs(value):
            return d
    return 17


def _forms_near(
    value: float, rtol: float, max_den: int, max_num: int
) -> list[tuple[int, sympy.Expr]]:
    """(cost, form) of every closed form within ``rtol`` of ``value``."""
    out: list[tuple[int, sympy.Expr]] = []
    fr = _rational_near(value, rtol, max_den, max(max_num, abs(round(value)) + 1))
    if fr is not None:
        out.append((_rational_cost(fr), sympy.Rational(fr.numerator, fr.denominator)))
    for base, bval, cost in _named_forms():
        for q, build in ((value / bval, lambda r, b: r * b), (value * bval, lambda r, b: r / b)):
            fr = _rational_near(q, rtol, max_den, max_num)
            if fr is not None:
                rc = 0 if abs(fr) == 1 else _rational_cost(fr)
                out.append(
                    (
                        rc + cost + (q != value / bval),
                        build(sympy.Rational(fr.numerator, fr.denominator), base),
                    )
                )
        for sign in (1, -1):  # value = r + sign*B, judged on the rational part r
            rest = value - sign * bval
            fr = _rational_near(rest, rtol * abs(value) / max(abs(rest), 1e-300), max_den, max_num)
            if fr is not None and abs(rest) > rtol * abs(value):
                form = sympy.Rational(fr.numerator, fr.denominator) + sign * base
                out.append((_rational_cost(fr) + cost + 1, form))
    return out


def snap_number(
    value: float,
    rtol: float = 1e-6,
    *,
    max_den: int = 24,
    max_num: int = 100,
    decimals: int = 3,
    rational_only: bool = False,
) -> sympy.Expr | None:
    """The simplest closed form within ``rtol`` of ``value`` (``None`` if there is none).

    Candidates: integers (any size), rationals ``n/d`` (``|n| <= max_num``, ``d <= max_den``)
    and decimals with at most ``decimals`` places (``4.52`` -> ``113/25``), then small rationals
    times, over or plus one of the closed forms of :data:`CLOSED_FORMS` (``pi``, ``e``, their
    powers, ``sqrt(n)``, ``10 + pi``, ``e - pi``, ...). Each has a cost (its digits plus the
    named constants it shows); the cheapest wins (rationals before π/e forms at equal cost), and
    only if it costs no more than the decimal the tolerance allows (:func:`decimal_cost`), so a
    loose ``rtol`` never turns ``3.104`` into ``59*exp(-1)/7``.

    >>> snap_number(0.7853981633974483)
    pi/4
    >>> snap_number(0.123456789) is None
    True
    >>> snap_number(13.141592653589793), snap_number(3.1622776601683795)
    (pi + 10, sqrt(10))
    """
    if not math.isfinite(value):
        return None
    if value == 0.0:
        return sympy.Integer(0)
    limit = decimal_cost(value, rtol)
    found: list[tuple[int, sympy.Expr]] = []
    if abs(round(value) - value) <= rtol * abs(value):
        found.append((_digits(round(value)), sympy.Integer(round(value))))
    for den in [10**decimals] if decimals and abs(value) < 10**3 else []:
        n = round(value * den)
        if n and abs(n / den - value) <= rtol * abs(value):
            found.append((_rational_cost(Fraction(n, den)), sympy.Rational(n, den)))
    rationals = [f for f in _forms_near(value, rtol, max_den, max_num) if f[1].is_Rational]
    found += rationals if rational_only else _forms_near(value, rtol, max_den, max_num)
    # a tie with the decimal goes to the decimal, unless the form is that decimal (1/2, 3)
    short = float(f"{value:.{limit - 1}e}")
    found = [f for f in found if f[0] < limit or (f[1].is_Rational and float(f[1]) == short)]
    return min(found, key=lambda f: f[0])[1] if found else None


def snap_constants(
    expr: sympy.Expr,
    rtol: float = 1e-6,
    *,
    atol: float = 0.0,
    max_den: int = 24,
    max_num: int = 100,
    decimals: int = 3,
) -> sympy.Expr:
    """Replace every ``Float`` of ``expr`` that is within ``rtol`` of a simple closed form.

    The whole expression is cleaned first: numeric addends below ``min(rtol, 1e-6)`` times its
    largest number are float noise and go, and numeric factors are merged (``1.34*x*(0.746*y)``
    is ``1.0*x*y``), so constants snap as the product the data determine, not factor by factor.

    Exponents snap to rationals only (``x**2.0`` -> ``x**2``, ``x**0.5`` -> ``sqrt(x)``);
    other floats snap to ``r*B`` or ``r/B`` for a small rational ``r`` and ``B`` one of
    :data:`CLOSED_FORMS`. Floats with ``|v| <= atol`` become 0 (off by default). Exact
    numbers are never touched and floats with no close form stay floats. ``1.0*`` factors
    disappear because SymPy drops a factor of exactly 1.

    >>> x = sympy.Symbol("x")
    >>> snap_constants(2.0000000001 * x**1.0 + 3.14159265358979)
    2*x + pi
    >>> y = sympy.Symbol("y")
    >>> snap_constants(1.34017750238208*x*(0.746169815731548*y + 1.3e-17) - 1e-17, 1e-3)
    x*y
    """
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        expr = sympy.Integer(expr) if isinstance(expr, int) else sympy.Float(expr)
    if not isinstance(expr, sympy.Basic):
        raise KanpilerError(f"snap_constants takes a SymPy expression, got {type(expr).__name__}")
    opts: dict[str, Any] = {"max_den": max_den, "max_num": max_num, "decimals": decimals}
    expr = merge_constants(drop_noise(expr, min(rtol, 1e-6)))

    def snap_exponent(p: sympy.Pow) -> sympy.Expr:
        new = snap_number(float(p.exp), rtol, rational_only=True, **opts)
        return sympy.Pow(p.base, new if new is not None else p.exp)

    expr = expr.replace(lambda e: e.is_Pow and e.exp.is_Float, snap_exponent)
    exponents = {p.exp for p in expr.atoms(sympy.Pow) if p.exp.is_Float}
    mapping: dict[sympy.Expr, sympy.Expr] = {}
    for f in expr.atoms(sympy.Float) - exponents:
        v = float(f)
        if abs(v) <= atol:
            mapping[f] = sympy.Integer(0)
            continue
        new = snap_number(v, rtol, **opts)
        if new is not None:
            mapping[f] = new
    return expr.xreplace(mapping) if mapping else expr
