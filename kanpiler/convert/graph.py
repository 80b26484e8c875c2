"""Extraction: a MultKAN as a networkx graph of nodes, subnodes and edges.

In: a ``MultKAN``, read through its structure API (``edges``, ``subnode_owner``,
``node_kind``). Out: a ``networkx.DiGraph`` with ``graph["kind"] == "kan"``.
Stage: convert (the first step back from a network to a formula).

Node ids:

- ``("in", i)``: input ``i`` (``kind="input"``, ``variable`` = its name);
- ``(l, "sum", j)`` / ``(l, "mult", j)``: node ``j`` of node layer ``l >= 1`` (``kind`` sum or
  mult, ``arity``, ``scale`` and ``bias`` of the node affine ``v = scale*v + bias``);
- ``(l, "sub", j)``: subnode ``j`` of node layer ``l`` (``kind="subnode"``, ``scale``,
  ``bias``, ``owner`` = the node it feeds, ``slot`` = its position in a mult node);
- ``("out", j)``: output ``j``, fed by node ``j`` of the last layer through an ``output`` edge.

Edges from a node of layer ``l`` to a subnode of layer ``l + 1`` are the KAN edges, with
``layer, i, j`` and ``kind``: ``symbolic`` (``fn``, ``a``, ``b``, ``c``, ``d``), ``spline``,
or ``both`` (a spline plus a symbolic part). Edges that are off are omitted. After
:func:`~kanpiler.convert.auto_symbolic`, an edge also carries ``candidates``: a list of
``(fn, r2, complexity, (a, b, c, d))``; a spline edge that the fit explained as a sum of two
terms becomes ``symbolic`` with ``terms = [(fn, a, b, c), ...]`` and ``d`` (the model itself
keeps the spline there). Subnode-to-node edges have ``kind="subnode"``.

>>> import kanpiler
>>> from kanpiler.runtime import MultKAN
>>> m = MultKAN([2, [0, 1], 1], numeric=False, variables=["x", "y"])
>>> m.set_symbolic(0, 0, 0, "sin"); m.set_symbolic(0, 1, 1, "x"); m.set_symbolic(1, 0, 0, "x")
>>> g = to_graph(m)
>>> g.edges[("in", 0), (1, "sub", 0)]["fn"], g.nodes[(1, "mult", 0)]["arity"]
('sin', 2)
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import torch

from ..errors import KanpilerError
from ..runtime import MultKAN

__all__ = ["to_graph", "node_id", "output_nodes"]

_GRAPH_KIND = {"numeric": "spline", "symbolic": "symbolic", "both": "both"}


def node_id(model: MultKAN, li: int, j: int) -> tuple:
    """Graph id of node ``j`` of node layer ``li``."""
    kind = model.node_kind(li, j)
    return ("in", j) if kind == "input" else (li, kind, j)


def output_nodes(graph: nx.DiGraph) -> list[tuple]:
    """The ``("out", j)`` nodes in order."""
    outs = [n for n in graph.nodes if n[0] == "out"]
    return sorted(outs, key=lambda n: n[1])


def _add_nodes(g: nx.DiGraph, model: MultKAN) -> None:
    for i, name in enumerate(model.variables):
        g.add_node(("in", i), kind="input", layer=0, index=i, label=name, variable=name)
    for li in range(1, model.depth + 1):
        scale, bias = model.node_scale[li - 1].tolist(), model.node_bias[li - 1].tolist()
        for j in range(model.n_nodes(li)):
            kind = model.node_kind(li, j)
            arity = len(model.node_subnodes(li, j))
            label = "+" if kind == "sum" else "×"
            g.add_node(node_id(model, li, j), kind=kind, layer=li, index=j, label=label,
                       arity=arity, scale=scale[j], bias=bias[j])  # fmt: skip
        sub_scale = model.subnode_scale[li - 1].tolist()
        sub_bias = model.subnode_bias[li - 1].tolist()
        for j, (owner, slot) in enumerate(model.subnode_owner(li)):
            sid, oid = (li, "sub", j), node_id(model, li, owner)
            g.add_node(sid, kind="subnode", layer=li, index=j, label="", owner=oid, slot=slot,
                       scale=sub_scale[j], bias=sub_bias[j])  # fmt: skip
            g.add_edge(sid, oid, kind="subnode", slot=slot)
    for j in range(model.n_outputs):
        g.add_node(("out", j), kind="output", layer=model.depth + 1, index=j, label=f"y{j + 1}")
        g.add_edge(node_id(model, model.depth, j), ("out", j), kind="output")


def _add_edges(g: nx.DiGraph, model: MultKAN, candidates: dict, sums: dict) -> None:
    for li in range(model.depth):
        for edge in model.edges(li):
            i, j = edge.i, edge.j
            kind = _GRAPH_KIND[edge.kind]
            attrs: dict[str, Any] = {"kind": kind, "layer": li, "i": i, "j": j}
            if edge.fn is not None:
                attrs.update(fn=edge.fn, a=edge.a, b=edge.b, c=edge.c, d=edge.d)
            if (li, i, j) in candidates:
                attrs["candidates"] = candidates[(li, i, j)]
            fit = sums.get((li, i, j))
            if fit is not None and kind == "spline":
                # a two-term fit the model's single-function edge cannot hold
                attrs.update(kind="symbolic", fn=fit.fn, terms=list(fit.terms), d=fit.params[3])
            g.add_edge(node_id(model, li, i), (li + 1, "sub", j), **attrs)


def to_graph(model: MultKAN) -> nx.DiGraph:
    """The model as a networkx graph (see the module docstring for the id scheme)."""
    if not isinstance(model, MultKAN):
        raise KanpilerError(f"to_graph needs a kanpiler MultKAN, got {type(model).__name__}")
    g = nx.DiGraph(kind="kan", variables=tuple(model.variables), depth=model.depth,
                   width=[list(w) for w in model.width])  # fmt: skip
    report = model.symbolic_report
    candidates = report.candidates() if report is not None else {}
    sums = report.sums() if report is not None else {}
    with torch.no_grad():
        _add_nodes(g, model)
        _add_edges(g, model, candidates, sums)
    return g
