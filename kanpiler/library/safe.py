"""Domains and singularity-safe torch variants of the library's functions.

In: tensors. Out: masks of where a function is real and finite, and variants that agree with
the exact function there while never returning NaN/inf (so training stays finite). Stage:
library. Torch is imported on first use only, so ``import kanpiler`` stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def _torch() -> Any:
    import torch  # heavy: loaded when a function is first evaluated

    return torch


def _sympy() -> Any:
    import sympy  # heavy: loaded when a function is first built in SymPy

    return sympy


def _tiny(x: Any) -> float:
    """A threshold far below any value a user meets, yet keeping 1/x and log(x) finite."""
    return math.sqrt(_torch().finfo(x.dtype).tiny) if x.is_floating_point() else 1e-150


def _big(x: Any) -> float:
    """Largest argument of exp that stays finite in x's dtype."""
    return math.log(_torch().finfo(x.dtype).max) if x.is_floating_point() else 700.0


def _all_real(x: Any) -> Any:
    return _torch().isfinite(x)


def _between(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Callable:
    def mask(x: Any) -> Any:
        left = x > lo if lo_open else x >= lo
        right = x < hi if hi_open else x <= hi
        return left & right & _torch().isfinite(x)

    return mask


def _nonzero(x: Any) -> Any:
    return (x != 0) & _torch().isfinite(x)


# ---- singularity-safe torch variants -------------------------------------------------------


def _safe_recip_arg(x: Any) -> Any:
    """x moved away from 0 by a tiny threshold (keeps its sign; 0 goes to +tiny)."""
    t = _torch()
    tiny = _tiny(x)
    sign = t.where(x < 0, -t.ones_like(x), t.ones_like(x))
    return t.where(x.abs() < tiny, sign * tiny, x)


def _safe_log(x: Any) -> Any:
    t = _torch()
    return t.log(t.clamp(x, min=_tiny(x)))


def _safe_sqrt(x: Any) -> Any:
    t = _torch()
    return t.sqrt(t.clamp(x, min=_tiny(x)))


def _safe_exp(x: Any) -> Any:
    t = _torch()
    return t.exp(t.clamp(x, max=_big(x)))


def _safe_tan(x: Any) -> Any:
    t = _torch()
    return t.sin(x) / _safe_recip_arg(t.cos(x))


def _unit_clamp(x: Any, open_: bool = False) -> Any:
    t = _torch()
    eps = t.finfo(x.dtype).eps if (open_ and x.is_floating_point()) else 0.0
    return t.clamp(x, -1 + eps, 1 - eps)


def _safe_cosh(x: Any) -> Any:
    t = _torch()
    b = _big(x)
    return t.cosh(t.clamp(x, -b, b))


def _safe_sinh(x: Any) -> Any:
    t = _torch()
    b = _big(x)
    return t.sinh(t.clamp(x, -b, b))
