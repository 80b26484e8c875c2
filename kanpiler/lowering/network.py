"""Lowering, the layer half: interned sum and mult nodes, placed into a ``Layout``.

In: terms ``c*fn(a*src + b)`` grouped into subnodes, from ``expressions``. Out: interned nodes
with their level, then a ``Layout`` with every output on the last layer. Stage: lowering.

One edge per (source, subnode): two different terms from one source are lifted into their own
node first. A source more than one layer below its consumer is carried up by one shared chain
of identity nodes (memoised per value and layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import count
from typing import Any, NamedTuple

from .. import library
from ..layout import INPUT, MULT, SUM, Edge, Layout, Node

ID = library.IDENTITY.name  # "x"


class Term(NamedTuple):
    """One edge-to-be: ``c*fn(a*src + b)``."""

    src: Any  # a NetNode
    fn: str
    a: float
    b: float
    c: float


class Sub(NamedTuple):
    """A subnode: the sum of its terms plus a constant."""

    terms: tuple[Term, ...]
    constant: float


class Handle(NamedTuple):
    """An expression as ``scale*node + offset`` (``node`` None: the constant ``offset``)."""

    node: Any  # a NetNode or None
    scale: float
    offset: float


class NetNode:
    """A node of the network under construction (placed into layers at the end)."""

    __slots__ = ("kind", "subs", "scale", "bias", "level", "uid", "label", "expr")

    def __init__(self, kind: str, subs: tuple, scale: float, bias: float, level: int, uid: int):
        self.kind, self.subs, self.scale, self.bias = kind, subs, scale, bias
        self.level, self.uid, self.label = level, uid, ""
        self.expr: Any = None  # the expression the node computes, when it is one


class Network:
    """Interned nodes: equal nodes (same kind, subnodes, affine, tag) are one node."""

    def __init__(self, variables: Sequence[str]):
        self.uid = count()
        self.inputs = {v: self._new(INPUT, (), 1.0, 0.0, 0) for v in variables}
        for v, n in self.inputs.items():
            n.label = v
        self.interned: dict[tuple, NetNode] = {}

    def _new(self, kind: str, subs: tuple, scale: float, bias: float, level: int) -> NetNode:
        return NetNode(kind, subs, scale, bias, level, next(self.uid))

    # -- node construction -------------------------------------------------------------------
    def intern(
        self,
        kind: str,
        subs: tuple[Sub, ...],
        scale: float = 1.0,
        bias: float = 0.0,
        tag: Any = None,
        level: int | None = None,
    ) -> NetNode:
        key = (kind, subs, scale, bias, tag)
        node = self.interned.get(key)
        if node is None:
            if level is None:
                level = 1 + max(t.src.level for ts, _ in subs for t in ts)
            node = self.interned[key] = self._new(kind, subs, scale, bias, level)
        return node

    def carry(self, node: NetNode, level: int) -> NetNode:
        """``node``'s value at node layer ``level`` (a shared chain of identity nodes)."""
        while node.level < level:
            node = self.intern(SUM, (Sub((Term(node, ID, 1.0, 0.0, 1.0),), 0.0),))
        return node

    def node_from(
        self,
        subs: list[Sub],
        kind: str = SUM,
        scale: float = 1.0,
        bias: float = 0.0,
        tag: Any = None,
    ) -> NetNode:
        """A node whose subnodes hold ``subs``: collisions lifted, low sources carried up."""
        resolved = [Sub(self.resolve(ts), d) for ts, d in subs]
        level = 1 + max((t.src.level for ts, _ in resolved for t in ts), default=0)
        final = tuple(
            Sub(tuple(t._replace(src=self.carry(t.src, level - 1)) for t in ts), d)
            for ts, d in resolved
        )
        return self.intern(kind, final, scale, bias, tag, level)

    def resolve(self, terms: tuple[Term, ...]) -> tuple[Term, ...]:
        """Make sources unique: keep one term per source, lift the others into their own node."""
        while True:
            groups: dict[NetNode, list[Term]] = {}
            for t in terms:
                groups.setdefault(t.src, []).append(t)
            if len(groups) == len(terms):
                return terms
            out: list[Term] = []
            for group in groups.values():
                keep = next((t for t in group if t.fn == ID), group[0])
                out.append(keep)
                for t in group:
                    if t is not keep:
                        lifted = self.intern(SUM, (Sub((t._replace(c=1.0),), 0.0),))
                        out.append(Term(lifted, ID, 1.0, 0.0, t.c))
            terms, _ = normalise(out)


