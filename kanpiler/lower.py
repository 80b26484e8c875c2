"""Lowering: canonical IR -> MultKAN ``Layout`` (a pure function).

In: one ``Expr`` per output (canonical IR; NEG, RECIP and two-argument min/max are accepted
too). Out: a ``Layout`` computing them exactly. Stage: lower.

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
from itertools import count
from typing import Any

from . import library
from .errors import CompileError
from .ir import Expr, Op, walk
from .layout import INPUT, MULT, SUM, Edge, Layout, Node

ID = library.IDENTITY.name  # "x"

# a term c*fn(a*src + b) is the tuple (src, fn, a, b, c); a subnode is (terms, constant)
Term = tuple[Any, str, float, float, float]
Sub = tuple[tuple[Term, ...], float]
Handle = tuple[Any, float, float]  # (node or None, scale, offset)


class _Node:
    """A node of the network under construction (placed into layers at the end)."""

    __slots__ = ("kind", "subs", "scale", "bias", "level", "uid", "label")

    def __init__(self, kind: str, subs: tuple, scale: float, bias: float, level: int, uid: int):
        self.kind, self.subs, self.scale, self.bias = kind, subs, scale, bias
        self.level, self.uid, self.label = level, uid, ""


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


class _Lowerer:
    def __init__(self, variables: Sequence[str]):
        self.uid = count()
        self.inputs = {v: self._new(INPUT, (), 1.0, 0.0, 0) for v in variables}
        for v, n in self.inputs.items():
            n.label = v
        self.interned: dict[tuple, _Node] = {}
        self.val: dict[Expr, float | None] = {}
        self.terms: dict[Expr, Sub] = {}
        self.handles: dict[Expr, Handle] = {}

    def _new(self, kind: str, subs: tuple, scale: float, bias: float, level: int) -> _Node:
        return _Node(kind, subs, scale, bias, level, next(self.uid))

    # -- node construction -------------------------------------------------------------------
    def intern(self, kind: str, subs: tuple, scale=1.0, bias=0.0, tag=None, level=None) -> _Node:
        key = (kind, subs, scale, bias, tag)
        node = self.interned.get(key)
        if node is None:
            if level is None:
                level = 1 + max(t[0].level for ts, _ in subs for t in ts)
            node = self.interned[key] = self._new(kind, subs, scale, bias, level)
        return node

    def carry(self, node: _Node, level: int) -> _Node:
        """``node``'s value at node layer ``level`` (a shared chain of identity nodes)."""
        while node.level < level:
            node = self.intern(SUM, ((((node, ID, 1.0, 0.0, 1.0),), 0.0),))
        return node

    def node_from(self, subs: list[Sub], kind: str = SUM, scale=1.0, bias=0.0, tag=None) -> _Node:
        """A node whose subnodes hold ``subs``: collisions lifted, low sources carried up."""
        resolved = [(self.resolve(ts), d) for ts, d in subs]
        level = 1 + max((t[0].level for ts, _ in resolved for t in ts), default=0)
        final = tuple(
            (tuple((self.carry(t[0], level - 1), *t[1:]) for t in ts), d) for ts, d in resolved
        )
        return self.intern(kind, final, scale, bias, tag, level)

    def resolve(self, terms: tuple[Term, ...]) -> tuple[Term, ...]:
        """Make sources unique: keep one term per source, lift the others into their own node."""
        while True:
            groups: dict[_Node, list[Term]] = {}
            for t in terms:
                groups.setdefault(t[0], []).append(t)
            if len(groups) == len(terms):
                return terms
            out: list[Term] = []
            for src, group in groups.items():
                keep = next((t for t in group if t[1] == ID), group[0])
                out.append(keep)
                for t in group:
                    if t is not keep:
                        lifted = self.intern(SUM, ((((src, t[1], t[2], t[3], 1.0),), 0.0),))
                        out.append((lifted, ID, 1.0, 0.0, t[4]))
            terms, _ = normalise(out)

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
        return h

    def _handle(self, e: Expr) -> Handle:
        v = self.val[e]
        if v is not None:
            return (None, 0.0, v)
        if e.op is Op.VAR:
            return (self.inputs[e.arg], 1.0, 0.0)
        if e.op is Op.MUL:
            k, subs = self.split_product(e)
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


def normalise(terms) -> tuple[tuple[Term, ...], float]:
    """Merge equal terms (summing c), write identities as ``c*x``, drop zero terms."""
    merged: dict[tuple, float] = {}
    extra = 0.0
    for src, fn, a, b, c in terms:
        if fn == ID:
            c, extra, a, b = c * a, extra + c * b, 1.0, 0.0
        key = (src, fn, a, b)
        merged[key] = merged.get(key, 0.0) + c
    return tuple((s, f, a, b, c) for (s, f, a, b), c in merged.items() if c != 0.0), extra


def _scaled(sub: Sub, k: float) -> Sub:
    return (tuple((s, f, a, b, c * k) for s, f, a, b, c in sub[0]), sub[1] * k)


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
        return _scaled(subs[0], k)
    node, s, t = lw.handle(e)
    if node is None:
        return t
    return (((node, ID, 1.0, 0.0, s),), t)


