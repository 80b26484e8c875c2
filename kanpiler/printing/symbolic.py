"""IR to SymPy: the bridge the converter, the CLI and users read formulas through.

In: an ``Expr``, formula text, a SymPy expression or a number. Out: one SymPy expression in
plain ``Symbol``s (``to_sympy``). A model is refused with a pointer to ``kanpiler.formula``.
Stage: printing (above the parser, which it uses for text). SymPy is imported on first use.

>>> to_sympy("sin(x)*exp(y)")
exp(y)*sin(x)
"""

from __future__ import annotations

import sys
from fractions import Fraction
from typing import Any

from .. import library
from ..errors import ConfigError, UnsupportedError
from ..ir import Expr, Op, const, transform
from ..parser import parse

#: trees deeper than this are not handed to SymPy, whose algorithms recurse
MAX_SYMPY_DEPTH = 600
#: exact powers of numbers above this many bits are refused (SymPy would spend minutes and
#: gigabytes on 2**10**10)
MAX_EXACT_BITS = 4096


def _sympy() -> Any:
    import sympy  # heavy, optional at import time: loaded on first conversion

    return sympy


def to_sympy(obj: Any, variables: Any = None) -> Any:
    """One SymPy expression of ``obj``, in plain ``sympy.Symbol``s.

    ``obj`` may be an ``Expr``, formula text (parsed with ``variables``), a SymPy expression
    (returned as is) or a number. A model is refused with a ``ConfigError`` pointing at
    ``kanpiler.formula(model)``, which reads a trained network back (one expression per output).

    >>> to_sympy("x**2/2 + pi")
    x**2/2 + pi
    """
    sympy = _sympy()
    if isinstance(obj, Expr):
        return expr_to_sympy(obj)
    if isinstance(obj, str):
        return expr_to_sympy(parse(obj, variables))
    if isinstance(obj, sympy.Basic):
        return obj
    if isinstance(obj, (int, float, Fraction)) and not isinstance(obj, bool):
        return expr_to_sympy(const(obj))
    if _is_torch_module(obj):
        raise ConfigError(
            f"kanpiler.to_sympy takes one formula, not a {type(obj).__name__}; read a model "
            "back with kanpiler.formula(model) (a list: one SymPy expression per output)"
        )
    raise ConfigError(
        f"cannot convert a {type(obj).__name__} to SymPy; "
        "give an Expr, formula text, a SymPy expression or a number"
    )


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def expr_to_sympy(expr: Expr) -> Any:
    """The SymPy expression of one ``Expr`` (iteratively; refuses trees SymPy would recurse on)."""
    sympy = _sympy()

    if expr.depth > MAX_SYMPY_DEPTH:
        raise UnsupportedError(
            f"formula too deep for SymPy ({expr.depth} levels, at most {MAX_SYMPY_DEPTH})"
        )
    leaves = {
        Op.CONST: lambda n: _sympy_number(n.arg),
        Op.NAMED: lambda n: sympy.pi if n.arg == "pi" else sympy.E,
        Op.VAR: lambda n: sympy.Symbol(n.arg),
    }
    inner = {
        Op.ADD: lambda n, a: sympy.Add(*a),
        Op.MUL: lambda n, a: sympy.Mul(*a),
        Op.POW: lambda n, a: _sympy_pow(*a),
        Op.NEG: lambda n, a: -a[0],
        Op.RECIP: lambda n, a: sympy.Pow(a[0], -1),
        Op.CALL: lambda n, a: library.get(n.arg).to_sympy(*a),
    }

    def rule(node: Expr, args: tuple[Any, ...]) -> Any:
        if node.op in leaves:
            return leaves[node.op](node)
        try:
            return inner[node.op](node, args)
        except (ValueError, TypeError) as err:  # e.g. Min(0, zoo) is not comparable
            raise UnsupportedError(f"SymPy cannot build {args}: {err}") from None

    return transform(expr, rule)


def _sympy_pow(base: Any, exponent: Any) -> Any:
    """``base**exponent``; refuses exact numbers SymPy would spend minutes and gigabytes on."""
    sympy = _sympy()
    if base.is_Rational and exponent.is_Integer and base not in (0, 1, -1):
        bits = abs(int(exponent)) * max(int(base.p).bit_length(), int(base.q).bit_length())
        if bits > MAX_EXACT_BITS:
            raise UnsupportedError(
                f"the exact number {base}**{_short(exponent)} is too large for SymPy "
                f"(about {bits} bits, at most {MAX_EXACT_BITS})"
            )
    return sympy.Pow(base, exponent)


def _sympy_number(value: Any) -> Any:
    sympy = _sympy()

    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, int):
        return sympy.Integer(value)
    return sympy.Float(value)


def _short(node: Any, limit: int = 60) -> str:
    text = str(node)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["to_sympy", "expr_to_sympy", "MAX_SYMPY_DEPTH"]
