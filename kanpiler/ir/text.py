"""The IR's text form: an ``Expr`` printed with minimal parentheses.

In: an ``Expr``. Out: a string that parses back to the same tree (``parse(to_string(e)) == e``
for parsed trees). Stage: ir (``Expr.__repr__`` and ``str`` use it, so it sits below the node
module and needs only ``ops``).

>>> from kanpiler import parse
>>> to_string(parse("(a - b) / (c*d)**2"))
'(a - b)/(c*d)**2'
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import KanpilerError
from .ops import Op, walk

if TYPE_CHECKING:
    from .nodes import Expr

#: printed formulas longer than this are refused (a shared subtree repeated exponentially
#: often would otherwise print forever)
MAX_PRINT_CHARS = 10_000_000

# binding strength of what a printed piece is, loosest first
ADD, MUL, UNARY, POW, ATOM = range(5)


def to_string(expr: Expr) -> str:
    """Print ``expr`` with minimal parentheses; ``parse(to_string(e)) == e`` for parsed trees.

    >>> from kanpiler import parse
    >>> to_string(parse("-x**2 + 2^3^2 - y/z"))
    '-x**2 + 2**3**2 - y/z'
    """
    done: dict[Expr, tuple[str, int]] = {}
    for node in walk(expr):
        text, level = _print_node(node, done)
        if len(text) > MAX_PRINT_CHARS:
            raise KanpilerError(f"formula too long to print (over {MAX_PRINT_CHARS} characters)")
        done[node] = (text, level)
    return done[expr][0]


def _wrap(piece: tuple[str, int], level: int) -> str:
    text, own = piece
    return text if own >= level else f"({text})"


def _number(value: Any) -> tuple[str, int]:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}", MUL
    text = repr(value)
    return text, (UNARY if value < 0 else ATOM)


def _print_node(node: Expr, done: dict[Expr, tuple[str, int]]) -> tuple[str, int]:
    op = node.op
    if op is Op.CONST:
        return _number(node.arg)
    if op is Op.NAMED or op is Op.VAR:
        return node.arg, ATOM
    if op is Op.CALL:
        return f"{node.arg}({', '.join(done[a][0] for a in node.args)})", ATOM
    if op is Op.POW:
        base, exponent = (done[a] for a in node.args)
        return f"{_wrap(base, ATOM)}**{_wrap(exponent, UNARY)}", POW
    if op is Op.NEG:
        return "-" + _wrap(done[node.args[0]], UNARY), UNARY
    if op is Op.RECIP:
        return "1/" + _wrap(done[node.args[0]], UNARY), MUL
    if op is Op.MUL:
        return _print_product(node, done), MUL
    return _print_sum(node, done), ADD


def _print_product(node: Expr, done: dict[Expr, tuple[str, int]]) -> str:
    first, *rest = node.args
    if first.op is Op.CONST and first.arg == -1 and rest:
        # a canonical sign: -1*x*y reads as -x*y (same value)
        return "-" + _print_product_from(rest, done)
    return _print_product_from(node.args, done)


def _print_product_from(factors: Any, done: dict[Expr, tuple[str, int]]) -> str:
    first, *rest = factors
    # a leading fraction needs no parentheses: 1/2*x is (1/2)*x
    parts = [_wrap(done[first], MUL if first.op is Op.CONST else UNARY)]
    for f in rest:
        if f.op is Op.RECIP:
            parts.append("/" + _wrap(done[f.args[0]], UNARY))
        else:
            parts.append("*" + _wrap(done[f], UNARY))
    return "".join(parts)


def _print_sum(node: Expr, done: dict[Expr, tuple[str, int]]) -> str:
    first, *rest = node.args
    parts = [_wrap(done[first], MUL)]
    for t in rest:
        negated = _negated(t, done)
        if negated is not None:
            parts.append(" - " + negated)
        else:
            parts.append(" + " + _wrap(done[t], MUL))
    return "".join(parts)


def _negated(term: Expr, done: dict[Expr, tuple[str, int]]) -> str | None:
    """``t`` printed as what follows ' - ' in a sum, if ``term`` is a negation of some ``t``."""
    if term.op is Op.NEG:
        return _wrap(done[term.args[0]], MUL)
    if term.op is Op.CONST and term.arg < 0:
        return _number(-term.arg)[0]
    if term.op is Op.MUL and term.args[0].op is Op.CONST and term.args[0].arg < 0:
        coef, *rest = term.args
        if coef.arg == -1:
            return _print_product_from(rest, done)
        return _number(-coef.arg)[0] + "*" + _print_product_from(rest, done)
    return None


__all__ = ["to_string", "MAX_PRINT_CHARS"]