def _neg(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    return _scaled(lw.terms[e.args[0]], -1.0)


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
        if base.op in (Op.MUL, Op.NEG, Op.POW):  # (x*y)**2 = x**2 * y**2: one mult node
            k, subs = lw.factors([(base, p)], e)
            if len(subs) != 1:
                node, s, t = lw.product(k, subs)
                return t if node is None else (((node, ID, 1.0, 0.0, s),), t)
            return _scaled(subs[0], k)
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
        prod = lw.handle_of_terms(*_scaled(v_sub, log_sub[1]))
    else:
        prod = (lw.node_from([v_sub, log_sub], MULT), 1.0, 0.0)
    return lw.apply("exp", prod, where=e)


def _call(lw: _Lowerer, e: Expr, vals: list) -> Sub:
    if len(e.args) == 1:
        return lw.apply(e.arg, lw.handle(e.args[0]), where=e)
    if e.arg in ("min", "max"):  # max(a,b) = (a+b)/2 + |a-b|/2, min with -|a-b|/2
        (ta, da), (tb, db) = (_sub_of(lw, a, v) for a, v in zip(e.args, vals))
        diff = normalise(ta + _scaled((tb, db), -1.0)[0])
        h = lw.handle_of_terms(diff[0], diff[1] + da - db)
        sign = 0.5 if e.arg == "max" else -0.5
        ts, d = lw.apply("abs", h, sign, where=e)
        half = _scaled((ta + tb, da + db), 0.5)
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


# ---- outputs and placement into layers ------------------------------------------------------


def _output_nodes(lw: _Lowerer, handles: list[Handle]) -> list[_Node]:
    """One node per output, all on the last layer (carried up where needed)."""
    top = max([1] + [n.level for n, _, _ in handles if n is not None])
    outs = []
    for idx, (n, s, t) in enumerate(handles):
        tag = ("output", idx)
        if n is None:
            outs.append(lw.intern(SUM, (((), t),), tag=tag, level=top))
        elif n.level < top:
            src = lw.carry(n, top - 1)
            outs.append(lw.intern(SUM, ((((src, ID, 1.0, 0.0, s),), t),), tag=tag))
        elif n.kind == SUM:
            ts, d = _scaled(n.subs[0], s)
            outs.append(lw.intern(SUM, ((ts, d + t),), tag=tag))
        else:
            outs.append(lw.intern(MULT, n.subs, s * n.scale, s * n.bias + t, tag))
    # the runtime orders a layer's sum nodes before its mult nodes: a sum output after a mult
    # output becomes a mult node whose second factor is the constant 1
    first_mult = next((i for i, n in enumerate(outs) if n.kind == MULT), len(outs))
    for i in range(first_mult, len(outs)):
        n = outs[i]
        if n.kind == SUM:
            outs[i] = lw.intern(MULT, (n.subs[0], ((), 1.0)), tag=("output", i), level=n.level)
    return outs


def _place(lw: _Lowerer, outs: list[_Node]) -> list[list[_Node]]:
    """Nodes reachable from the outputs, by level; sum nodes first, in creation order."""
    top = outs[0].level
    seen: set[int] = {id(n) for n in outs}
    stack = list(outs)
    inner: list[_Node] = []
    while stack:
        node = stack.pop()
        for ts, _ in node.subs:
            for t in ts:
                src = t[0]
                if id(src) not in seen and src.kind != INPUT:
                    seen.add(id(src))
                    inner.append(src)
                    stack.append(src)
    layers: list[list[_Node]] = [list(lw.inputs.values())] + [[] for _ in range(top)]
    for n in sorted(inner, key=lambda n: (n.kind == MULT, n.uid)):
        layers[n.level].append(n)
    layers[top] = outs
    return layers


def _layout(layers: list[list[_Node]], variables: Sequence[str], labels: Sequence[str]) -> Layout:
    nodes, edges, biases = [], [], []
    for li, layer in enumerate(layers):
        nodes.append(
            tuple(
                Node(n.kind, len(n.subs) if n.kind == MULT else 1, n.scale, n.bias, n.label)
                for n in layer
            )
        )
        if li == 0:
            continue
        index = {id(n): i for i, n in enumerate(layers[li - 1])}
        es, bias, j = [], [], 0
        for n in layer:
            for ts, d in n.subs:
                # a subnode's constant rides on its first edge (trainable with it)
                for k, t in enumerate(ts):
                    es.append(
                        Edge(index[id(t[0])], j, t[1], t[2], t[3], t[4], d if k == 0 else 0.0)
                    )
                bias.append(0.0 if ts else d)
                j += 1
        edges.append(tuple(sorted(es, key=lambda e: (e.i, e.j))))
        biases.append(tuple(bias))
    return Layout(tuple(variables), tuple(nodes), tuple(edges), tuple(biases), tuple(labels))


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
    outs = _output_nodes(lw, [lw.handle(e) for e in exprs])
    if labels is None:
        labels = [_describe(e).strip("'") for e in exprs]
    return _layout(_place(lw, outs), variables, labels)


__all__ = ["lower_ir", "normalise"]
