"""The MultKAN layout: a frozen, printable, JSON-able description of a compiled network.

In: built by ``kanpiler.lower`` (IR -> Layout). Out: ``verify(layout)`` checks its
invariants, ``evaluate_layout(layout, X)`` is the float64 reference,
``kanpiler.compiler.build_model`` makes the torch module and ``kanpiler.render`` draws it.
Stage: layout (the data type between lowering and the compiler).

>>> import kanpiler
>>> lay = kanpiler.lower("2*x + 3")
>>> lay.depth, lay.n_edges
(1, 1)
>>> print(lay)
layout: 1 KAN layer, 1 edge, inputs [x], 1 output
nodes 0: [in x]
edges 0: 0->0 x c=2 d=3
nodes 1: [sum]
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from . import library
from .errors import KanpilerError, VerifyError

INPUT, SUM, MULT = "input", "sum", "mult"


@dataclass(frozen=True)
class Node:
    """One node: an input, a sum node (one subnode) or a mult node (``arity`` subnodes).

    Its value ``v`` (the sum, or the product of its subnodes) is read as ``scale*v + bias``.
    """

    kind: str
    arity: int = 1
    scale: float = 1.0
    bias: float = 0.0
    label: str = ""


@dataclass(frozen=True)
class Edge:
    """Edge from node ``i`` of node layer ``l`` to subnode ``j`` of layer ``l+1``:
    ``c*fn(a*x + b) + d`` with ``fn`` a library name (``"x"`` is the identity)."""

    i: int
    j: int
    fn: str
    a: float = 1.0
    b: float = 0.0
    c: float = 1.0
    d: float = 0.0

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.a, self.b, self.c, self.d)


@dataclass(frozen=True)
class Layout:
    """Node layers ``nodes[0..L]`` (layer 0 = the inputs, in ``variables`` order), KAN layers
    ``edges[0..L-1]`` and the constant added to every subnode (``subnode_bias[l][j]`` for the
    subnodes of node layer ``l+1``). The last node layer holds exactly the outputs, in order.
    """

    variables: tuple[str, ...]
    nodes: tuple[tuple[Node, ...], ...]
    edges: tuple[tuple[Edge, ...], ...]
    subnode_bias: tuple[tuple[float, ...], ...]
    outputs: tuple[str, ...] = field(default=())

    # -- shape -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Number of KAN layers."""
        return len(self.edges)

    @property
    def n_edges(self) -> int:
        return sum(len(es) for es in self.edges)

    @property
    def n_params(self) -> int:
        """Trainable numbers the layout uses: a, b, c, d per edge, subnode biases, the affine
        parameters of mult nodes."""
        mults = sum(1 for layer in self.nodes for n in layer if n.kind == MULT)
        return 4 * self.n_edges + sum(len(b) for b in self.subnode_bias) + 2 * mults

    @property
    def width(self) -> list[list[int]]:
        """``[[n_sum, n_mult], ...]`` per node layer (the runtime's ``width``)."""
        return [
            [sum(n.kind != MULT for n in layer), sum(n.kind == MULT for n in layer)]
            for layer in self.nodes
        ]

    @property
    def mult_arity(self) -> list[list[int]]:
        """Arity of every mult node, per node layer (the runtime's ``mult_arity``)."""
        return [[n.arity for n in layer if n.kind == MULT] for layer in self.nodes]

    def n_subnodes(self, layer: int) -> int:
        """Subnodes of node layer ``layer`` (>= 1): one per sum node, ``arity`` per mult node."""
        return sum(n.arity for n in self.nodes[layer])

    def subnode_ranges(self, layer: int) -> list[range]:
        """For each node of ``layer``, the range of its subnode indices."""
        out, start = [], 0
        for n in self.nodes[layer]:
            out.append(range(start, start + n.arity))
            start += n.arity
        return out

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "variables": list(self.variables),
            "outputs": list(self.outputs),
            "nodes": [[asdict(n) for n in layer] for layer in self.nodes],
            "edges": [[list(astuple_edge(e)) for e in es] for es in self.edges],
            "subnode_bias": [list(b) for b in self.subnode_bias],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        try:
            return cls(
                variables=tuple(data["variables"]),
                nodes=tuple(tuple(Node(**n) for n in layer) for layer in data["nodes"]),
                edges=tuple(tuple(Edge(*e) for e in es) for es in data["edges"]),
                subnode_bias=tuple(tuple(float(x) for x in b) for b in data["subnode_bias"]),
                outputs=tuple(data.get("outputs", ())),
            )
        except (KeyError, TypeError) as err:
            raise KanpilerError(f"not a layout description: {err}") from err

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        return cls.from_dict(json.loads(text))

    # -- printing ----------------------------------------------------------------------------
    def __str__(self) -> str:
        def plural(n: int, word: str) -> str:
            return f"{n} {word}{'' if n == 1 else 's'}"

        lines = [
            f"layout: {plural(self.depth, 'KAN layer')}, {plural(self.n_edges, 'edge')}, "
            f"inputs [{', '.join(self.variables)}], {plural(len(self.outputs), 'output')}"
        ]
        for li, layer in enumerate(self.nodes):
            lines.append(f"nodes {li}: [{', '.join(_node_text(n) for n in layer)}]")
            if li < self.depth:
                lines.append(f"edges {li}: " + _edges_text(self.edges[li], self.subnode_bias[li]))
        return "\n".join(lines)


