"""The IR's operations and its traversal, below the node type.

In: nothing but node-like objects (``op``, ``args``). Out: ``Op``, the operation sets and
``walk``, an iterative post-order traversal. Stage: ir (the base both ``text`` and ``nodes``
build on, so the text form needs no import of the node module).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .nodes import Expr

Number = int | float | Fraction


class Op(Enum):
    CONST = "const"
    NAMED = "named"
    VAR = "var"
    ADD = "add"
    MUL = "mul"
    POW = "pow"
    CALL = "call"
    NEG = "neg"
    RECIP = "recip"

    def __repr__(self) -> str:
        return f"Op.{self.name}"


LEAVES = frozenset({Op.CONST, Op.NAMED, Op.VAR})
SUGAR = frozenset({Op.NEG, Op.RECIP})


def walk(root: Expr) -> Iterator[Expr]:
    """Every distinct node once, children before parents (post-order), without recursion."""
    seen: set[int] = set()
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in seen:
            continue
        if expanded or not node.args:
            seen.add(id(node))
            yield node
            continue
        stack.append((node, True))
        for child in reversed(node.args):
            if id(child) not in seen:
                stack.append((child, False))


__all__ = ["Op", "LEAVES", "SUGAR", "Number", "walk"]
