"""Dispatch: anything kanpiler knows to a Graphviz diagram (the one ``to_dot``, ``render``).

In: an ``Expr`` (or formula text / SymPy), a ``Layout``, a ``MultKAN``, or a networkx graph
from the converter (``to_graph``, ``tree``). Out: a ``graphviz.Digraph``; ``render`` can also
write it (``.gv`` source, or ``.svg``/``.png``/``.pdf`` through Graphviz's ``dot``). Stage:
views, a leaf: ``drawing``/``graphs`` collect nodes and edges, ``dot`` builds the DOT.

>>> import kanpiler
>>> dot = kanpiler.render(kanpiler.lower("sin(x)*exp(y)"))
>>> "sin" in dot.source and "rankdir=LR" in dot.source
True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compiler import check_build
from ..errors import RenderError, VerifyError
from ..ir import Expr
from ..layout import Layout
from ..parser import parse
from .dot import digraph, pipe, save
from .drawing import Drawing, trace_expr, trace_layout, trace_model
from .graphs import graph_kind, trace_graph

if TYPE_CHECKING:
    import graphviz


def to_dot(obj: Any, *, model: Any = None, images: bool = False) -> graphviz.Digraph:
    """A ``graphviz.Digraph`` of ``obj``: an ``Expr``, formula text or SymPy (its tree of
    operations), a ``Layout`` or a ``MultKAN`` (its network), a converter graph, or a
    ``Drawing``. For a converter KAN graph, ``images=True`` with the ``model`` it came from
    draws spline edges as tiny curve PNGs (in a fresh temporary folder).

    >>> print(to_dot("x*y + 1").source.count("->"))  # x, y -> ×; ×, 1 -> +
    4
    """
    return digraph(trace(obj, model=model, images=images))


def trace(obj: Any, *, model: Any = None, images: bool = False) -> Drawing:
    """The :class:`Drawing` of anything :func:`to_dot` takes."""
    if isinstance(obj, Drawing):
        return obj
    if isinstance(obj, Layout):
        return trace_layout(obj)
    if isinstance(obj, Expr):
        return trace_expr(obj)
    if isinstance(obj, str) or type(obj).__module__.startswith("sympy"):
        return trace_expr(parse(obj))
    if graph_kind(obj) is not None or type(obj).__module__.startswith("networkx"):
        return trace_graph(obj, model, images)
    if hasattr(obj, "symbolic") and hasattr(obj, "width"):
        layout = getattr(obj, "layout", None)
        if isinstance(layout, Layout) and _untouched(obj, layout):
            drawing = trace_layout(layout)
            drawing.name = "model"
            return drawing
        return trace_model(obj)
    raise RenderError(
        f"cannot draw a {type(obj).__name__}: to_dot and render take an Expr, formula text, a "
        "SymPy expression, a Layout, a MultKAN or a networkx graph from kanpiler.to_graph/tree"
    )


def render(obj: Any, path: str | Path | None = None) -> graphviz.Digraph:
    """``to_dot(obj)``; with ``path`` the diagram is also written there (``.gv``/``.dot``
    source, or ``.svg``/``.png``/``.pdf`` rendered by Graphviz's ``dot``).

    >>> import kanpiler
    >>> print(kanpiler.render("x*y + 1").source.count("->"))  # x, y -> ×; ×, 1 -> +
    4
    """
    dot = to_dot(obj)
    if path is not None:
        save(dot, path)
    return dot


def _untouched(model: Any, layout: Layout) -> bool:
    """Whether the model still holds exactly its compiled layout (same shape, no spline edge
    switched on, no parameter changed by training); otherwise the model itself is drawn."""
    if model.width != layout.width:
        return False
    try:
        check_build(model, layout)
    except VerifyError:
        return False
    return True


def to_svg(obj: Any) -> str:
    """SVG text of ``render(obj)`` (or of a ``graphviz.Digraph``)."""
    dot = obj if hasattr(obj, "pipe") and hasattr(obj, "source") else render(obj)
    return pipe(dot, "svg").decode("utf-8")


__all__ = ["render", "to_dot", "to_svg", "trace"]
