"""Drawings of the converter's graphs: extracted KAN networks and separability trees.

In: a networkx graph from ``kanpiler.to_graph`` (``graph.graph["kind"] == "kan"``) or
``kanpiler.tree`` (``"tree"``). Out: a :class:`~kanpiler.views.drawing.Drawing` (edges labelled
by ``labels.edge_label``); with ``images`` and the model, tiny curve PNGs of spline edges in a
fresh temporary folder (nothing is written otherwise). Stage: views.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..errors import RenderError
from ..layout import fmt
from .drawing import Drawing
from .labels import edge_label


def graph_kind(obj: Any) -> str | None:
    """``"kan"`` or ``"tree"`` for a converter graph, else ``None``."""
    meta = getattr(obj, "graph", None)
    return meta.get("kind") if isinstance(meta, dict) else None


def trace_graph(graph: Any, model: Any = None, images: bool = False) -> Drawing:
    """A converter graph as a :class:`Drawing` (KAN graphs bottom-up, trees top-down)."""
    kind = graph_kind(graph)
    if kind == "kan":
        return _trace_kan(graph, model if images else None)
    if kind == "tree":
        return _trace_tree(graph)
    raise RenderError(
        f"cannot draw a {type(graph).__name__} with graph.graph['kind'] {kind!r}: the views draw "
        "graphs from kanpiler.to_graph ('kan') or kanpiler.tree ('tree')"
    )


def _trace_kan(g: Any, model: Any) -> Drawing:
    drawing = Drawing(name="kan", direction="BT", ranked=False)
    folder = Path(tempfile.mkdtemp(prefix="kanpiler-edges-")) if model is not None else None
    for n, attrs in g.nodes(data=True):
        kind = attrs["kind"]
        if kind == "subnode":
            drawing.nodes.append((str(n), "", "point", 0, 1))
        elif kind in ("input", "output"):
            drawing.nodes.append((str(n), attrs["label"], "text", 0, 1))
        else:
            affine = (attrs["scale"], attrs["bias"])
            extra = "" if affine == (1.0, 0.0) else f"\n{fmt(affine[0])}*v + {fmt(affine[1])}"
            drawing.nodes.append((str(n), attrs["label"] + extra, "circle", 0, 1))
    for u, v, attrs in g.edges(data=True):
        if attrs["kind"] in ("subnode", "output"):
            drawing.edges.append((str(u), str(v), "", "line"))
        elif folder is not None and attrs["kind"] == "spline":
            img = _curve_image(model, attrs, folder)
            drawing.edges.append((str(u), str(v), f'<<IMG SRC="{img}"/>>', ""))
        else:
            drawing.edges.append((str(u), str(v), edge_label(attrs), ""))
    return drawing


def _trace_tree(g: Any) -> Drawing:
    drawing = Drawing(name="tree", direction="TB", ranked=False)
    for n, attrs in g.nodes(data=True):
        kind = "text" if attrs["kind"] == "var" else "box"
        drawing.nodes.append((str(n), attrs["label"], kind, 0, 1))
    for u, v in g.edges:
        drawing.edges.append((str(u), str(v), "", "line"))
    return drawing


def _curve_image(model: Any, attrs: dict[str, Any], folder: Path) -> str:
    """A tiny PNG of a spline edge's curve over its grid (written only when asked)."""
    import matplotlib  # heavy and optional: only for images=True

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


__all__ = ["trace_graph", "graph_kind"]
