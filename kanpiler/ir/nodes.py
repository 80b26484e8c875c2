"""The IR node: one tiny, frozen, hash-consed type, its builders and rebuilding traversal.

In: builders (``var``, ``const``, ``call``...) or operator overloads. Out: interned ``Expr``
nodes; ``str``/``repr`` use the IR's own text form (``ir.text``). Stage: ir.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

from .. import library
from ..errors import KanpilerError
from .ops import Number, Op, walk
from .text import to_string


class Expr:
    """An immutable, interned expression node. Build with the helpers below."""

    __slots__ = ("op", "args", "arg", "depth", "_hash", "__weakref__")
    _interned: weakref.WeakValueDictionary[tuple, Expr] = weakref.WeakValueDictionary()

    op: Op
    args: tuple[Expr, ...]
    arg: Any
    depth: int
    _hash: int

    def __new__(cls, op: Op, args: tuple[Expr, ...] = (), arg: Any = None) -> Expr:
        args = tuple(args)
        key = (op, args, type(arg), arg)
        node = cls._interned.get(key)
        if node is not None:
            return node
        node = object.__new__(cls)
        object.__setattr__(node, "op", op)
        object.__setattr__(node, "args", args)
        object.__setattr__(node, "arg", arg)
        object.__setattr__(node, "depth", 1 + max((a.depth for a in args), default=0))
        object.__setattr__(node, "_hash", hash(key))
        cls._interned[key] = node
        return node

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Expr is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Expr is immutable")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __reduce__(self) -> tuple:
        return (Expr, (self.op, self.args, self.arg))

    def __copy__(self) -> Expr:
        return self

    def __deepcopy__(self, memo: dict) -> Expr:
        return self

    def __repr__(self) -> str:
        try:
            return f"Expr({to_string(self)!r})"
        except Exception:  # printing must never break repr
            return f"Expr({self.op.name}, depth={self.depth})"

    def __str__(self) -> str:
        return to_string(self)

    # -- operator overloads (build raw, sugared trees like the parser does) --
    def __add__(self, other: Any) -> Expr:
        return Expr(Op.ADD, (self, as_expr(other)))

    def __radd__(self, other: Any) -> Expr:
        return Expr(Op.ADD, (as_expr(other), self))

    def __sub__(self, other: Any) -> Expr:
        return Expr(Op.ADD, (self, Expr(Op.NEG, (as_expr(other),))))

    def __rsub__(self, other: Any) -> Expr:
        return Expr(Op.ADD, (as_expr(other), Expr(Op.NEG, (self,))))

    def __mul__(self, other: Any) -> Expr:
        return Expr(Op.MUL, (self, as_expr(other)))

    def __rmul__(self, other: Any) -> Expr:
        return Expr(Op.MUL, (as_expr(other), self))

    def __truediv__(self, other: Any) -> Expr:
        return Expr(Op.MUL, (self, Expr(Op.RECIP, (as_expr(other),))))

    def __rtruediv__(self, other: Any) -> Expr:
        return Expr(Op.MUL, (as_expr(other), Expr(Op.RECIP, (self,))))

    def __pow__(self, other: Any) -> Expr:
        return Expr(Op.POW, (self, as_expr(other)))

    def __rpow__(self, other: Any) -> Expr:
        return Expr(Op.POW, (as_expr(other), self))

    def __neg__(self) -> Expr:
        return Expr(Op.NEG, (self,))

    def __pos__(self) -> Expr:
        return self

    # -- queries --
    @property
    def is_const(self) -> bool:
        return self.op is Op.CONST

    @property
    def value(self) -> float:
        """Numeric value of a CONST or NAMED node."""
        if self.op is Op.CONST:
            return float(self.arg)
        if self.op is Op.NAMED:
            return library.CONSTANTS[self.arg]
        raise KanpilerError(f"{self.op.name} node has no constant value")


# ---- builders -------------------------------------------------------------------------------


def const(value: Number) -> Expr:
    """A numeric constant (int, float or Fraction; finite; -0.0 becomes 0.0)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, Fraction) and value.denominator == 1:
        value = int(value)
    if isinstance(value, int) and type(value) is not int:
        value = int(value)
    if isinstance(value, float):
        value = float(value)  # np.float64 and other float subclasses intern as plain floats
        if not math.isfinite(value):
            raise KanpilerError(f"constant must be finite, got {value!r}")
        if value == 0.0:
            value = 0.0  # drop the sign of -0.0
    elif not isinstance(value, (int, Fraction)):
        raise KanpilerError(f"constant must be a number, got {type(value).__name__}")
    return Expr(Op.CONST, (), value)


