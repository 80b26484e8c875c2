"""A picture of a MultKAN: every edge's curve placed between the nodes it connects.

In: a model (and optionally inputs, and fitted symbolic candidates per edge). Out: a
``matplotlib.figure.Figure`` drawn off-screen (Agg canvas; pyplot is never touched, nothing
is shown or saved unless the caller does ``fig.savefig(...)``). Stage: runtime view.

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> fig = MultKAN([2, [2, 1], 1], seed=0).plot()
>>> len(fig.axes) > 0
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ShapeError
from .prune import attribute

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .multkan import MultKAN

SUM_COLOR, MULT_COLOR, SYM_COLOR, NUM_COLOR = "black", "tab:red", "tab:red", "tab:blue"


def _curves(
    model: MultKAN, x: torch.Tensor | None, n: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: sorted inputs ``(S, in)`` and edge values ``(S, in, out)``."""
    with torch.no_grad():
        if x is not None or model.cache is not None:
            rec = model.record(x)
            acts, edges = rec.acts, rec.edge_acts
        else:
            acts, edges = [], []
            for li in range(model.depth):
                lo, hi = model.layers[li].basis.span().unbind(1)
                t = torch.linspace(0, 1, n, dtype=model.dtype, device=model.device)[:, None]
                xs = lo + (hi - lo) * t
                acts.append(xs)
                edges.append(model.layers[li].edge_values(xs) + model.symbolic[li].edge_values(xs))
        out = []
        for li in range(model.depth):
            order = torch.argsort(acts[li], dim=0)
            xs = torch.gather(acts[li], 0, order)
            ys = torch.gather(edges[li], 0, order.unsqueeze(-1).expand_as(edges[li]))
            out.append((xs.cpu().double(), ys.cpu().double()))
        return out


def _label(cand: Any) -> str:
    if isinstance(cand, str):
        return cand
    if isinstance(cand, (list, tuple)) and cand:
        first = cand[0]
        if isinstance(first, (list, tuple)) and len(first) >= 2:
            return f"{first[0]} (r²={float(first[1]):.3f})"
        return str(first)
    return str(cand)


def _positions(count: int) -> list[float]:
    return [(i + 0.5) / count for i in range(count)]