def astuple_edge(e: Edge) -> tuple:
    return (e.i, e.j, e.fn, e.a, e.b, e.c, e.d)


def fmt(x: float) -> str:
    """A float in at most 6 significant digits (``2`` not ``2.0``)."""
    return f"{x:.6g}"


def _node_text(n: Node) -> str:
    if n.kind == INPUT:
        return f"in {n.label}"
    text = "sum" if n.kind == SUM else f"mult/{n.arity}"
    if n.scale != 1.0 or n.bias != 0.0:
        text += f" {fmt(n.scale)}*v"
        text += f"{'+' if n.bias > 0 else '-'}{fmt(abs(n.bias))}" if n.bias else ""
    return text


def edge_text(e: Edge) -> str:
    """``c*fn(a*x+b)+d`` compactly: default parameters are left out."""
    parts = [e.fn]
    for name, val, default in (("a", e.a, 1.0), ("b", e.b, 0.0), ("c", e.c, 1.0), ("d", e.d, 0.0)):
        if val != default:
            parts.append(f"{name}={fmt(val)}")
    return " ".join(parts)


def _edges_text(edges: tuple[Edge, ...], bias: tuple[float, ...]) -> str:
    text = "; ".join(f"{e.i}->{e.j} {edge_text(e)}" for e in edges) or "(none)"
    nonzero = [f"{j}:{fmt(b)}" for j, b in enumerate(bias) if b != 0.0]
    if len(bias) == 1 and nonzero:
        return f"{text} | bias {fmt(bias[0])}"
    return f"{text} | bias {', '.join(nonzero)}" if nonzero else text


# ---- the verifier ---------------------------------------------------------------------------


def verify(layout: Layout, stage: str = "lower") -> Layout:
    """Check every invariant of ``layout``; raise ``VerifyError(stage, rule, where)`` if broken.

    Returns the layout, so it can be chained: ``build(verify(lower(f)))``.
    """

    def fail(rule: str, where: str = "") -> None:
        raise VerifyError(stage, rule, where)

    nodes, edges = layout.nodes, layout.edges
    if len(nodes) < 2 or len(edges) != len(nodes) - 1 or len(layout.subnode_bias) != len(edges):
        fail("node layers = KAN layers + 1 >= 2, one bias row per KAN layer")
    if len(nodes[0]) != len(layout.variables) or any(n.kind != INPUT for n in nodes[0]):
        fail("node layer 0 holds exactly one input node per variable", "node layer 0")
    if len(set(layout.variables)) != len(layout.variables):
        fail("variable names are distinct", f"variables {list(layout.variables)}")
    if not nodes[-1] or (layout.outputs and len(layout.outputs) != len(nodes[-1])):
        fail("the last node layer holds exactly the outputs", f"node layer {len(nodes) - 1}")
    for li in range(1, len(nodes)):
        _verify_nodes(nodes[li], li, fail)
    for li, es in enumerate(edges):
        _verify_edges(layout, li, es, fail)
    return layout