def named(name: str) -> Expr:
    """A named constant of ``library.CONSTANTS`` (``pi``, ``e``; ``E`` is stored as ``e``)."""
    canon = library.CONSTANT_NAMES.get(name)
    if canon is None:
        raise KanpilerError(f"unknown named constant {name!r}; known: pi, e")
    return Expr(Op.NAMED, (), canon)


def var(name: str) -> Expr:
    """A variable."""
    return Expr(Op.VAR, (), str(name))


def call(name: str, *args: Any) -> Expr:
    """A library function call; ``name`` may be an alias (stored canonical)."""
    canon = library.canonical(name)
    if canon is None:
        raise KanpilerError(f"unknown function {name!r}")
    fn = library.FUNCTIONS[canon]
    if len(args) != fn.arity:
        raise KanpilerError(f"{canon!r} takes {fn.arity} argument(s), got {len(args)}")
    return Expr(Op.CALL, tuple(as_expr(a) for a in args), canon)


def add(*terms: Any) -> Expr:
    return Expr(Op.ADD, tuple(as_expr(t) for t in terms))


def mul(*factors: Any) -> Expr:
    return Expr(Op.MUL, tuple(as_expr(f) for f in factors))


def pow_(base: Any, exponent: Any) -> Expr:
    return Expr(Op.POW, (as_expr(base), as_expr(exponent)))


def neg(x: Any) -> Expr:
    return Expr(Op.NEG, (as_expr(x),))


def recip(x: Any) -> Expr:
    return Expr(Op.RECIP, (as_expr(x),))


def as_expr(x: Any) -> Expr:
    """Coerce a number or an ``Expr`` to an ``Expr``."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, (int, float, Fraction)):
        return const(x)
    raise KanpilerError(f"cannot use {type(x).__name__} as an expression")


# ---- traversal (iterative: safe at any depth) -----------------------------------------------


def transform(root: Expr, rule: Callable[[Expr, tuple[Expr, ...]], Expr]) -> Expr:
    """Rebuild ``root`` bottom-up: ``rule(node, new_args)`` returns the node's replacement.

    ``new_args`` are the already-transformed children. Shared subtrees are transformed once.
    Iterative, so it works on trees of any depth.
    """
    done: dict[Expr, Expr] = {}
    for node in walk(root):
        new_args = tuple(done[a] for a in node.args)
        done[node] = rule(node, new_args)
    return done[root]


def rebuild(node: Expr, args: Iterable[Expr]) -> Expr:
    """The same operation as ``node`` on new children (the node itself if they are equal)."""
    args = tuple(args)
    if args == node.args:
        return node
    return Expr(node.op, args, node.arg)


def variables(root: Expr) -> list[str]:
    """Variable names in order of first appearance (left to right)."""
    out: dict[str, None] = {}
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op is Op.VAR:
            out.setdefault(node.arg, None)
        stack.extend(reversed(node.args))
    return list(out)


#: a variable name of the formula language (the grammar's NAME token)
NAME_PATTERN = re.compile(r"[^\W\d]\w*")


def is_name(name: str) -> bool:
    """Whether ``name`` is a valid variable name of the formula language.

    >>> is_name("x_1"), is_name("1x"), is_name("a b")
    (True, False, False)
    """
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def count_nodes(root: Expr) -> int:
    """Number of distinct nodes (shared subtrees counted once)."""
    return sum(1 for _ in walk(root))


__all__ = [
    "Expr",
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
    "NAME_PATTERN",
]
