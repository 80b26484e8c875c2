"""Views: Graphviz diagrams of everything kanpiler knows (formulas, layouts, models, and the
converter's graphs and trees).

In: an ``Expr``/text/SymPy, a ``Layout``, a ``MultKAN`` or a converter graph. Out: a
``graphviz.Digraph`` (``to_dot``, ``render``), files (``save``) or SVG text (``to_svg``).
Stage: views, a leaf above the compiler and the converter. Modules: ``labels`` (the one
edge-label formatter), ``drawing`` and ``graphs`` (nodes and edges, no Graphviz), ``dot`` (the
Graphviz calls), ``dispatch`` (what to draw for each kind of object).

>>> print(to_dot("sin(x)").source.count("->"))
1
"""

from __future__ import annotations

from .dispatch import render, to_dot, to_svg, trace
from .dot import FORMATS, INSTALL_HINT, digraph, pipe, save
from .drawing import Drawing, trace_expr, trace_layout, trace_model
from .graphs import trace_graph
from .labels import affine_text, edge_formula, edge_label

__all__ = [
    "render",
    "to_dot",
    "to_svg",
    "save",
    "pipe",
    "digraph",
    "trace",
    "Drawing",
    "trace_expr",
    "trace_layout",
    "trace_model",
    "trace_graph",
    "edge_formula",
    "edge_label",
    "affine_text",
    "INSTALL_HINT",
    "FORMATS",
]
