"""Lowering, the expression half: canonical IR -> interned network nodes.

In: one ``Expr`` per output, as the passes leave it (``canonicalize``,
``expand_variable_powers``, ``fold_numeric``): CONST, VAR, ADD, MUL, POW with a constant
exponent and one-argument CALLs, every variable-free subtree already one CONST. Out: a
``Layout`` computing them exactly (``network`` places the nodes). Stage: lowering.

Every expression ``e`` gets a *handle* ``(node, scale, offset)`` meaning ``e = scale*node +
offset``, so affine arithmetic never costs a node, and a list of *terms* ``c*f(a*src + b)`` plus a
constant, so a sum feeds its parts straight into the node that consumes it. A product of two or
more non-constant factors is a mult node whose subnodes are the factors' terms. Nodes are
interned (equal nodes are one node), handles are memoised per interned ``Expr``, so a repeated
subexpression is computed once. What a function allows (``sqrt(u)**p = u**(p/2)``,
``exp(u)**p = exp(p*u)``) is read from its library record.

>>> from kanpiler import ir
>>> x, y = ir.var("x"), ir.var("y")
>>> lay = lower_canonical(ir.call("sin", x) * ir.call("exp", y))
>>> lay.depth, lay.width
(1, [[2, 0], [0, 1]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .. import library
from ..errors import CompileError
from ..ir import Expr, Op, walk
from ..ir import variables as ir_variables
from ..layout import MULT, Layout
from .network import (
    ID,
    Handle,
    Network,
    Sub,
    Term,
    normalise,
    output_nodes,
    place,
    scaled,
    to_layout,
)

#: a small power of a sum of several terms, needed as a node (a function's argument, a factor,
#: an output), is a mult node with that many copies of the terms: exp((x+y)**2) takes two
#: layers instead of three. Inside a sum it stays one x^2 edge.
SQUARE_AS_PRODUCT = (2.0, 3.0)

#: operations lowering takes (what the passes leave)
PRIMITIVES = frozenset({Op.CONST, Op.VAR, Op.ADD, Op.MUL, Op.POW, Op.CALL})


def _const_call(name: str, *args: float) -> float:
    import torch

    xs = [torch.tensor(a, dtype=torch.float64) for a in args]
    return float(library.get(name).torch_fn(*xs))


def _const_pow(base: float, expo: float) -> float:
    try:
        return math.pow(base, expo)
    except (ValueError, ZeroDivisionError, OverflowError):
        return math.nan


def _describe(e: Expr) -> str:
    try:
        return f"'{e}'"
    except Exception:  # printing may be unavailable; the op name still says what it is
        return f"a {e.op.name} expression"


class _Lowerer(Network):
    """The expression half: handles, terms and one rule per operation."""

    def __init__(self, variables: Sequence[str]):
        super().__init__(variables)
        self.val: dict[Expr, float | None] = {}
        self.terms: dict[Expr, Sub] = {}
        self.handles: dict[Expr, Handle] = {}

    # -- expressions -------------------------------------------------------------------------
    def visit(self, e: Expr) -> None:
        """Fill ``val[e]`` (a float for a constant) or ``terms[e]``; children first."""
        op, args = e.op, e.args
        if op is Op.CONST:
            try:
                self.val[e] = float(e.arg)
            except OverflowError:
                raise CompileError(
                    f"the constant {_describe(e)[:60]} does not fit a float64 parameter"
                ) from None
            return
        if op is Op.VAR:
            if e.arg not in self.inputs:
                raise CompileError(
                    f"variable {e.arg!r} is not among the inputs {list(self.inputs)}"
                )
            self.val[e] = None
            self.terms[e] = Sub((Term(self.inputs[e.arg], ID, 1.0, 0.0, 1.0),), 0.0)
            return
        vals = [self.val[a] for a in args]
        if op not in PRIMITIVES or all(v is not None for v in vals):
            raise CompileError(
                f"cannot lower {_describe(e)}: lowering takes the IR the passes leave "
                "(kanpiler.lower runs them); found an unfolded or sugared "
                f"{op.name} node"
            )
        self.val[e] = None
        result = _RULES[op](self, e, vals)
        if isinstance(result, float):  # e.g. 0*x: a constant after all
            self.val[e] = result
        else:
            self.terms[e] = result

    def handle(self, e: Expr) -> Handle:
        """``(node, scale, offset)`` with ``e = scale*node + offset`` (node None: a constant)."""
        h = self.handles.get(e)
        if h is None:
            h = self.handles[e] = self._handle(e)
            node = h.node
            if node is not None and node.expr is None and (h.scale, h.offset) == (1.0, 0.0):
                node.expr = e  # the node computes e itself: its label
        return h

    def _handle(self, e: Expr) -> Handle:
        v = self.val[e]
        if v is not None:
            return Handle(None, 0.0, v)
        if e.op is Op.VAR:
            return Handle(self.inputs[e.arg], 1.0, 0.0)
        if e.op in (Op.MUL, Op.POW):  # a product, or a power that is one (see factors)
            k, subs = self.split_product(e) if e.op is Op.MUL else self.factors([(e, 1.0)], e)
            if len(subs) >= 2:
                return self.product(k, subs)
        terms, d = normalise(self.terms[e].terms)
        return self.handle_of_terms(terms, d + self.terms[e].constant)

    def handle_of_terms(self, terms: tuple[Term, ...], d: float) -> Handle:
        if not terms:
            return Handle(None, 0.0, d)
        if len(terms) == 1 and terms[0].fn == ID:
            return Handle(terms[0].src, terms[0].c, d)
        return Handle(self.node_from([Sub(terms, 0.0)]), 1.0, d)

    def split_product(self, e: Expr) -> tuple[float, list[Sub]]:
        """``e = k * product(subs)`` for a product ``e`` (see ``factors``)."""
        return self.factors([(a, 1.0) for a in e.args], e)

    def factors(self, seeds: list[tuple[Expr, float]], e: Expr) -> tuple[float, list[Sub]]:
        """``product(a**p for a, p in seeds) = k * product(subs)``. Nested products,
        and powers are flattened where that is exact (``(x*y)**-2``: integer powers
        distribute), so ``1/((x - 1)*y**2)`` is one mult node."""
        k, subs, stack = 1.0, [], list(reversed(seeds))
        while stack:
            a, p = stack.pop()
            v, integer = self.val[a], float(p).is_integer()
            q = self.val[a.args[1]] if a.op is Op.POW else None
            fn = library.FUNCTIONS[a.arg] if a.op is Op.CALL else None
            if fn is not None and p != 1.0 and fn.power_form is not None:
                q = fn.power_form  # sqrt(u)**p = u**(p/2)
            if p == 0.0:
                continue
            if v is not None:
                k *= v if p == 1.0 else _const_pow(v, p)
            elif a.op is Op.MUL and integer:
                stack.extend((b, p) for b in reversed(a.args))
            elif q is not None and (integer or not float(q).is_integer()):
                stack.append((a.args[0], p * q))  # (u**q)**p = u**(q*p) here
            elif p == 1.0:
                subs.append(self.terms[a])
            elif p in SQUARE_AS_PRODUCT and len(normalise(self.terms[a].terms)[0]) >= 2:
                subs.extend([self.terms[a]] * int(p))  # (x+y)**2 = (x+y)*(x+y): one layer
            elif fn is not None and fn.power_scales_argument:  # exp(u)**p = exp(p*u)
                node, s, t = self.handle(a.args[0])
                subs.append(self.apply(fn.name, Handle(node, s * p, t * p), where=a))
            else:
                subs.append(self.apply(library.power(p).name, self.handle(a), where=a))
        if not math.isfinite(k):
            raise CompileError(f"the constant factor of {_describe(e)} is not a finite number")
        return k, subs

    def product(self, k: float, subs: list[Sub]) -> Handle:
        kept: list[Sub] = []
        for ts0, d0 in subs:
            ts, d = normalise(ts0)
            if ts:
                kept.append(Sub(ts, d + d0))
            else:
                k *= d + d0  # a factor that cancels to a constant
        if len(kept) == 0:
            return Handle(None, 0.0, k)
        if len(kept) == 1:
            h = self.handle_of_terms(*kept[0])
            return Handle(h.node, k * h.scale, k * h.offset)
        return Handle(self.node_from(kept, MULT), k, 0.0)

    def apply(self, fn: str, h: Handle, where: Expr, c: float = 1.0) -> Sub:
        """Terms of ``c*fn(h)``: one edge from the handle's node (a, b from its scale, offset)."""
        node, s, t = h
        if node is None:  # an argument that cancelled to a constant inside lowering
            v = _const_call(fn, t)
            if not math.isfinite(v):
                raise CompileError(f"the constant {_describe(where)} is not a finite real number")
            return Sub((), c * v)
        return Sub((Term(node, fn, s, t, c),), 0.0)


