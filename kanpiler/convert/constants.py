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

__all__ = ["snap_constants", "snap_number", "snap_candidates", "CLOSED_FORMS"]


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
CLOSED_FORMS += ("1/sqrt(2*pi)", "pi**2", "sqrt(5)", "log(2)")


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


def snap_number(
    value: float,
    rtol: float = 1e-6,
    *,
    max_den: int = 12,
    max_num: int = 100,
    decimals: int = 3,
    rational_only: bool = False,
) -> sympy.Expr | None:
    """The simplest closed form within ``rtol`` of ``value`` (``None`` if there is none).

    Tried simplest first: integers (any size); rationals ``n/d`` with ``|n| <= max_num`` and
    ``d <= max_den``; decimals with at most ``decimals`` places (``4.52`` -> ``113/25``);
    then ``(n/d)*B`` or ``(n/d)/B`` for the other closed forms ``B``. Bounded numerators
    keep random floats from matching.

    >>> snap_number(0.7853981633974483)
    pi/4
    >>> snap_number(0.123456789) is None
    True
    """
    found = snap_candidates(value, rtol, max_den=max_den, max_num=max_num,
                            decimals=decimals, rational_only=rational_only)  # fmt: skip
    return found[0] if found else None


def snap_constants(
    expr: sympy.Expr,
    rtol: float = 1e-6,
    *,
    atol: float = 0.0,
    max_den: int = 12,
    max_num: int = 100,
    decimals: int = 3,
) -> sympy.Expr:
    """Replace every ``Float`` of ``expr`` that is within ``rtol`` of a simple closed form.

    Exponents snap to rationals only (``x**2.0`` -> ``x**2``, ``x**0.5`` -> ``sqrt(x)``);
    other floats snap to ``r*B`` or ``r/B`` for a small rational ``r`` and ``B`` one of
    :data:`CLOSED_FORMS`. Floats with ``|v| <= atol`` become 0 (off by default). Exact
    numbers are never touched and floats with no close form stay floats. ``1.0*`` factors
    disappear because SymPy drops a factor of exactly 1.

    >>> x = sympy.Symbol("x")
    >>> snap_constants(2.0000000001 * x**1.0 + 3.14159265358979)
    2*x + pi
    """
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        expr = sympy.Integer(expr) if isinstance(expr, int) else sympy.Float(expr)
    if not isinstance(expr, sympy.Basic):
        raise KanpilerError(f"snap_constants takes a SymPy expression, got {type(expr).__name__}")
    opts: dict[str, Any] = {"max_den": max_den, "max_num": max_num, "decimals": decimals}

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
