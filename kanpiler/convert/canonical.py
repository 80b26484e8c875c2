"""Canonical affine parameters: one representative of the many ``(a, b, c, d)`` of a curve.

In: a library function name and fitted ``a, b, c, d`` of ``c*f(a*x+b)+d``. Out: equivalent
parameters with redundancy removed (``exp(a*x+b)`` -> ``e^b*exp(a*x)``, ``c*(a*x+b)**2`` ->
``c*a**2*(x+b/a)**2``, ``a > 0`` for odd and even functions, ``b`` within a period), read
entirely from the function's library record (``Function.canonical_affine``), so that constants
snap and formulas read simply. Stage: convert (the runtime calls the record's method directly).

>>> canonical_affine("x", 2.0, 1.0, 3.0, 0.5)
(1.0, 0.0, 6.0, 3.5)
>>> canonical_affine("sin", -2.0, 1.0, 3.0, 0.0)
(2.0, -1.0, -3.0, 0.0)
"""

from __future__ import annotations

from .. import library

__all__ = ["canonical_affine"]


def canonical_affine(fn: str, a: float, b: float, c: float, d: float) -> tuple[float, ...]:
    """Equivalent ``(a, b, c, d)`` for ``c*fn(a*x+b)+d`` in a canonical form."""
    return library.get(fn).canonical_affine(a, b, c, d)
