"""Extraction of formulas: a network's graph read as SymPy expressions.

In: a ``MultKAN`` (or its :func:`~kanpiler.convert.to_graph` graph) whose active edges are
symbolic. Out: :func:`formula`, one SymPy expression per output (a list), in plain
``sympy.Symbol``s named after ``model.variables``, constants snapped and simplified by a
work-bounded sequence of rewrites. Stage: convert (``kanpiler.formula(model)`` is this function).

>>> import kanpiler
>>> from kanpiler.runtime import MultKAN
>>> m = MultKAN([2, [0, 1], 1], numeric=False, variables=["x", "y"])
>>> m.set_symbolic(0, 0, 0, "exp", 1.0, 0.0, 1.0, 0.0)
>>> m.set_symbolic(0, 1, 1, "sin", 3.1415927, 0.0, 1.0, 0.0)
>>> m.set_symbolic(1, 0, 0, "x", 1.0, 0.0, 0.5, 0.0)
>>> formula(m)
[exp(x)*sin(pi*y)/2]
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import sympy
import torch

from .. import library
from ..errors import KanpilerError, UnsupportedError
from ..runtime import MultKAN
from .cleanup import normalize_powers, simplify_bounded
from .constants import snap_constants
from .graph import output_nodes, to_graph

__all__ = ["formula", "graph_to_sympy", "bounded_simplify", "MAX_LAYERS"]

#: deeper models are refused by :func:`formula` (SymPy recurses once per level)
MAX_LAYERS = 60


def _num(v: float) -> sympy.Expr:
    """An exact Integer for integral values (so ``1.0*`` never appears), else a Float."""
    if not math.isfinite(float(v)):
        raise KanpilerError(f"a node holds the non-finite parameter {v} and has no formula")
    return sympy.Integer(int(v)) if float(v).is_integer() else sympy.Float(v)


def _edge_expr(attrs: dict[str, Any], x: sympy.Expr, where: tuple) -> sympy.Expr:
    if attrs["kind"] != "symbolic":
        layer, i, j = attrs["layer"], attrs["i"], attrs["j"]
        raise KanpilerError(
            f"edge (layer {layer}, input {i}, subnode {j}) from {where} is a {attrs['kind']} "
            "edge with no formula yet: run kanpiler.auto_symbolic(model) (or "
            "kanpiler.convert.symbolic_pipeline) first, or lock it with model.set_symbolic"
        )
    terms = attrs.get("terms") or [(attrs["fn"], attrs["a"], attrs["b"], attrs["c"])]
    values = [v for t in terms for v in t[1:]] + [attrs["d"]]
    if not all(math.isfinite(float(v)) for v in values):
        raise KanpilerError(
            f"edge (layer {attrs['layer']}, input {attrs['i']}, subnode {attrs['j']}) holds NaN "
            "or infinite parameters (a diverged training?); it has no formula"
        )
    out = [_num(c) * library.get(fn).to_sympy(_num(a) * x + _num(b)) for fn, a, b, c in terms]
    return sympy.Add(*out) + _num(attrs["d"])


def graph_to_sympy(graph: nx.DiGraph) -> list[sympy.Expr]:
    """Raw SymPy expressions of the outputs (no snapping, no simplification)."""
    if graph.graph.get("kind") != "kan":
        raise KanpilerError("graph_to_sympy needs a graph made by to_graph(model) (kind 'kan')")
    value: dict[Any, sympy.Expr] = {}
    order = sorted(graph.nodes, key=lambda n: (graph.nodes[n]["layer"], _rank(graph, n)))
    for n in order:
        attrs = graph.nodes[n]
        kind = attrs["kind"]
        if kind == "input":
            value[n] = sympy.Symbol(attrs["variable"])
        elif kind == "subnode":
            terms = [_edge_expr(graph.edges[p, n], value[p], p) for p in graph.predecessors(n)]
            value[n] = _num(attrs["scale"]) * sympy.Add(*terms) + _num(attrs["bias"])
        elif kind in ("sum", "mult"):
            subs = sorted(graph.predecessors(n), key=lambda s: graph.nodes[s]["slot"])
            inner = sympy.Mul(*(value[s] for s in subs))
            value[n] = _num(attrs["scale"]) * inner + _num(attrs["bias"])
        else:  # output
            (src,) = graph.predecessors(n)
            value[n] = value[src]
    return [value[o] for o in output_nodes(graph)]


def _rank(graph: nx.DiGraph, n: Any) -> int:
    # within a layer: subnodes before the nodes they feed, outputs last
    return {"input": 0, "subnode": 0, "sum": 1, "mult": 1, "output": 2}[graph.nodes[n]["kind"]]


def bounded_simplify(expr: sympy.Expr, timeout: float | None = None) -> sympy.Expr:
    """Simplify ``expr`` by a fixed, size-bounded sequence of rewrites
    (:func:`~kanpiler.convert.cleanup.simplify_bounded`); never a clock, thread or signal.

    ``timeout`` is accepted for compatibility and ignored: the work is bounded by the
    expression's size, so the result is the same on an idle and a loaded machine.
    """
    return simplify_bounded(expr)


def formula(
    model: MultKAN | nx.DiGraph,
    *,
    simplify: bool = True,
    snap: bool = True,
    timeout: float | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
) -> list[sympy.Expr]:
    """One SymPy expression per output of ``model`` (a list, also for one output).

    Exact for symbolic edges ``c*f(a*x+b)+d``; every active edge must be symbolic (a spline
    edge raises a ``KanpilerError`` saying to run ``auto_symbolic`` first). With ``snap``,
    floats within ``rtol`` of simple closed forms become exact (before and after
    simplification; by default ``1e-9`` for float64 models and ``1e-6`` otherwise: a closer
    snap changes nothing the model's own precision could tell apart; float noise such as the
    ``1e-17`` of an exact cancellation goes and numeric factors merge first); with ``simplify``,
    each output is simplified by :func:`bounded_simplify` (bounded by work, not time, so the
    text is the same on any machine; ``timeout`` is ignored). ``model`` may also be a graph from
    :func:`to_graph` (then the float32 tolerance applies unless ``rtol`` is given). Floats
    with ``|v| <= atol`` become 0 (off by default: a compiled model's constants are exact).

    ``kanpiler.formula(model)`` is this function; ``kanpiler.to_sympy`` takes expressions and
    text only and points here for a model.
    """
    depth = model.depth if isinstance(model, MultKAN) else 0
    if depth > MAX_LAYERS:
        raise UnsupportedError(
            f"a model of {depth} layers is too deep to read as one SymPy expression (at most "
            f"{MAX_LAYERS}); SymPy's algorithms recurse once per level"
        )
    graph = model if isinstance(model, nx.DiGraph) else to_graph(model)
    if rtol is None:
        exact = isinstance(model, MultKAN) and model.dtype == torch.float64
        rtol = 1e-9 if exact else 1e-6
    out = []
    for expr in graph_to_sympy(graph):
        if snap:
            expr = normalize_powers(snap_constants(expr, rtol, atol=atol))
        if simplify:
            expr = bounded_simplify(expr, timeout)
            if snap:
                expr = snap_constants(normalize_powers(expr), rtol, atol=atol)
        out.append(expr)
    return out
