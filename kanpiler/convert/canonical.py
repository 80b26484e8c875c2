"""Canonical affine parameters: one representative of the many ``(a, b, c, d)`` of a curve.

In: a library function name and fitted ``a, b, c, d`` of ``c*f(a*x+b)+d``.
Out: equivalent parameters with redundancy removed (``exp(a*x+b)`` -> ``e^b*exp(a*x)``,
``c*(a*x+b)**2`` -> ``c*a**2*(x+b/a)**2``, ``a > 0`` for odd and even functions), so that
constants snap and formulas read simply. Stage: convert.

>>> canonical_affine("x", 2.0, 1.0, 3.0, 0.5)
(1.0, 0.0, 6.0, 3.5)
"""

from __future__ import annotations

import math

from .. import library

__all__ = ["canonical_affine"]

ODD = {"sin", "tan", "atan", "asin", "sinh", "tanh", "asinh", "atanh", "erf", "sign"}
EVEN = {"cos", "cosh", "gaussian", "abs"}


def _power(p: float, a: float, b: float, c: float, d: float) -> tuple[float, ...]:
    if p == 1.0:  # c*(a*x+b)+d = (c*a)*x + (c*b + d)
        return (1.0, 0.0, c * a, c * b + d) if a != 0.0 else (0.0, 0.0, 0.0, c * b + d)
    if a == 0.0:
        return (a, b, c, d)
    if float(p).is_integer() or a > 0:
        # c*(a*x+b)**p = c*a**p * (x + b/a)**p
        return (1.0, b / a, c * a**p, d)
    return (a, b, c, d)


def canonical_affine(fn: str, a: float, b: float, c: float, d: float) -> tuple[float, ...]:
    """Equivalent ``(a, b, c, d)`` for ``c*fn(a*x+b)+d`` in a canonical form."""
    rec = library.get(fn)
    name = rec.name
    if rec.power is not None:
        return _power(rec.power, a, b, c, d)
    if name == "exp":
        return (a, 0.0, c * math.exp(b), d) if abs(b) < 700 else (a, b, c, d)
    if name in ("log", "log10") and a != 0.0:
        # log(a*x+b) = log|a| + log(sign(a)*(x + b/a))
        scale = math.log(abs(a)) / (1.0 if name == "log" else math.log(10.0))
        return (math.copysign(1.0, a), b / abs(a), c, d + c * scale)
    if name == "abs" and a != 0.0:
        return (1.0, b / a, c * abs(a), d)
    if name == "sign" and a != 0.0:
        return (1.0, b / a, c * math.copysign(1.0, a), d)
    if a < 0 and name in ODD:
        a, b, c = -a, -b, -c
    elif a < 0 and name in EVEN:
        a, b = -a, -b
    if name in ("sin", "cos"):
        b = math.remainder(b, 2 * math.pi)
    return (a, b, c, d)
