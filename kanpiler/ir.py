"""The expression IR: one tiny, frozen, hash-consed node type.

In: builders (``var``, ``const``, ``call``...) or operator overloads. Out: ``Expr`` nodes.
Stage: shared by every stage — the parser produces it, passes rewrite it, the compiler lowers
it and the converter produces it again.

Nodes are interned: two structurally equal nodes are the same object, so ``==`` and ``hash``
are O(1) and never recurse, however deep the tree. ``walk`` and ``transform`` are iterative,
so passes written with them work on trees of any depth.

Operations (``Op``):

=========  ==========================  ===============================================
op         ``args``                    ``arg``
=========  ==========================  ===============================================
CONST      ()                          ``int``, ``float`` or ``Fraction`` (finite)
NAMED      ()                          ``"pi"`` or ``"e"`` (a named constant)
VAR        ()                          the variable's name
ADD        (a, b, ...) n-ary           None
MUL        (a, b, ...) n-ary           None
POW        (base, exponent)            None
CALL       (x,) or (x, y)              canonical library name (``"sin"``, ``"max"``)
NEG        (a,)                        None — sugar for ``-1*a``
RECIP      (a,)                        None — sugar for ``a**-1`` (a divisor in a product)
=========  ==========================  ===============================================

The parser writes ``a - b`` as ``ADD(a, NEG(b))`` and ``a / b`` as ``MUL(a, RECIP(b))``; the
``desugar`` pass removes NEG and RECIP, leaving CONST, NAMED, VAR, ADD, MUL, POW and CALL.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from fractions import Fraction
from typing import Any

from .errors import KanpilerError

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
NAMED_CONSTANTS = {"pi": math.pi, "e": math.e}


class Expr:
    """An immutable, interned expression node. Build with the helpers below."""

    __slots__ = ("op", "args", "arg", "depth", "_hash", "__weakref__")
    _interned: weakref.WeakValueDictionary[tuple, Expr] = weakref.WeakValueDictionary()

    op: Op
    args: tuple[Expr, ...]
    arg: Any
    depth: int

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
            from .printing import to_string

            return f"Expr({to_string(self)!r})"
        except Exception:  # printing must never break repr
            return f"Expr({self.op.name}, depth={self.depth})"

    def __str__(self) -> str:
        from .printing import to_string

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
            return NAMED_CONSTANTS[self.arg]
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
    """A named constant: ``pi`` or ``e``."""
    if name == "E":
        name = "e"
    if name not in NAMED_CONSTANTS:
        raise KanpilerError(f"unknown named constant {name!r}; known: pi, e")
    return Expr(Op.NAMED, (), name)


def var(name: str) -> Expr:
    """A variable."""
    return Expr(Op.VAR, (), str(name))


def call(name: str, *args: Any) -> Expr:
    """A library function call; ``name`` may be an alias (stored canonical)."""
    from . import library

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


def count_nodes(root: Expr) -> int:
    """Number of distinct nodes (shared subtrees counted once)."""
    return sum(1 for _ in walk(root))


__all__ = [
    "Op",
    "Expr",
    "Number",
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
]
