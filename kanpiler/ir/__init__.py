"""The expression IR: one tiny, frozen, hash-consed node type, and its text form.

In: builders (``var``, ``const``, ``call``...) or operator overloads. Out: ``Expr`` nodes.
Stage: ir, below every other stage but errors and library — the parser produces it, passes
rewrite it, lowering reads it and the converter produces it again. Modules: ``ops`` (``Op``,
``walk``), ``text`` (``to_string``, used by ``repr``), ``nodes`` (``Expr``, builders).

Nodes are interned: two structurally equal nodes are the same object, so ``==`` and ``hash``
are O(1) and never recurse, however deep the tree. ``walk`` and ``transform`` are iterative,
so passes written with them work on trees of any depth.

Operations (``Op``):

=========  ==========================  ===============================================
op         ``args``                    ``arg``
=========  ==========================  ===============================================
CONST      ()                          ``int``, ``float`` or ``Fraction`` (finite)
NAMED      ()                          a name of ``library.CONSTANTS`` (``"pi"``, ``"e"``)
VAR        ()                          the variable's name
ADD        (a, b, ...) n-ary           None
MUL        (a, b, ...) n-ary           None
POW        (base, exponent)            None
CALL       (x,) or (x, y)              canonical library name (``"sin"``, ``"max"``)
NEG        (a,)                        None — sugar for ``-1*a``
RECIP      (a,)                        None — sugar for ``a**-1`` (a divisor in a product)
=========  ==========================  ===============================================

The parser writes ``a - b`` as ``ADD(a, NEG(b))`` and ``a / b`` as ``MUL(a, RECIP(b))``; the
``desugar`` pass removes NEG, RECIP and two-argument ``min``/``max``, leaving CONST, NAMED, VAR,
ADD, MUL, POW and one-argument CALLs; ``expand_variable_powers`` and ``fold_numeric`` then leave
no NAMED node and only constant exponents: what lowering reads.

>>> x = var("x")
>>> x - 1 / x
Expr('x - 1/x')
"""

from __future__ import annotations

from .nodes import (
    NAME_PATTERN,
    Expr,
    add,
    as_expr,
    call,
    const,
    count_nodes,
    is_name,
    mul,
    named,
    neg,
    pow_,
    rebuild,
    recip,
    transform,
    var,
    variables,
)
from .ops import LEAVES, SUGAR, Number, Op, walk
from .text import to_string

__all__ = [
    "Op",
    "Expr",
    "Number",
    "LEAVES",
    "SUGAR",
    "NAME_PATTERN",
    "const",
    "named",
    "var",
    "call",
    "add",
    "mul",
    "pow_",
    "neg",
    "recip",
    "as_expr",
    "walk",
    "transform",
    "rebuild",
    "variables",
    "count_nodes",
    "is_name",
    "to_string",
]
