"""Formula clean-up: float noise dropped, constants merged and rounded, simplification by work.

In: a SymPy expression read off a network (``Float`` coefficients, ``1e-17`` residues of exact
cancellations). Out: the same function with noise terms gone, numeric factors merged into one
coefficient per product, optionally rounded; or a simpler equal expression found by a fixed,
size-bounded sequence of SymPy rewrites. Stage: convert (before constant snapping and
printing). Nothing here reads a clock, starts a thread or sets a signal: the same input gives
the same text on any machine under any load.

>>> import sympy
>>> x1, x2 = sympy.symbols("x1 x2")
>>> raw = 1.34017750238208*x1*(0.746169815731548*x2 + 1.3e-17) - 1.0e-17
>>> merge_constants(drop_noise(raw, 1e-12))
1.0*x1*x2
>>> round_constants(3.14159*x1 + 0.500001, 2)
3.14*x1 + 0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable

import sympy

from ..errors import KanpilerError

__all__ = [
    "drop_noise",
    "merge_constants",
    "normalize_powers",
    "round_constants",
    "simplify_bounded",
    "MAX_OPS",
]

#: expressions larger than this (``sympy.count_ops``) are not handed to the rewrites
MAX_OPS = 120
#: trigonometric rewriting (the costly step) runs only on expressions up to this size
TRIG_OPS = 30


def _check(expr: object, what: str) -> sympy.Basic:
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return sympy.Integer(expr) if isinstance(expr, int) else sympy.Float(expr)
    if not isinstance(expr, sympy.Basic):
        raise KanpilerError(f"{what} takes a SymPy expression, got {type(expr).__name__}")
    return expr


def drop_noise(expr: sympy.Basic, rtol: float = 1e-12) -> sympy.Basic:
    """Remove numeric addends no larger than ``rtol`` times the largest coefficient of their sum.

    Only pure-number ``Float`` terms of sums go (the residue ``1.2e-16`` of ``sin(pi)``, the
    ``1e-17`` left by an exact cancellation); a small coefficient of a variable stays, and so
    does a constant as small as the rest of its sum (``1e-86*x + 1e-86``).

    >>> x = sympy.Symbol("x")
    >>> drop_noise(x + 1.2246e-16), drop_noise(1e-50*x + 1)
    (x, 1.0e-50*x + 1)
    """
    expr = _check(expr, "drop_noise")

    def clean(e: sympy.Basic) -> sympy.Basic:
        if not e.args:
            return e
        args = [clean(a) for a in e.args]
        if not e.is_Add:
            return e.func(*args)
        tol = rtol * max(_size(a) for a in args)
        kept = [a for a in args if not (a.is_Float and abs(float(a)) <= tol)]
        return sympy.Add(*kept) if kept else sympy.Integer(0)

    return clean(expr)


def _size(term: sympy.Basic) -> float:
    """The magnitude of a term's numeric coefficient (1 for ``x``, 2.5 for ``2.5*x``)."""
    coeff = term.as_coeff_Mul()[0]
    value = abs(float(coeff)) if coeff.is_Number and coeff.is_finite else 0.0
    return value if math.isfinite(value) else 0.0


def merge_constants(expr: sympy.Basic) -> sympy.Basic:
    """Multiply out numeric factors so each product carries one coefficient.

    ``1.3*x*(0.7*y)`` and ``1.3*x*(0.7*y + 0.1)`` become ``0.91*x*y`` and ``0.91*x*y + 0.13*x``
    when that leaves fewer floats; otherwise the expression is returned as it was.

    >>> x, y = sympy.symbols("x y")
    >>> merge_constants(2.0*x*(0.5*y + 0.25))
    1.0*x*y + 0.5*x
    """
    expr = _check(expr, "merge_constants")
    expanded = sympy.expand_mul(expr)
    return expanded if _n_floats(expanded) < _n_floats(expr) else expr


def normalize_powers(expr: sympy.Basic) -> sympy.Basic:
    """``(k*u + m*v + ...)**p`` -> ``|k|**p * (u + (m/|k|)*v + ...)**p`` for a fractional power
    ``p`` of a sum with ``Float`` coefficients, ``k`` the largest coefficient of a term with a
    variable: the scale moves out of the root and merges with the factor in front, so
    ``0.7*sqrt(2.04*x**2 + 2.04*y**2)`` reads ``1.0*sqrt(1.0*x**2 + 1.0*y**2)`` and its
    constants can snap. Exact sums (``sqrt(2*x + 1)``) are left as they are.

    >>> x, y = sympy.symbols("x y")
    >>> normalize_powers(0.5*sympy.sqrt(4.0*x**2 + 2.0*y**2))
    1.0*sqrt(1.0*x**2 + 0.5*y**2)
    """
    expr = _check(expr, "normalize_powers")

    def scale(p: sympy.Pow) -> sympy.Basic:
        base, e = p.args
        if not (base.is_Add and e.is_Number and not e.is_Integer and base.has(sympy.Float)):
            return p
        coeffs = [t.as_coeff_Mul()[0] for t in base.args if t.free_symbols]
        k = max((abs(c) for c in coeffs if c.is_Number), default=sympy.Integer(1))
        if k == 1 or not k > 0 or not math.isfinite(float(k)):
            return p
        return k**e * sympy.Add(*[t / k for t in base.args]) ** e

    return expr.replace(lambda e: e.is_Pow, scale)


