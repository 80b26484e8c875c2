"""SymPy to IR: read a SymPy expression into the raw IR the passes take.

In: a SymPy expression. Out: an ``Expr`` (``sqrt`` arrives as a power, ``Min``/``Max`` nest).
Stage: parser (it reads an outside form into IR, as ``parser`` reads text). SymPy is
imported on first use only.

>>> import sympy
>>> from_sympy(sympy.Symbol("x") / 2 + 1)
Expr('1 + 1/2*x')
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from . import library
from .errors import ConfigError, UnsupportedError
from .ir import Expr, Op, const, is_name, named, var


def _sympy() -> Any:
    import sympy  # heavy, optional at import time: loaded on first use

    return sympy


def _sympy_functions() -> dict[Any, str]:
    return {cls: fn.name for cls, fn in library.sympy_inverse().items()}


def from_sympy(sympy_expr: Any) -> Expr:
    """Read a SymPy expression into IR (iteratively; ``sqrt`` arrives as a power).

    >>> import sympy
    >>> from_sympy(sympy.sqrt(sympy.Symbol("x")) * sympy.pi)
    Expr('pi*x**(1/2)')
    """
    sympy = _sympy()
    if not isinstance(sympy_expr, sympy.Basic):
        raise ConfigError(f"from_sympy needs a SymPy expression, got {type(sympy_expr).__name__}")
    # keyed by id(): hashing a deep SymPy tree the first time recurses through all of it
    done: dict[int, Expr] = {}
    stack: list[tuple[Any, bool]] = [(sympy_expr, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded or not node.args or _is_atomic(node):
            args = [done[id(a)] for a in node.args] if expanded else []
            done[id(node)] = _from_sympy_node(node, args)
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if id(a) not in done)
    return done[id(sympy_expr)]


def _is_atomic(node: Any) -> bool:
    return node.is_Atom or node.is_Number or node.is_NumberSymbol


def _from_sympy_node(node: Any, args: list[Expr]) -> Expr:
    sympy = _sympy()
    if node.is_Integer:
        return const(int(node))
    if node.is_Rational:
        return const(Fraction(int(node.p), int(node.q)))
    if node.is_Float:
        value = float(node)
        if not math.isfinite(value):
            raise UnsupportedError(f"SymPy number {node} is not finite")
        return const(value)
    if node is sympy.pi or node is sympy.E:
        return named("pi" if node is sympy.pi else "e")
    if node.is_NumberSymbol:  # EulerGamma, GoldenRatio, ...: their float value
        return const(float(node))
    if node.is_Symbol:
        return _symbol(node)
    if node.is_Add:
        return Expr(Op.ADD, tuple(args))
    if node.is_Mul:
        return Expr(Op.MUL, tuple(args))
    if node.is_Pow:
        return Expr(Op.POW, tuple(args))
    if node.func in (sympy.re, sympy.conjugate):  # variables are real: re(x) = x
        return args[0]
    if node.func is sympy.im:  # im(x) = 0 for real x
        return const(0)
    name = _sympy_functions().get(node.func)
    if name is not None:
        return _call(name, args)
    raise UnsupportedError(
        f"SymPy {node.func.__name__} ({_short(node)}) is not supported; kanpiler reads sums, "
        f"products, powers, real numbers, pi, E, symbols and the functions "
        f"{', '.join(library.names())}"
    )


def _call(name: str, args: list[Expr]) -> Expr:
    arity = library.FUNCTIONS[name].arity
    if arity == 1 and len(args) == 1:
        return Expr(Op.CALL, tuple(args), name)
    if arity == 2 and len(args) >= 2:  # SymPy's Min/Max are n-ary: nest them
        out = args[0]
        for a in args[1:]:
            out = Expr(Op.CALL, (out, a), name)
        return out
    raise UnsupportedError(f"SymPy call of {name} with {len(args)} arguments is not supported")


def _symbol(node: Any) -> Expr:
    if not is_name(node.name):
        raise UnsupportedError(
            f"SymPy symbol name {node.name!r} is not a valid kanpiler variable name "
            "(letters, digits and '_', not starting with a digit)"
        )
    return var(node.name)


def _short(node: Any, limit: int = 60) -> str:
    text = str(node)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["from_sympy"]
