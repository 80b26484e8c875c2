"""Graphviz for every drawing: a :class:`Drawing` to DOT, and DOT to files or bytes.

In: a ``Drawing`` (``views.drawing``, ``views.graphs``). Out: a ``graphviz.Digraph`` (DOT
source always works), SVG/PNG/PDF bytes or files (these need Graphviz's ``dot`` program).
Stage: views; the only module that calls graphviz.
"""

from __future__ import annotations

from pathlib import Path

import graphviz

from ..errors import RenderError
from ..layout import INPUT, MULT, SUM
from .drawing import Drawing

INSTALL_HINT = (
    "Graphviz's 'dot' program is not installed (the Python package 'graphviz' only writes DOT "
    "source). Install it with 'apt-get install graphviz' (Debian/Ubuntu), 'brew install "
    "graphviz' (macOS) or 'conda install -c conda-forge graphviz', or save the DOT source "
    "instead (a '.gv' path, or dot.source)."
)
FORMATS = ("svg", "png", "pdf")

_STYLE: dict[str, dict[str, str]] = {
    INPUT: {"shape": "box", "style": "rounded,filled", "fillcolor": "#e8f0fe"},
    SUM: {"shape": "circle", "style": "filled", "fillcolor": "#fff4d6", "width": "0.4"},
    "output": {"shape": "plaintext", "fontcolor": "#333333"},
}


def _mult_label(arity: int, affine: str) -> str:
    """An HTML-like label: one port per factor on the left, the product sign on the right."""
    rows = "".join(
        f'<tr><td port="f{s}" width="10" height="8"></td>'
        + (
            f'<td rowspan="{arity}" bgcolor="#fde2e4">×{("<br/>" + affine) if affine else ""}</td>'
            if s == 0
            else ""
        )
        + "</tr>"
        for s in range(arity)
    )
    return f'<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">{rows}</table>>'


def digraph(drawing: Drawing) -> graphviz.Digraph:
    """The ``graphviz.Digraph`` of a :class:`Drawing` (the one place DOT is built)."""
    dot = graphviz.Digraph(
        drawing.name, graph_attr={"rankdir": drawing.direction, "nodesep": "0.25"}
    )
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9", arrowsize="0.6")
    columns: dict[int, list[str]] = {}
    for nid, label, kind, rank, arity in drawing.nodes:
        columns.setdefault(rank, []).append(nid)
        tip = {"tooltip": drawing.tooltips[nid]} if nid in drawing.tooltips else {}
        if kind == MULT:
            dot.node(nid, _mult_label(arity, label), shape="plaintext", **tip)
        elif kind == SUM:
            dot.node(nid, "+" + (f"\\n{label}" if label else ""), **_STYLE[SUM], **tip)
        elif kind == "op":
            dot.node(nid, label, shape="ellipse", style="filled", fillcolor="#fff4d6")
        elif kind in ("const", "text"):
            dot.node(nid, label, shape="plaintext")
        elif kind == "point":
            dot.node(nid, "", shape="point", width="0.06")
        elif kind in ("circle", "box"):
            dot.node(nid, label, shape=kind)
        else:
            dot.node(nid, label, **_STYLE[kind])
    for src, dst, label, style in drawing.edges:
        attrs = {"label": label} if label else {}
        if style == "carry":
            attrs.update(style="dashed", color="#888888")
        elif style == "spline":
            attrs.update(color="#1a73e8")
        elif style == "output":
            attrs.update(arrowhead="none", style="dotted")
        elif style == "line":
            attrs.update(arrowhead="none")
        dot.edge(src, dst, **attrs)
    if drawing.ranked:
        for rank, ids in sorted(columns.items()):
            with dot.subgraph(name=f"rank{rank}") as sub:
                sub.attr(rank="same")
                for nid in ids:
                    sub.node(nid)
                for first, then in zip(ids, ids[1:]):  # keep the order: inputs, outputs
                    if rank == 0 or rank == max(columns):
                        sub.edge(first, then, style="invis")
    return dot


def save(dot: graphviz.Digraph, path: str | Path) -> Path:
    """Write ``dot`` to ``path``: DOT source for ``.gv``/``.dot``, else rendered by ``dot``."""
    path = Path(path)
    fmt_ = path.suffix.lstrip(".").lower()
    if fmt_ in ("gv", "dot"):
        path.write_text(dot.source, encoding="utf-8")
        return path
    if fmt_ not in FORMATS:
        raise RenderError(f"cannot write {path.name!r}: use a .gv, .dot, .svg, .png or .pdf path")
    path.write_bytes(pipe(dot, fmt_))
    return path


def pipe(dot: graphviz.Digraph, format: str = "svg") -> bytes:
    """The rendered diagram as bytes (``svg``, ``png``, ``pdf``); needs Graphviz's ``dot``."""
    try:
        return dot.pipe(format=format)
    except graphviz.ExecutableNotFound as err:
        raise RenderError(INSTALL_HINT) from err
    except graphviz.CalledProcessError as err:
        raise RenderError(f"Graphviz failed to render the diagram: {err}") from err


__all__ = ["digraph", "save", "pipe", "INSTALL_HINT", "FORMATS"]
