"""Graphviz drawings of the converter's graphs: extracted networks and separability trees.

In: a networkx graph from :func:`~kanpiler.convert.to_graph` (``kind="kan"``) or
:func:`~kanpiler.convert.tree` (``kind="tree"``). Out: a ``graphviz.Digraph`` (DOT source;
rendering to SVG/PNG needs Graphviz's ``dot``). Stage: convert (a leaf view).

>>> import torch
>>> from kanpiler.convert import tree
>>> X = torch.rand(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> dot = to_dot(tree(lambda v: v[:, 0] * v[:, 1], X, ["x", "y"]))
>>> "Mul" in dot.source
True
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import RenderError

__all__ = ["to_dot", "edge_label"]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def edge_label(attrs: dict[str, Any]) -> str:
    """A short formula for a KAN edge: ``2*sin(3*x + 1)``, ``spline``, ``spline + exp(x)``."""
    if "fn" not in attrs:
        return "spline"
    from .. import library

    if "terms" in attrs:
        parts = [edge_label({"kind": "symbolic", "fn": fn, "a": a, "b": b, "c": c, "d": 0.0})
                 for fn, a, b, c in attrs["terms"]]  # fmt: skip
        return " + ".join(parts) + (f" + {_fmt(attrs['d'])}" if attrs["d"] else "")

    a, b, c, d = (attrs[k] for k in "abcd")
    inner = "x" if (a, b) == (1.0, 0.0) else f"{_fmt(a)}*x" + (f" + {_fmt(b)}" if b else "")
    fn = library.get(attrs["fn"])
    if fn.power == 1.0:
        text = inner if c == 1.0 else f"{_fmt(c)}*({inner})"
    else:
        body = f"({inner})^{_fmt(fn.power)}" if fn.power is not None else f"{fn.name}({inner})"
        text = body if c == 1.0 else f"{_fmt(c)}*{body}"
    text += f" + {_fmt(d)}" if d else ""
    return f"spline + {text}" if attrs["kind"] == "both" else text


def _curve_image(model: Any, attrs: dict[str, Any], folder: Path) -> str:
    """A tiny PNG of a spline edge's curve over its grid (written only when asked)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import torch

    li, i, j = attrs["layer"], attrs["i"], attrs["j"]
    layer = model.layers[li]
    knots = layer.basis.inner[i]
    xs = torch.linspace(float(knots[0]), float(knots[-1]), 100, dtype=model.dtype)
    grid = xs[:, None].expand(-1, layer.in_features).to(model.device)
    with torch.no_grad():
        ys = layer.edge_values(grid)[:, i, j].cpu()
    fig, ax = plt.subplots(figsize=(0.8, 0.6), dpi=72)
    ax.plot(xs.numpy(), ys.numpy(), color="black", linewidth=1)
    ax.axis("off")
    path = folder / f"edge_{li}_{i}_{j}.png"
    fig.savefig(path, transparent=True)
    plt.close(fig)
    return str(path)


def _kan_dot(g: nx.DiGraph, model: Any = None, images: bool = False) -> Any:
    import graphviz

    dot = graphviz.Digraph("kan", graph_attr={"rankdir": "BT", "splines": "true"})
    folder = Path(tempfile.mkdtemp(prefix="kanpiler-edges-")) if images and model else None
    for n, attrs in g.nodes(data=True):
        kind = attrs["kind"]
        if kind == "subnode":
            dot.node(str(n), "", shape="point", width="0.06")
        elif kind in ("input", "output"):
            dot.node(str(n), attrs["label"], shape="plaintext")
        else:
            extra = (
                ""
                if (attrs["scale"], attrs["bias"]) == (1.0, 0.0)
                else (f"\n{_fmt(attrs['scale'])}*v + {_fmt(attrs['bias'])}")
            )
            dot.node(str(n), attrs["label"] + extra, shape="circle")
    for u, v, attrs in g.edges(data=True):
        if attrs["kind"] in ("subnode", "output"):
            dot.edge(str(u), str(v), arrowhead="none")
        elif folder is not None and attrs["kind"] == "spline":
            img = _curve_image(model, attrs, folder)
            dot.edge(str(u), str(v), label=f'<<IMG SRC="{img}"/>>')
        else:
            dot.edge(str(u), str(v), label=edge_label(attrs), fontsize="9")
    return dot


def _tree_dot(g: nx.DiGraph) -> Any:
    import graphviz

    dot = graphviz.Digraph("tree", graph_attr={"rankdir": "TB"})
    for n, attrs in g.nodes(data=True):
        shape = "plaintext" if attrs["kind"] == "var" else "box"
        dot.node(str(n), attrs["label"], shape=shape)
    for u, v in g.edges:
        dot.edge(str(u), str(v), arrowhead="none")
    return dot


def to_dot(graph: nx.DiGraph, *, model: Any = None, images: bool = False) -> Any:
    """A ``graphviz.Digraph`` of a ``kan`` graph (edges labelled with their formula) or a
    ``tree`` (boxes for Add / Mul / F / G nodes, plain text for variables).

    With ``images=True`` and the ``model`` the graph came from, spline edges show a tiny PNG
    of their curve (files go to a fresh temporary folder; nothing is written otherwise).
    """
    kind = graph.graph.get("kind") if isinstance(graph, nx.DiGraph) else None
    if kind == "kan":
        return _kan_dot(graph, model, images)
    if kind == "tree":
        return _tree_dot(graph)
    raise RenderError(
        f"to_dot draws graphs from kanpiler.to_graph or kanpiler.tree (graph.graph['kind'] "
        f"'kan' or 'tree'); got {type(graph).__name__} with kind {kind!r}"
    )