def plot(
    model: MultKAN,
    x: torch.Tensor | None = None,
    *,
    candidates: Mapping[tuple[int, int, int], Any] | None = None,
    samples: int = 101,
    scale: float = 1.0,
    title: str | None = None,
    beta: float = 3.0,
    out_vars: list[str] | None = None,
    max_width: float = 14.0,
) -> Figure:
    """Draw ``model`` layer by layer (inputs at the bottom) with one small plot per edge.

    ``x`` gives the inputs to plot the curves on (else the cached activations, else each
    input's grid range). ``candidates`` maps ``(l, i, j)`` to a label or a list of
    ``(formula, r2)`` pairs, shown above the edge's plot; by default those of
    ``model.symbolic_report`` (left by ``auto_symbolic``), if any. Returns the Figure.

    Each edge's opacity is ``tanh(beta * score / top score of its layer)`` for its
    attribution score on those inputs, so what ``prune`` would remove fades out; switched-off
    edges are faint; without inputs or cached activations every active edge is opaque. Inputs
    are labelled with ``model.variables``, outputs with ``out_vars`` (default ``y`` or
    ``y1, y2, ...``). The figure is at most ``max_width`` inches wide (times ``scale``): wide
    layers get narrower edge plots, not an unreadable strip.
    """
    if candidates is None and model.symbolic_report is not None:
        candidates = model.symbolic_report.candidates()
    # lazy: matplotlib is heavy and only needed for pictures
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    curves = _curves(model, x, samples)
    opacity = _opacity(model, x, beta)
    cols = max(model.n_nodes(li) * model.n_subnodes(li + 1) for li in range(model.depth))
    width = min(max(4.0, 1.1 * cols), max_width)
    fig = Figure(figsize=(width * scale, 2.6 * model.depth * scale))
    FigureCanvasAgg(fig)
    band = 1.0 / model.depth
    for li in range(model.depth):
        n_in, n_out = model.n_nodes(li), model.n_subnodes(li + 1)
        y0, y1 = li * band, (li + 1) * band
        node_x, sub_x = _positions(n_in), _node_subnode_x(model, li + 1)
        edge_x = _positions(n_in * n_out)
        w = min(0.8 / (n_in * n_out), 0.12)
        h = 0.38 * band
        for i, j, kind, *_ in model.edges(li, active=False):
            cx = edge_x[i * n_out + j]
            alpha = float(opacity[li][i, j]) if kind != "off" else FAINT
            ax = fig.add_axes((cx - w / 2, y0 + 0.31 * band, w, h))
            xs, ys = curves[li]
            color = SYM_COLOR if kind == "symbolic" else NUM_COLOR
            ax.plot(xs[:, i], ys[:, i, j], color=color, alpha=alpha, lw=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_alpha(alpha)
            if candidates and (li, i, j) in candidates:
                ax.set_title(_label(candidates[(li, i, j)]), fontsize=6)
            line: dict[str, Any] = {"color": "gray", "alpha": 0.5 * alpha, "lw": 0.6}
            fig.add_artist(Line2D([node_x[i], cx], [y0 + 0.05 * band, y0 + 0.31 * band], **line))
            fig.add_artist(Line2D([cx, sub_x[j]], [y0 + 0.69 * band, y1 - 0.05 * band], **line))
        _draw_nodes(fig, model, li, node_x, y0 + 0.05 * band)
    top = _positions(model.n_nodes(model.depth))
    _draw_nodes(fig, model, model.depth, top, 1 - 0.05 * band)
    names = out_vars or (["y"] if len(top) == 1 else [f"y{k + 1}" for k in range(len(top))])
    for cx, name in zip(top, names):
        fig.text(cx + 0.012, 1 - 0.05 * band, str(name), ha="left", va="center", fontsize=8)
    if title:
        fig.text(0.01, 0.99, title, ha="left", va="top")
    return fig


#: opacity of switched-off edges, and the least opacity of an active one
FAINT, FLOOR = 0.08, 0.15


def _opacity(model: MultKAN, x: torch.Tensor | None, beta: float) -> list[torch.Tensor]:
    """Per layer ``(in, out)``: ``tanh(beta * score / layer's top score)``, at least FLOOR;
    all 1 when there are no activations to score (no ``x``, nothing cached)."""
    ones = [torch.ones(model.n_nodes(li), model.n_subnodes(li + 1)) for li in range(model.depth)]
    if x is None and model.cache is None:
        return ones
    try:
        scores = attribute(model, x)["edge_scores"]
    except ShapeError:  # activations not finite: the masks alone
        return ones
    out = []
    for s in scores:
        s = s.detach().cpu().double()
        top = float(s.max()) if s.numel() else 0.0
        out.append(torch.tanh(beta * s / top).clamp(min=FLOOR) if top > 0 else torch.ones_like(s))
    return out


def _node_subnode_x(model: MultKAN, li: int) -> list[float]:
    """x position of each subnode of node layer ``l``: that of the node it belongs to."""
    xs = _positions(model.n_nodes(li))
    return [xs[node] for node, _ in model.subnode_owner(li)]


def _draw_nodes(fig: Any, model: MultKAN, li: int, xs: list[float], y: float) -> None:
    for i, cx in enumerate(xs):
        is_mult = model.node_kind(li, i) == "mult"
        fig.text(
            cx, y, "×" if is_mult else ("+" if li else model.variables[i]),
            ha="center", va="center", fontsize=8,
            color=MULT_COLOR if is_mult else SUM_COLOR,
            bbox={"boxstyle": "square" if is_mult else "circle", "fc": "white",
                  "ec": MULT_COLOR if is_mult else SUM_COLOR, "lw": 0.8},
        )  # fmt: skip
