"""Grid updates with a margin: knots follow the activations and reach a little beyond them.

In: a ``MultKAN`` and points ``(N, n_in)``. Out: the model with every numeric layer's knots
moved to the range of its activations on the points, widened by ``margin`` times that range
on each side, and its coefficients refitted to keep each curve (in place). Stage: physics.
Without the margin, the outermost knots sit on the extreme training activations, and a new
point whose hidden activation falls just outside them meets only part of the B-spline basis:
its value then comes from coefficients the data barely constrain (at G = 50 on the KAN
paper's ``exp(sin(pi x) + y^2)`` that made the test error ten times the training error).

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([1, 1], grid=4, dtype=torch.float64)
>>> x = torch.linspace(-0.5, 0.5, 50, dtype=torch.float64).reshape(-1, 1)
>>> before = model(x)
>>> update_grid(model, x, margin=0.1)
>>> [round(v, 3) for v in model.layers[0].basis.inner[0, [0, -1]].tolist()]
[-0.6, 0.6]
>>> bool((model(x) - before).abs().max() < 1e-3)
True
"""

from __future__ import annotations

from typing import Any

import torch

from ..runtime.basis import extend_grid
from ..runtime.grid import curve_to_coef, sample_grid


def update_grid(model: Any, x: torch.Tensor, margin: float = 0.05) -> None:
    """Move every numeric layer's knots to its activations on ``x``, plus ``margin``."""
    with torch.no_grad():
        h = x
        for li in range(model.depth):
            layer = model.layers[li]
            if layer.active:
                _update_layer(layer, h, margin)
            h = layer_forward(model, li, h)


def _update_layer(layer: Any, h: torch.Tensor, margin: float) -> None:
    basis = layer.basis
    knots = sample_grid(h, basis.n_intervals, layer.grid_eps)  # (in, G + 1)
    lo, hi = knots[:, :1], knots[:, -1:]
    knots = lo - margin * (hi - lo) + (knots - lo) * (1 + 2 * margin)
    # fit on the samples and on the new knots and midpoints, so the margin keeps the old curve
    mids = (knots[:, 1:] + knots[:, :-1]) / 2
    fit = torch.cat([h, knots.t(), mids.t()])
    before = layer.spline(fit)
    basis.set_grid(extend_grid(knots, basis.k))
    layer.coef.copy_(curve_to_coef(fit, before, basis))


def layer_forward(model: Any, li: int, h: torch.Tensor) -> torch.Tensor:
    """Node values of layer ``li + 1`` from those of layer ``li``."""
    return model.layer_forward(li, h).nodes
