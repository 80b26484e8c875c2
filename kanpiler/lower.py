"""Lowering: canonical IR -> MultKAN ``Layout`` (a pure function).

In: one ``Expr`` per output (canonical IR; NEG, RECIP and two-argument min/max are accepted
too). Out: a ``Layout`` computing them exactly. Stage: lower (the half that knows about
expressions; ``network.py`` interns the nodes and places them into layers).

Every expression ``e`` gets a *handle* ``(node, scale, offset)`` meaning ``e = scale*node +
offset``, so affine arithmetic never costs a node, and a list of *terms* ``c*f(a*src + b)`` plus a
constant, so a sum feeds its parts straight into the node that consumes it. A product of two or
more non-constant factors is a mult node whose subnodes are the factors' terms. Nodes are
interned (equal nodes are one node), handles are memoised per interned ``Expr``, so a repeated
subexpression is computed once. Two different terms from one source into one subnode would
share an edge: the extra ones are lifted into their own node first. A source more than one
layer below its consumer is carried up by one shared chain of identity nodes.

>>> from kanpiler import ir
>>> x, y = ir.var("x"), ir.var("y")
>>> lay = lower_ir(ir.call("sin", x) * ir.call("exp", y))
>>> lay.depth, lay.width
(1, [[2, 0], [0, 1]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import library
from .errors import CompileError
from .ir import Expr, Op, walk
from .layout import MULT, Layout
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

#: calls that are powers: their powers fold (``sqrt(u)**-1 = u**-0.5``, one edge, not two)
POWER_CALLS = {"sqrt": 0.5, "cbrt": 1.0 / 3.0, "square": 2.0}


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
        """Fill ``val[e]`` (a float for constant expressions) or ``terms[e]``; children first."""
        op, args = e.op, e.args
        if op in (Op.CONST, Op.NAMED):
            try:
                self.val[e] = e.value
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
            self.terms[e] = (((self.inputs[e.arg], ID, 1.0, 0.0, 1.0),), 0.0)
            return
        vals = [self.val[a] for a in args]
        if all(v is not None for v in vals):
            self.val[e] = self.constant(e, vals)
            return
        self.val[e] = None
        rule = _RULES.get(op)
        if rule is None:
            raise CompileError(f"cannot compile {_describe(e)}: operation {op.name} is unknown")
        result = rule(self, e, vals)
        if isinstance(result, float):  # e.g. 0*x: a constant after all
            self.val[e] = result
        else:
            self.terms[e] = result

    def constant(self, e: Expr, vals: list) -> float:
        op = e.op
        if op is Op.ADD:
            v = math.fsum(vals)
        elif op is Op.MUL:
            v = math.prod(vals)
        elif op is Op.NEG:
            v = -vals[0]
        elif op is Op.RECIP:
            v = 1.0 / vals[0] if vals[0] != 0 else math.nan
        elif op is Op.POW:
            v = _const_pow(vals[0], vals[1])
        elif op is Op.CALL:
            v = _const_call(e.arg, *vals)
        else:
            raise CompileError(f"cannot compile {_describe(e)}: operation {op.name} is unknown")
        if not math.isfinite(v):
            raise CompileError(f"the constant {_describe(e)} is not a finite real number")
        return float(v)

    def handle(self, e: Expr) -> Handle:
        """``(node, scale, offset)`` with ``e = scale*node + offset`` (node None: a constant)."""
        h = self.handles.get(e)
        if h is None:
            h = self.handles[e] = self._handle(e)
            node = h[0]
            if node is not None and node.expr is None and (h[1], h[2]) == (1.0, 0.0):
                node.expr = e  # the node computes e itself: its label
        return h

    def _handle(self, e: Expr) -> Handle:
        v = self.val[e]
        if v is not None:
            return (None, 0.0, v)
        if e.op is Op.VAR:
            return (self.inputs[e.arg], 1.0, 0.0)
        if e.op in (Op.MUL, Op.POW):  # a product, or a power that is one (see factors)
            k, subs = self.split_product(e) if e.op is Op.MUL else self.factors([(e, 1.0)], e)
            if len(subs) >= 2:
                return self.product(k, subs)
        terms, d = normalise(self.terms[e][0])
        d += self.terms[e][1]
        return self.handle_of_terms(terms, d)

    def handle_of_terms(self, terms: tuple[Term, ...], d: float) -> Handle:
        if not terms:
            return (None, 0.0, d)
        if len(terms) == 1 and terms[0][1] == ID:
            return (terms[0][0], terms[0][4], d)
        return (self.node_from([(terms, 0.0)]), 1.0, d)

    def split_product(self, e: Expr) -> tuple[float, list[Sub]]:
        """``e = k * product(subs)`` for a product ``e`` (see ``factors``)."""
        return self.factors([(a, 1.0) for a in e.args], e)

    def factors(self, seeds: list[tuple[Expr, float]], e: Expr) -> tuple[float, list[Sub]]:
        """``product(a**p for a, p in seeds) = k * product(subs)``. Nested products,
        negations and powers are flattened where that is exact (``(x*y)**-2``: integer powers
        distribute), so ``1/((x - 1)*y**2)`` is one mult node."""
        k, subs, stack = 1.0, [], list(reversed(seeds))
        while stack:
            a, p = stack.pop()
            v, integer = self.val[a], float(p).is_integer()
            q = self.val[a.args[1]] if a.op is Op.POW else None
            if a.op is Op.CALL and p != 1.0 and a.arg in POWER_CALLS:
                q = POWER_CALLS[a.arg]  # sqrt(u)**p = u**(p/2)
            if p == 0.0:
                continue
            if v is not None:
                k *= v if p == 1.0 else _const_pow(v, p)
            elif a.op is Op.NEG and integer:
                k *= (-1.0) ** p
                stack.append((a.args[0], p))
            elif a.op is Op.MUL and integer:
                stack.extend((b, p) for b in reversed(a.args))
            elif q is not None and (integer or not float(q).is_integer()):
                stack.append((a.args[0], p * q))  # (u**q)**p = u**(q*p) here
            elif p == 1.0:
                subs.append(self.terms[a])
            elif p in SQUARE_AS_PRODUCT and len(normalise(self.terms[a][0])[0]) >= 2:
                subs.extend([self.terms[a]] * int(p))  # (x+y)**2 = (x+y)*(x+y): one layer
            elif a.op is Op.CALL and a.arg == "exp":  # exp(u)**p = exp(p*u)
                node, s, t = self.handle(a.args[0])
                subs.append(self.apply("exp", (node, s * p, t * p), where=a))
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
                kept.append((ts, d + d0))
            else:
                k *= d + d0  # a factor that cancels to a constant
        if len(kept) == 0:
            return (None, 0.0, k)
        if len(kept) == 1:
            h = self.handle_of_terms(*kept[0])
            return (h[0], k * h[1], k * h[2])
        return (self.node_from(kept, MULT), k, 0.0)

    def apply(self, fn: str, h: Handle, c: float = 1.0, where: Expr | None = None) -> Sub:
        """Terms of ``c*fn(h)``: one edge from the handle's node (a, b from its scale, offset)."""
        node, s, t = h
        if node is None:
            v = _const_call(fn, t)
            if not math.isfinite(v):
                raise CompileError(f"the constant {_describe(where)} is not a finite real number")
            return ((), c * v)
        return (((node, fn, s, t, c),), 0.0)


