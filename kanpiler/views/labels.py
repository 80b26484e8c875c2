"""The one edge-label formatter of kanpiler's drawings.

In: an edge's function and affine parameters ``c*fn(a*x+b)+d`` (or a converter graph's edge
attributes). Out: a short label such as ``2·sin(3x+1)+0.5``, ``(x-1)^2``, ``spline + exp(x)``.
Stage: views (pure text; no Graphviz).

>>> edge_formula("sin", 3.0, 1.0, 2.0, 0.5)
'2·sin(3x+1)+0.5'
>>> edge_label({"kind": "both", "fn": "exp", "a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0})
'spline + exp(x)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import library
from ..layout import fmt


def affine_text(a: float, b: float) -> str:
    """``a*x + b`` compactly: ``x``, ``3x``, ``-x+1``, ``0.5x-2``."""
    lead = "x" if a == 1 else "-x" if a == -1 else f"{fmt(a)}x"
    return lead if b == 0 else f"{lead}{'+' if b > 0 else '-'}{fmt(abs(b))}"


def edge_formula(fn: str, a: float = 1.0, b: float = 0.0, c: float = 1.0, d: float = 0.0) -> str:
    """``c*fn(a*x+b)+d`` as a short label: ``2·sin(3x+1)+0.5``, ``(x-1)^2``, ``-x``; an edge
    that passes its input on unchanged gets ``""``."""
    rec = library.get(fn)
    p = rec.power
    if p == 1.0:
        text = affine_text(a * c, b * c)
        if text == "x" and d == 0:
            return ""
    else:
        inner = affine_text(a, b)
        if p is None:
            body = f"{rec.name}({inner})"
        else:
            body = (inner if inner == "x" else f"({inner})") + f"^{fmt(p)}"
        text = body if c == 1 else f"-{body}" if c == -1 else f"{fmt(c)}·{body}"
    if d:
        text += f"{'+' if d > 0 else '-'}{fmt(abs(d))}"
    return text


def edge_label(attrs: Mapping[str, Any]) -> str:
    """The label of a converter graph's KAN edge: ``spline``, ``2·sin(3x+1)``,
    ``spline + exp(x)``, or a sum of terms (``exp(x) + x^2+1``), through :func:`edge_formula`."""
    if "fn" not in attrs:
        return "spline"
    if "terms" in attrs:
        parts = [edge_formula(fn, a, b, c) or "x" for fn, a, b, c in attrs["terms"]]
        d = attrs.get("d", 0.0)
        text = " + ".join(parts) + (f"{'+' if d > 0 else '-'}{fmt(abs(d))}" if d else "")
    else:
        text = edge_formula(attrs["fn"], *(attrs[k] for k in "abcd")) or "x"
    return f"spline + {text}" if attrs.get("kind") == "both" else text


__all__ = ["affine_text", "edge_formula", "edge_label"]