def normalise(terms: Iterable[Term]) -> tuple[tuple[Term, ...], float]:
    """Merge equal terms (summing c), write identities as ``c*x``, drop zero terms."""
    merged: dict[tuple, float] = {}
    extra = 0.0
    for src, fn, a, b, c in terms:
        if fn == ID:
            c, extra, a, b = c * a, extra + c * b, 1.0, 0.0
        key = (src, fn, a, b)
        merged[key] = merged.get(key, 0.0) + c
    kept = tuple(Term(s, f, a, b, c) for (s, f, a, b), c in merged.items() if c != 0.0)
    return kept, extra


def scaled(sub: Sub, k: float) -> Sub:
    """``k`` times a subnode."""
    return Sub(tuple(t._replace(c=t.c * k) for t in sub.terms), sub.constant * k)


def _label(node: NetNode) -> str:
    """The variable's name, or the expression an inner node computes (for views)."""
    if node.label or node.expr is None:
        return node.label
    try:
        return str(node.expr)
    except Exception:  # printing is decoration: never let it break lowering
        return ""


# ---- outputs and placement into layers ------------------------------------------------------


def output_nodes(net: Network, handles: list[Handle]) -> list[NetNode]:
    """One node per output, all on the last layer (carried up where needed)."""
    top = max([1] + [n.level for n, _, _ in handles if n is not None])
    outs = []
    for idx, (n, s, t) in enumerate(handles):
        tag = ("output", idx)
        if n is None:
            outs.append(net.intern(SUM, (Sub((), t),), tag=tag, level=top))
        elif n.level < top:
            src = net.carry(n, top - 1)
            outs.append(net.intern(SUM, (Sub((Term(src, ID, 1.0, 0.0, s),), t),), tag=tag))
        elif n.kind == SUM:
            ts, d = scaled(n.subs[0], s)
            outs.append(net.intern(SUM, (Sub(ts, d + t),), tag=tag))
        else:
            outs.append(net.intern(MULT, n.subs, s * n.scale, s * n.bias + t, tag))
    # the runtime orders a layer's sum nodes before its mult nodes: a sum output after a mult
    # output becomes a mult node whose second factor is the constant 1
    first_mult = next((i for i, n in enumerate(outs) if n.kind == MULT), len(outs))
    for i in range(first_mult, len(outs)):
        n = outs[i]
        if n.kind == SUM:
            outs[i] = net.intern(MULT, (n.subs[0], Sub((), 1.0)), tag=("output", i), level=n.level)
    return outs


def place(net: Network, outs: list[NetNode]) -> list[list[NetNode]]:
    """Nodes reachable from the outputs, by level; sum nodes first, in creation order."""
    top = outs[0].level
    seen: set[int] = {id(n) for n in outs}
    stack = list(outs)
    inner: list[NetNode] = []
    while stack:
        node = stack.pop()
        for ts, _ in node.subs:
            for t in ts:
                src = t.src
                if id(src) not in seen and src.kind != INPUT:
                    seen.add(id(src))
                    inner.append(src)
                    stack.append(src)
    layers: list[list[NetNode]] = [list(net.inputs.values())] + [[] for _ in range(top)]
    for n in sorted(inner, key=lambda n: (n.kind == MULT, n.uid)):
        layers[n.level].append(n)
    layers[top] = outs
    return layers


def to_layout(
    layers: list[list[NetNode]], variables: Sequence[str], labels: Sequence[str]
) -> Layout:
    nodes, edges, biases = [], [], []
    for li, layer in enumerate(layers):
        nodes.append(
            tuple(
                Node(n.kind, len(n.subs) if n.kind == MULT else 1, n.scale, n.bias, _label(n))
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
                    es.append(Edge(index[id(t.src)], j, t.fn, t.a, t.b, t.c, d if k == 0 else 0.0))
                bias.append(0.0 if ts else d)
                j += 1
        edges.append(tuple(sorted(es, key=lambda e: (e.i, e.j))))
        biases.append(tuple(bias))
    return Layout(tuple(variables), tuple(nodes), tuple(edges), tuple(biases), tuple(labels))


__all__ = [
    "Network",
    "Term",
    "Sub",
    "Handle",
    "ID",
    "normalise",
    "scaled",
    "output_nodes",
    "to_layout",
]