# ---- one rule per operation: terms of a non-constant expression -----------------------------


def _add(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    terms: list[Term] = []
    d = math.fsum(v for v in vals if v is not None)
    for a, v in zip(e.args, vals):
        if v is None:
            ts, d0 = lw.terms[a]
            terms.extend(ts)
            d += d0
    return (tuple(terms), d)


def _mul(lw: _Lowerer, e: Expr, vals: list) -> Sub | float:
    k, subs = lw.split_product(e)
    if k == 0.0:
        return 0.0
    if len(subs) == 1:
        return scaled(subs[0], k)
    node, s, t = lw.handle(e)
    if node is None:
        return t
    return (((node, ID, 1.0, 0.0, s),), t)


def _neg(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    return scaled(lw.terms[e.args[0]], -1.0)


def _recip(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    return lw.apply(library.power(-1.0).name, lw.handle(e.args[0]), where=e)


def _pow(lw: _Lowerer, e: Expr, vals: list) -> Sub | float:
    base, expo = e.args
    p, c = vals[1], vals[0]
    if p is not None:  # u**p: the power function x^p
        if p == 0.0:
            return 1.0
        if p == 1.0:
            return lw.terms[base]
        if base.op in (Op.MUL, Op.NEG, Op.POW, Op.CALL):  # (x*y)**2 = x**2 * y**2: one node
            k, subs = lw.factors([(base, p)], e)
            if len(subs) != 1:
                node, s, t = lw.product(k, subs)
                return t if node is None else (((node, ID, 1.0, 0.0, s),), t)
            return scaled(subs[0], k)
        return lw.apply(library.power(p).name, lw.handle(base), where=e)
    node, s, t = lw.handle(expo)
    if c is not None:  # c**v = exp(v*log(c)) for c > 0
        if c == 1.0:
            return 1.0
        if not c > 0.0:
            raise CompileError(
                f"cannot compile {_describe(e)}: a variable exponent needs a positive base "
                f"(c**v is compiled as exp(v*log(c))), got base {c}"
            )
        lc = math.log(c)
        return lw.apply("exp", (node, s * lc, t * lc), where=e) if node else math.exp(t * lc)
    # u**v = exp(v*log(u)), real for u > 0: a product of v's terms and one log edge
    log_sub = lw.apply("log", lw.handle(base), where=e)
    v_terms, v_d = normalise(lw.terms[expo][0])
    v_sub = (v_terms, v_d + lw.terms[expo][1])
    if not log_sub[0]:  # log of a constant: v times a number
        prod = lw.handle_of_terms(*scaled(v_sub, log_sub[1]))
    else:
        prod = (lw.node_from([v_sub, log_sub], MULT), 1.0, 0.0)
    return lw.apply("exp", prod, where=e)


def _call(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    if len(e.args) == 1:
        return lw.apply(e.arg, lw.handle(e.args[0]), where=e)
    if e.arg in ("min", "max"):  # max(a,b) = (a+b)/2 + |a-b|/2, min with -|a-b|/2
        (ta, da), (tb, db) = (_sub_of(lw, a, v) for a, v in zip(e.args, vals))
        diff = normalise(ta + scaled((tb, db), -1.0)[0])
        h = lw.handle_of_terms(diff[0], diff[1] + da - db)
        sign = 0.5 if e.arg == "max" else -0.5
        ts, d = lw.apply("abs", h, sign, where=e)
        half = scaled((ta + tb, da + db), 0.5)
        return (half[0] + ts, half[1] + d)
    raise CompileError(f"cannot compile {_describe(e)}: {e.arg} of {len(e.args)} arguments")


def _sub_of(lw: _Lowerer, a: Expr, v: float | None) -> Sub:
    return ((), v) if v is not None else lw.terms[a]


_RULES = {
    Op.ADD: _add,
    Op.MUL: _mul,
    Op.NEG: _neg,
    Op.RECIP: _recip,
    Op.POW: _pow,
    Op.CALL: _call,
}


def lower_ir(
    exprs: Expr | Sequence[Expr],
    variables: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Layout:
    """Lower one expression (or one per output) to a ``Layout`` computing it exactly.

    ``variables`` fixes the inputs and their order (default: order of first appearance).
    ``labels`` names the outputs (default: the formulas' text). Raises ``CompileError`` for what
    the layout cannot express exactly.

    >>> from kanpiler import ir
    >>> x = ir.var("x")
    >>> lay = lower_ir([ir.call("sin", x) + x**2, 2 * x + 3])
    >>> lay.depth, lay.width
    (2, [[1, 0], [2, 0], [2, 0]])
    """
    from .ir import variables as ir_variables

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


__all__ = ["lower_ir", "normalise"]
