"""Graphviz views of formulas, layouts and models.

In: an ``Expr`` (or formula text / SymPy), a ``Layout``, a ``MultKAN``, or a networkx graph
from the converter. Out: a ``graphviz.Digraph`` (DOT source always works; SVG/PNG need
Graphviz's ``dot``). Stage: render, a leaf: ``trace_*`` collect nodes and edges, ``to_dot``
draws them.

>>> import kanpiler
>>> dot = kanpiler.render(kanpiler.lower("sin(x)*exp(y)"))
>>> "sin" in dot.source and "rankdir=LR" in dot.source
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import library
from .errors import RenderError
from .layout import INPUT, MULT, SUM, Layout, fmt

INSTALL_HINT = (
    "Graphviz's 'dot' program is not installed (the Python package 'graphviz' only writes DOT "
    "source). Install it with 'apt-get install graphviz' (Debian/Ubuntu), 'brew install "
    "graphviz' (macOS) or 'conda install -c conda-forge graphviz', or save the DOT source "
    "instead (a '.gv' path, or dot.source)."
)
FORMATS = ("svg", "png", "pdf")

_STYLE = {
    INPUT: {"shape": "box", "style": "rounded,filled", "fillcolor": "#e8f0fe"},
    SUM: {"shape": "circle", "style": "filled", "fillcolor": "#fff4d6", "width": "0.4"},
    "output": {"shape": "plaintext", "fontcolor": "#333333"},
}


@dataclass
class Drawing:
    """What a diagram shows: ranked nodes and labelled edges (no Graphviz involved)."""

    # id, label, kind (input/const/op/sum/mult/output), rank, arity
    nodes: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    tooltips: dict[str, str] = field(default_factory=dict)  # id -> what the node computes
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # from, to, label, style


# ---- collecting nodes and edges -------------------------------------------------------------


def affine_text(a: float, b: float) -> str:
    """``a*x + b`` compactly: ``x``, ``3x``, ``-x+1``, ``0.5x-2``."""
    lead = "x" if a == 1 else "-x" if a == -1 else f"{fmt(a)}x"
    return lead if b == 0 else f"{lead}{'+' if b > 0 else '-'}{fmt(abs(b))}"


def edge_formula(fn: str, a: float = 1.0, b: float = 0.0, c: float = 1.0, d: float = 0.0) -> str:
    """``c*fn(a*x+b)+d`` as a short label: ``2·sin(3x+1)+0.5``, ``(x-1)^2``, ``-x``; an edge
    that passes its input on unchanged gets ``""``."""
    p = library.get(fn).power
    if p == 1.0:
        text = affine_text(a * c, b * c)
        if text == "x" and d == 0:
            return ""
    else:
        inner = affine_text(a, b)
        if p is None:
            body = f"{library.get(fn).name}({inner})"
        else:
            body = (inner if inner == "x" else f"({inner})") + f"^{fmt(p)}"
        text = body if c == 1 else f"-{body}" if c == -1 else f"{fmt(c)}·{body}"
    if d:
        text += f"{'+' if d > 0 else '-'}{fmt(abs(d))}"
    return text


def trace_layout(layout: Layout) -> Drawing:
    """Nodes per node layer (inputs, sum, mult with one port per factor) and labelled edges."""
    edges = []
    for es in layout.edges:
        labels = [edge_formula(e.fn, e.a, e.b, e.c, e.d) for e in es]
        edges.append([(e.i, e.j, t, "" if t else "carry") for e, t in zip(es, labels)])
    return _network(layout.variables, layout.nodes, edges, layout.outputs)


def _network(variables, node_layers, edges, outputs) -> Drawing:  # noqa: ANN001
    drawing = Drawing()
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


def trace_model(model: Any) -> Drawing:
    """A MultKAN: through ``model.layout`` when compiled and untouched, else from its masks
    (symbolic edges labelled with their formula, numeric ones ``spline``)."""
    from .layout import Node

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
    outputs = list(getattr(model, "formulas", []) or [])
    return _network(list(model.variables), layers, edges, outputs)


def _model_edges(model: Any, li: int) -> list[tuple[int, int, str, str]]:
    sym, num = model.symbolic[li], model.layers[li]
    on_sym = (sym.mask != 0).cpu()
    on_num = (num.mask != 0).cpu()
    affine = sym.affine.detach().cpu()
    out = []
    for i, j in (on_sym | on_num).nonzero().tolist():
        parts = ["spline"] if on_num[i, j] else []
        if on_sym[i, j]:
            a, b, c, d = affine[i, j].tolist()
            parts.append(edge_formula(sym.function(i, j), a, b, c, d) or "x")
        label = " + ".join(parts)
        out.append((i, j, "" if label == "x" else label, "spline" if on_num[i, j] else ""))
    return out


_OP_LABEL = {"ADD": "+", "MUL": "×", "POW": "^", "NEG": "−", "RECIP": "1/"}


def trace_expr(expr: Any) -> Drawing:
    """The tree of operations of an expression (shared subexpressions drawn once), leaves left."""
    from .ir import Op, walk

    drawing, ids, height = Drawing(), {}, {}
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


# ---- drawing --------------------------------------------------------------------------------


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


def to_dot(drawing: Drawing, name: str = "kanpiler", ranked: bool = True) -> Any:
    """A ``graphviz.Digraph`` of a :class:`Drawing`, left to right, one column per rank."""
    import graphviz

    dot = graphviz.Digraph(name, graph_attr={"rankdir": "LR", "nodesep": "0.25"})
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
        elif kind == "const":
            dot.node(nid, label, shape="plaintext")
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
        dot.edge(src, dst, **attrs)
    if ranked:
        for rank, ids in sorted(columns.items()):
            with dot.subgraph(name=f"rank{rank}") as sub:
                sub.attr(rank="same")
                for nid in ids:
                    sub.node(nid)
                for first, then in zip(ids, ids[1:]):  # keep the order: inputs, outputs
                    if rank == 0 or rank == max(columns):
                        sub.edge(first, then, style="invis")
    return dot


def render(obj: Any, path: str | Path | None = None) -> Any:
    """A ``graphviz.Digraph`` of ``obj``: an ``Expr``, formula text or SymPy (its tree of
    operations), a ``Layout`` or a ``MultKAN`` (its network), or a networkx graph from the
    converter. With ``path`` the diagram is also written there (``.gv``/``.dot`` source, or
    ``.svg``/``.png``/``.pdf`` rendered by Graphviz's ``dot``).

    >>> import kanpiler
    >>> print(kanpiler.render("x*y + 1").source.count("->"))  # x, y -> ×; ×, 1 -> +
    4
    """
    dot = _dispatch(obj)
    if path is not None:
        save(dot, path)
    return dot


def _dispatch(obj: Any) -> Any:
    from .ir import Expr

    if isinstance(obj, Layout):
        return to_dot(trace_layout(obj), "layout")
    if isinstance(obj, Expr):
        return to_dot(trace_expr(obj), "expr", ranked=False)
    if isinstance(obj, str) or type(obj).__module__.startswith("sympy"):
        from .parse import parse

        return to_dot(trace_expr(parse(obj)), "expr", ranked=False)
    if type(obj).__module__.startswith("networkx"):
        from .convert.draw import to_dot as graph_to_dot

        return graph_to_dot(obj)
    if hasattr(obj, "symbolic") and hasattr(obj, "width"):
        layout = getattr(obj, "layout", None)
        if isinstance(layout, Layout) and _untouched(obj, layout):
            return to_dot(trace_layout(layout), "model")
        return to_dot(trace_model(obj), "model")
    raise RenderError(
        f"cannot draw a {type(obj).__name__}: render takes an Expr, formula text, a SymPy "
        "expression, a Layout, a MultKAN or a networkx graph from kanpiler.to_graph/tree"
    )


def _untouched(model: Any, layout: Layout) -> bool:
    """Whether the model still holds exactly its compiled layout (same shape, no spline edge
    switched on, no parameter changed by training); otherwise the model itself is drawn."""
    from .compiler import check_build
    from .errors import VerifyError

    if model.width != layout.width:
        return False
    try:
        check_build(model, layout)
    except VerifyError:
        return False
    return True


def save(dot: Any, path: str | Path) -> Path:
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


def pipe(dot: Any, format: str = "svg") -> bytes:
    """The rendered diagram as bytes (``svg``, ``png``, ``pdf``); needs Graphviz's ``dot``."""
    import graphviz

    try:
        return dot.pipe(format=format)
    except graphviz.ExecutableNotFound as err:
        raise RenderError(INSTALL_HINT) from err
    except graphviz.CalledProcessError as err:
        raise RenderError(f"Graphviz failed to render the diagram: {err}") from err


def to_svg(obj: Any) -> str:
    """SVG text of ``render(obj)`` (or of a ``graphviz.Digraph``)."""
    dot = obj if hasattr(obj, "pipe") and hasattr(obj, "source") else render(obj)
    return pipe(dot, "svg").decode("utf-8")


__all__ = ["render", "save", "pipe", "to_svg", "to_dot", "trace_layout", "trace_model",
           "trace_expr", "edge_formula", "Drawing", "INSTALL_HINT"]  # fmt: skip