def _n_floats(expr: sympy.Basic) -> int:
    return sum(1 for a in sympy.preorder_traversal(expr) if a.is_Float)


def round_constants(expr: sympy.Basic, digits: int = 4) -> sympy.Basic:
    """Every ``Float`` rounded to ``digits`` places after the point (integral results become
    integers; exact numbers untouched), the formula as one would print it.

    >>> x = sympy.Symbol("x")
    >>> round_constants(1.99999*sympy.sin(0.333333*x) - 1e-9, 3)
    2*sin(0.333*x)
    """
    expr = _check(expr, "round_constants")
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 15:
        raise KanpilerError(f"digits must be an integer from 0 to 15, got {digits!r}")

    def rounded(f: sympy.Float) -> sympy.Number:
        r = round(float(f), digits)
        return sympy.Integer(int(r)) if float(r).is_integer() else sympy.Float(r, 15)

    return expr.xreplace({f: rounded(f) for f in expr.atoms(sympy.Float)})


def _rewrites() -> list[tuple[str, Callable[[sympy.Basic], sympy.Basic]]]:
    return [
        ("powsimp", sympy.powsimp),
        ("factor_terms", sympy.factor_terms),
        ("expand_mul", sympy.expand_mul),
        ("together", lambda e: sympy.together(e, deep=False)),
        ("cancel", sympy.cancel),
        ("trigsimp", _trigsimp),
        ("radsimp", sympy.radsimp),
        ("powsimp", sympy.powsimp),
    ]


def _trigsimp(e: sympy.Basic) -> sympy.Basic:
    # identities need two trigonometric functions; the rewriting is costly, so size-bounded
    trig = sum(e.has(f) for f in (sympy.sin, sympy.cos, sympy.tan)) >= 2
    return sympy.trigsimp(e, method="fu") if trig and sympy.count_ops(e) <= TRIG_OPS else e


def simplify_bounded(expr: sympy.Basic, max_ops: int = MAX_OPS) -> sympy.Basic:
    """The simplest of ``expr`` and what a fixed sequence of SymPy rewrites makes of it.

    Each rewrite runs on the simplest form so far and is kept when it lowers
    ``sympy.count_ops`` (ties: the shorter text). Nothing runs on an expression of more than
    ``max_ops`` operations or with numbers outside :data:`TAME`, so the work is bounded by the expression's size, not by a clock:
    the result is the same on an idle and a loaded machine, and no thread or signal is used.

    >>> x = sympy.Symbol("x")
    >>> simplify_bounded(sympy.sin(x)**2 + sympy.cos(x)**2 + x*(x + 1) - x**2)
    x + 1
    """
    expr = _check(expr, "simplify_bounded")
    best, best_key = expr, _key(expr)
    if best_key[0] > max_ops or not _tame(expr):
        return expr
    for _name, step in _rewrites():
        try:
            new = step(best)
        except (TypeError, ValueError, NotImplementedError, RecursionError, ZeroDivisionError):
            continue  # a rewrite that does not apply leaves the expression as it was
        if new.has(sympy.zoo, sympy.nan) and not best.has(sympy.zoo, sympy.nan):
            continue
        key = _key(new)
        if key < best_key and key[0] <= max_ops:
            best, best_key = new, key
    return best


#: numbers outside this range make SymPy's assumption queries and polynomial steps costly
TAME = (1e-12, 1e12)


def _tame(expr: sympy.Basic) -> bool:
    """No number of a size that makes SymPy's work explode (``sinh(1e300*x)`` asks for
    ``1e300 % pi`` through polynomial gcds), and nothing infinite or undefined."""
    if expr.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
        return False
    lo, hi = TAME
    for n in expr.atoms(sympy.Number):
        v = abs(float(n))
        if v and not lo <= v <= hi:
            return False
    return True


def _key(expr: sympy.Basic) -> tuple[int, int]:
    return int(sympy.count_ops(expr)), len(str(expr))
