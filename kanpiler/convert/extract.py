"""Extraction of formulas: a network's graph read as SymPy expressions.

In: a ``MultKAN`` (or its :func:`~kanpiler.convert.to_graph` graph) whose active edges are
symbolic. Out: :func:`formula`, one SymPy expression per output (a list), in plain
``sympy.Symbol``s named after ``model.variables``, constants snapped and simplified under a
time bound. Stage: convert (``kanpiler.formula(model)`` is this function).

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

import signal
import threading
from typing import Any

import networkx as nx
import sympy
import torch

from .. import library
from ..errors import KanpilerError
from ..runtime import MultKAN
from .constants import snap_constants
from .graph import output_nodes, to_graph

__all__ = ["formula", "graph_to_sympy", "bounded_simplify"]


def _num(v: float) -> sympy.Expr:
    """An exact Integer for integral values (so ``1.0*`` never appears), else a Float."""
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


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so SymPy's ``except Exception`` cannot eat it."""


def _with_alarm(fn: Any, timeout: float) -> Any:
    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _with_thread(fn: Any, timeout: float) -> Any:
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        raise _Timeout
    return box[0]


def bounded_simplify(expr: sympy.Expr, timeout: float = 5.0) -> sympy.Expr:
    """``sympy.simplify`` that gives up after ``timeout`` seconds and returns ``expr``.

    On the main thread of a Unix process an interval timer interrupts SymPy; elsewhere the
    work runs in a daemon thread that is abandoned on timeout. The simpler of the input and
    the result (by ``count_ops``) is returned.
    """
    if timeout <= 0:
        return expr
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    try:
        run = _with_alarm if alarm else _with_thread
        out = run(lambda: sympy.simplify(expr), timeout)
    except _Timeout:
        return expr
    return out if sympy.count_ops(out) <= sympy.count_ops(expr) else expr


def formula(
    model: MultKAN | nx.DiGraph,
    *,
    simplify: bool = True,
    snap: bool = True,
    timeout: float = 5.0,
    rtol: float | None = None,
    atol: float = 0.0,
) -> list[sympy.Expr]:
    """One SymPy expression per output of ``model`` (a list, also for one output).

    Exact for symbolic edges ``c*f(a*x+b)+d``; every active edge must be symbolic (a spline
    edge raises a ``KanpilerError`` saying to run ``auto_symbolic`` first). With ``snap``,
    floats within ``rtol`` of simple closed forms become exact (before and after
    simplification; by default ``1e-9`` for float64 models and ``1e-6`` otherwise: a closer
    snap changes nothing the model's own precision could tell apart); with ``simplify``, each
    output is simplified for at most ``timeout`` seconds. ``model`` may also be a graph from
    :func:`to_graph` (then the float32 tolerance applies unless ``rtol`` is given). Floats
    with ``|v| <= atol`` become 0 (off by default: a compiled model's constants are exact).

    ``kanpiler.formula(model)`` is this function; ``kanpiler.to_sympy`` takes expressions and
    text only and points here for a model.
    """
    graph = model if isinstance(model, nx.DiGraph) else to_graph(model)
    if rtol is None:
        exact = isinstance(model, MultKAN) and model.dtype == torch.float64
        rtol = 1e-9 if exact else 1e-6
    out = []
    for expr in graph_to_sympy(graph):
        if snap:
            expr = snap_constants(expr, rtol, atol=atol)
        if simplify:
            expr = bounded_simplify(expr, timeout)
            if snap:
                expr = snap_constants(expr, rtol, atol=atol)
        out.append(expr)
    return out