def _verify_nodes(layer: tuple[Node, ...], li: int, fail: Any) -> None:
    seen_mult = False
    for k, n in enumerate(layer):
        where = f"node layer {li}, node {k}"
        if n.kind not in (SUM, MULT):
            fail("inner nodes are sum or mult nodes", where)
        if n.kind == SUM and n.arity != 1:
            fail("a sum node has one subnode", where)
        if n.kind == MULT and n.arity < 2:
            fail("a mult node has arity >= 2", where)
        if n.kind == SUM and seen_mult:
            fail("sum nodes come before mult nodes", where)
        seen_mult |= n.kind == MULT
        if not (math.isfinite(n.scale) and math.isfinite(n.bias)):
            fail("node scale and bias are finite", where)


def _verify_edges(layout: Layout, li: int, es: tuple[Edge, ...], fail: Any) -> None:
    n_in, n_sub = len(layout.nodes[li]), layout.n_subnodes(li + 1)
    if len(layout.subnode_bias[li]) != n_sub:
        fail("one bias per subnode", f"KAN layer {li}")
    if not all(math.isfinite(b) for b in layout.subnode_bias[li]):
        fail("subnode biases are finite", f"KAN layer {li}")
    pairs: set[tuple[int, int]] = set()
    used = [False] * n_in
    for e in es:
        where = f"KAN layer {li}, edge {e.i}->{e.j}"
        if not (0 <= e.i < n_in and 0 <= e.j < n_sub):
            fail("edge endpoints in range", where)
        if (e.i, e.j) in pairs:
            fail("one edge per (source, subnode) pair", where)
        pairs.add((e.i, e.j))
        used[e.i] = True
        try:
            library.get(e.fn)
        except KanpilerError:
            fail("edge functions resolve in the library", f"{where} ({e.fn!r})")
        if not all(math.isfinite(p) for p in e.params):
            fail("edge parameters are finite", where)
    if li > 0:
        for i, u in enumerate(used):
            if not u:
                fail("every inner node feeds the next layer", f"node layer {li}, node {i}")


# ---- the float64 reference ------------------------------------------------------------------


def evaluate_layout(layout: Layout, X: Any) -> Any:
    """The layout's value at the rows of ``X`` (N, n_vars), computed edge by edge in float64
    with the library's exact functions: the reference a built module is checked against.

    Returns an array (N, n_outputs) of the same kind as ``X`` (numpy in, numpy out).
    """
    import numpy as np  # heavy: only the reference evaluation needs them
    import torch

    as_numpy = not isinstance(X, torch.Tensor)
    x = torch.as_tensor(np.asarray(X) if as_numpy else X, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != len(layout.variables):
        raise KanpilerError(
            f"expected X of shape (N, {len(layout.variables)}) for inputs "
            f"{list(layout.variables)}, got {tuple(x.shape)}"
        )
    values = x
    for li, es in enumerate(layout.edges):
        bias = torch.tensor(layout.subnode_bias[li], dtype=torch.float64)
        sub = bias.expand(x.shape[0], -1).clone()
        for e in es:
            fn = library.get(e.fn).torch_fn
            sub[:, e.j] += e.c * fn(e.a * values[:, e.i] + e.b) + e.d
        cols = []
        for n, r in zip(layout.nodes[li + 1], layout.subnode_ranges(li + 1)):
            v = sub[:, r.start] if n.kind == SUM else torch.prod(sub[:, r.start : r.stop], 1)
            cols.append(n.scale * v + n.bias)
        values = torch.stack(cols, 1) if cols else sub[:, :0]
    return values.numpy() if as_numpy else values


__all__ = [
    "Node",
    "Edge",
    "Layout",
    "verify",
    "evaluate_layout",
    "edge_text",
    "INPUT",
    "SUM",
    "MULT",
]
