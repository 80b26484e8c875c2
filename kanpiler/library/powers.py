"""Power functions ``x**p`` for any finite real ``p``: records built on demand and cached.

In: an exponent. Out: the :class:`Function` record of ``x**p`` (exact integer powers for
negative bases, a principal root otherwise) and its canonical name (``x^2``, ``x^-0.5``).
Stage: library.

>>> power(2.0).name, power(2.0).parity, power(-1.0).inverse
('x^2', 'even', 'x^-1')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any

from ..errors import KanpilerError
from .record import Function
from .safe import _all_real, _between, _nonzero, _safe_recip_arg, _sympy, _tiny, _torch


def _is_int(p: float) -> bool:
    return float(p).is_integer()


def power_name(p: float) -> str:
    """Canonical name of x**p: ``x^2``, ``x^-1``, ``x^1.5``."""
    p = float(p)
    if p == 1.0:
        return "x"
    if _is_int(p):
        return f"x^{int(p)}"
    return f"x^{p!r}"


def _sympy_exponent(p: float) -> Any:
    """Exact SymPy exponent: Integer, a small-denominator Rational that equals p, else Float."""
    s = _sympy()
    if _is_int(p):
        return s.Integer(int(p))
    fr = Fraction(p).limit_denominator(1000)
    if abs(float(fr) - p) <= 4 * math.ulp(p):
        return s.Rational(fr.numerator, fr.denominator)
    return s.Float(p)


def _int_power(x: Any, n: int) -> Any:
    # pow with an integer exponent is exact for negative bases too
    return x**n if n >= 0 else 1.0 / (x ** (-n))


def _make_power(p: float) -> Function:
    p = float(p)
    if not math.isfinite(p):
        raise KanpilerError(f"power exponent must be finite, got {p}")
    if _is_int(p):
        n = int(p)

        def exact(x: Any) -> Any:
            return _int_power(x, n)

        def safe(x: Any) -> Any:
            return _int_power(x if n >= 0 else _safe_recip_arg(x), n)

        in_domain = _all_real if n >= 0 else _nonzero
        domain_text = "all reals" if n >= 0 else "x != 0"
    else:

        def exact(x: Any) -> Any:
            return _torch().pow(x, p)

        def safe(x: Any) -> Any:
            t = _torch()
            lo = _tiny(x) if p < 1 else 0.0
            return t.pow(t.clamp(x, min=lo), p)

        in_domain = _between(0.0, math.inf, lo_open=p < 0)
        domain_text = "x > 0" if p < 0 else "x >= 0"
    name = power_name(p)
    label = "x" if p == 1 else name
    complexity = 1 if p == 1 else (2 if _is_int(p) and abs(p) <= 3 else 3)
    exp_s = str(int(p)) if _is_int(p) else repr(p)
    return Function(
        name=name,
        sympy_fn=lambda x: _sympy().Pow(x, _sympy_exponent(p)),
        torch_fn=exact,
        safe_fn=safe,
        in_domain=in_domain,
        domain_text=domain_text,
        label=label,
        latex=("{x}" if p == 1 else "{x}^{" + exp_s + "}"),
        complexity=complexity,
        power=p,
        fit=p in (1.0, 2.0, 3.0, 4.0, -1.0, -2.0, 0.5, -0.5, 1.5),
        parity=_power_parity(p),
        power_form=p,
        affine=_power_affine(p),
        inverse=power_name(1.0 / p) if p != 0 else None,
    )


def _power_parity(p: float) -> str:
    if not _is_int(p):
        return "none"
    return "even" if int(p) % 2 == 0 else "odd"


def _power_affine(p: float) -> Callable[..., tuple[float, float, float, float]]:
    def rule(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
        if p == 1.0:  # c*(a*x+b)+d = (c*a)*x + (c*b + d)
            return (1.0, 0.0, c * a, c * b + d) if a != 0.0 else (0.0, 0.0, 0.0, c * b + d)
        if a != 0.0 and (_is_int(p) or a > 0):  # c*(a*x+b)**p = c*a**p * (x + b/a)**p
            return (1.0, b / a, c * a**p, d)
        return (a, b, c, d)

    return rule


@lru_cache(maxsize=4096)
def power(p: float) -> Function:
    """The library record of x**p for any finite real p (cached)."""
    return _make_power(float(p))


__all__ = ["power", "power_name"]