# ---- one rule per operation: terms of a non-constant expression -----------------------------


def _add(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    terms: list[Term] = []
    d = math.fsum(v for v in vals if v is not None)
    for a, v in zip(e.args, vals):
        if v is None:
            ts, d0 = lw.terms[a]
            terms.extend(ts)
            d += d0
    return Sub(tuple(terms), d)


def _mul(lw: _Lowerer, e: Expr, vals: list) -> Sub | float:
    k, subs = lw.split_product(e)
    if k == 0.0:
        return 0.0
    if len(subs) == 1:
        return scaled(subs[0], k)
    node, s, t = lw.handle(e)
    if node is None:
        return t
    return Sub((Term(node, ID, 1.0, 0.0, s),), t)


def _pow(lw: _Lowerer, e: Expr, vals: list) -> Sub | float:
    base = e.args[0]
    p = vals[1]
    if p is None:
        raise CompileError(
            f"cannot lower {_describe(e)}: a variable exponent is rewritten by the passes "
            "(expand_variable_powers) before lowering"
        )
    if base.op in (Op.MUL, Op.POW, Op.CALL):  # (x*y)**2 = x**2 * y**2: one node
        k, subs = lw.factors([(base, p)], e)
        if len(subs) != 1:
            node, s, t = lw.product(k, subs)
            return t if node is None else Sub((Term(node, ID, 1.0, 0.0, s),), t)
        return scaled(subs[0], k)
    return lw.apply(library.power(p).name, lw.handle(base), where=e)


def _call(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    if len(e.args) != 1:
        raise CompileError(
            f"cannot lower {_describe(e)}: {e.arg} of {len(e.args)} arguments "
            "(the passes desugar min and max)"
        )
    return lw.apply(e.arg, lw.handle(e.args[0]), where=e)


_RULES = {Op.ADD: _add, Op.MUL: _mul, Op.POW: _pow, Op.CALL: _call}


def lower_canonical(
    exprs: Expr | Sequence[Expr],
    variables: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Layout:
    """Lower expressions as the passes leave them (one per output) to an exact ``Layout``.

    ``variables`` fixes the inputs and their order (default: order of first appearance).
    ``labels`` names the outputs (default: the formulas' text). Raises ``CompileError`` for what
    the layout cannot express exactly, or for IR the passes have not run on.

    >>> from kanpiler import ir
    >>> x = ir.var("x")
    >>> lay = lower_canonical([ir.call("sin", x) + x**2, 2 * x + 3])
    >>> lay.depth, lay.width
    (2, [[1, 0], [2, 0], [2, 0]])
    """
    exprs = [exprs] if isinstance(exprs, Expr) else list(exprs)
    if not exprs:
        raise CompileError("nothing to compile: give at least one formula")
    if variables is None:
        found: dict[str, None] = {}
        for e in exprs:
            found.update(dict.fromkeys(ir_variables(e)))
        variables = list(found)
    lw = _Lowerer(variables)
    for e in exprs:
        for node in walk(e):
            if node not in lw.val:
                lw.visit(node)
    outs = output_nodes(lw, [lw.handle(e) for e in exprs])
    if labels is None:
        labels = [_describe(e).strip("'") for e in exprs]
    return to_layout(place(lw, outs), variables, labels)


__all__ = ["lower_canonical", "PRIMITIVES"]
