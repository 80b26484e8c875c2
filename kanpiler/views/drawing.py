"""Drawings of formulas, layouts and models: nodes and labelled edges, no Graphviz.

In: an ``Expr``, a ``Layout`` or a ``MultKAN``. Out: a :class:`Drawing` (ranked nodes, edges
labelled by ``labels.edge_formula``) that ``views.dot`` turns into Graphviz. Stage: views.

>>> from kanpiler import lower
>>> d = trace_layout(lower("sin(x)*exp(y)"))
>>> sorted({kind for _, _, kind, _, _ in d.nodes})
['input', 'mult', 'output']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..ir import Expr, Op, walk
from ..layout import INPUT, MULT, SUM, Layout, Node, fmt
from .labels import affine_text, edge_formula

if TYPE_CHECKING:
    from ..runtime import MultKAN


@dataclass
class Drawing:
    """What a diagram shows: ranked nodes and labelled edges (no Graphviz involved).

    Node kinds: ``input``, ``sum``, ``mult`` (one port per factor), ``op``, ``const``,
    ``output`` (the layout/model/expression views) and ``point``, ``circle``, ``box``, ``text``
    (the converter's graphs). Edge styles: ``""``, ``carry``, ``spline``, ``output``, ``line``.
    """

    # id, label, kind, rank, arity
    nodes: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    tooltips: dict[str, str] = field(default_factory=dict)  # id -> what the node computes
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # from, to, label, style
    name: str = "kanpiler"
    direction: str = "LR"  # Graphviz rankdir
    ranked: bool = True  # one column per rank (inputs and outputs kept in order)


# ---- collecting nodes and edges -------------------------------------------------------------


def trace_layout(layout: Layout) -> Drawing:
    """Nodes per node layer (inputs, sum, mult with one port per factor) and labelled edges."""
    edges = []
    for es in layout.edges:
        labels = [edge_formula(e.fn, e.a, e.b, e.c, e.d) for e in es]
        edges.append([(e.i, e.j, t, "" if t else "carry") for e, t in zip(es, labels)])
    return _network(layout.variables, layout.nodes, edges, layout.outputs, "layout")


def _network(
    variables: Sequence[str],
    node_layers: Sequence[Sequence[Node]],
    edges: Sequence[Sequence[tuple[int, int, str, str]]],
    outputs: Sequence[str],
    name: str,
) -> Drawing:
    drawing = Drawing(name=name)
    ports: list[list[str]] = []
    for li, layer in enumerate(node_layers):
        layer_ports: list[str] = []
        for k, node in enumerate(layer):
            nid = f"n{li}_{k}"
            if node.kind == INPUT:
                drawing.nodes.append((nid, variables[k], INPUT, li, 1))
                continue
            affine = (
                "" if (node.scale, node.bias) == (1.0, 0.0) else affine_text(node.scale, node.bias)
            )
            drawing.nodes.append((nid, affine.replace("x", "v"), node.kind, li, node.arity))
            if node.label:
                drawing.tooltips[nid] = node.label
            if node.kind == MULT:
                layer_ports += [f"{nid}:f{s}:w" for s in range(node.arity)]
            else:
                layer_ports.append(nid)
        ports.append(layer_ports)
    for li, row in enumerate(edges):
        for i, j, label, style in row:
            drawing.edges.append((f"n{li}_{i}", ports[li + 1][j], label, style))
    last = len(node_layers) - 1
    for k, text in enumerate(outputs):
        drawing.nodes.append((f"out{k}", text, "output", last + 1, 1))
        drawing.edges.append((f"n{last}_{k}", f"out{k}", "", "output"))
    return drawing


def trace_model(model: MultKAN) -> Drawing:
    """A MultKAN from its structure (symbolic edges labelled with their formula, numeric ones
    ``spline``); ``render`` draws a compiled, untouched model through its layout instead."""
    layers = []
    for li, (n_sum, n_mult) in enumerate(model.width):
        if li == 0:
            layers.append([Node(INPUT)] * n_sum)
            continue
        scale = model.node_scale[li - 1].detach().cpu().tolist()
        bias = model.node_bias[li - 1].detach().cpu().tolist()
        arities = [1] * n_sum + list(model.mult_arity[li])
        kinds = [SUM] * n_sum + [MULT] * n_mult
        layers.append([Node(k, a, s, b) for k, a, s, b in zip(kinds, arities, scale, bias)])
    edges = [_model_edges(model, li) for li in range(model.depth)]
    outputs = list(model.source_formulas or [])
    return _network(list(model.variables), layers, edges, outputs, "model")


def _model_edges(model: MultKAN, li: int) -> list[tuple[int, int, str, str]]:
    out = []
    for e in model.edges(li):
        spline = e.kind in ("numeric", "both")
        parts = ["spline"] if spline else []
        if e.fn is not None:
            parts.append(edge_formula(e.fn, e.a, e.b, e.c, e.d) or "x")
        label = " + ".join(parts)
        out.append((e.i, e.j, "" if label == "x" else label, "spline" if spline else ""))
    return out


_OP_LABEL = {"ADD": "+", "MUL": "×", "POW": "^", "NEG": "−", "RECIP": "1/"}


def trace_expr(expr: Expr) -> Drawing:
    """The tree of operations of an expression (shared subexpressions drawn once), leaves left."""
    drawing = Drawing(name="expr", ranked=False)
    ids: dict[Expr, str] = {}
    height: dict[Expr, int] = {}
    for k, node in enumerate(walk(expr)):
        nid = ids[node] = f"e{k}"
        height[node] = 1 + max((height[a] for a in node.args), default=-1)
        if node.op is Op.VAR:
            drawing.nodes.append((nid, node.arg, INPUT, 0, 1))
            continue
        if node.op in (Op.CONST, Op.NAMED):
            label = fmt(float(node.arg)) if node.op is Op.CONST else node.arg
            drawing.nodes.append((nid, label, "const", 0, 1))
            continue
        label = node.arg if node.op is Op.CALL else _OP_LABEL[node.op.name]
        drawing.nodes.append((nid, label, "op", height[node], 1))
        for pos, child in enumerate(node.args):
            tag = "exponent" if node.op is Op.POW and pos == 1 else ""
            drawing.edges.append((ids[child], nid, tag, ""))
    return drawing


__all__ = ["Drawing", "trace_layout", "trace_model", "trace_expr"]
