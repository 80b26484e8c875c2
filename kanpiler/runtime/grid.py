"""Grids of numeric edges: grid update from samples and grid extension.

In: a layer or model and sample inputs. Out: new knots with coefficients refitted (by
:func:`kanpiler.numerics.lstsq`) so each edge keeps its curve on the samples. Stage: runtime
(used by training and fine-tuning); walks the model with ``MultKAN.layer_forward``.

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([2, 3, 1], grid=3, dtype=torch.float64)
>>> x = torch.rand(200, 2, dtype=torch.float64) * 2 - 1
>>> finer = model.refine(9, x)  # grid extension: a new model with 9 intervals
>>> bool((finer(x) - model(x)).abs().max() < 1e-8)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import FitError
from ..numerics import lstsq
from .bases import DenseBasis
from .basis import Basis, extend_grid
from .config import clone_with_grid
from .layer import KANLayer

if TYPE_CHECKING:
    from .multkan import MultKAN


def curve_to_coef(x: torch.Tensor, y: torch.Tensor, basis: Basis) -> torch.Tensor:
    """Coefficients ``(in, out, n_basis)`` whose splines fit ``y (N, in, out)`` at ``x (N, in)``."""
    feats = basis(x).permute(1, 0, 2)  # (in, N, n_basis)
    sol = lstsq(feats, y.permute(1, 0, 2))  # (in, n_basis, out)
    return sol.transpose(1, 2).contiguous()


def sample_grid(x: torch.Tensor, n_intervals: int, grid_eps: float) -> torch.Tensor:
    """``(in, G+1)`` knots: a blend of sample quantiles and a uniform grid over the samples."""
    xs = torch.sort(x, dim=0).values
    n = xs.shape[0]
    ids = [int(n / n_intervals * i) for i in range(n_intervals)] + [n - 1]
    adaptive = xs[ids, :].t()
    lo, hi = adaptive[:, :1], adaptive[:, -1:]
    steps = torch.arange(n_intervals + 1, dtype=x.dtype, device=x.device)
    uniform = lo + (hi - lo) / n_intervals * steps
    grid = grid_eps * uniform + (1 - grid_eps) * adaptive
    # a constant input would give a zero-width grid: widen it to keep the basis defined
    flat = (grid[:, -1:] - grid[:, :1]) <= torch.finfo(x.dtype).eps * (1 + grid[:, :1].abs())
    widen = torch.where(flat, torch.ones_like(lo), torch.zeros_like(lo))
    return grid + widen * (steps / n_intervals * 2 - 1)


def update_layer_grid(layer: KANLayer, x: torch.Tensor) -> None:
    """Move the knots of ``layer`` to the distribution of ``x`` (``(N, in)``), keeping curves."""
    if x.shape[0] < 2:
        raise FitError(f"a grid update needs at least 2 samples, got {x.shape[0]}")
    basis = layer.basis
    with torch.no_grad():
        before = layer.spline(x)
        if isinstance(basis, DenseBasis):  # RBF centres, wavelet translations, ... (or a
            basis.update_grid(x, layer.grid_eps)  # clear error where there is no grid)
        else:
            knots = extend_grid(sample_grid(x, basis.n_intervals, layer.grid_eps), basis.k)
            basis.set_grid(knots)
        layer.coef.copy_(curve_to_coef(x, before, basis))


def update_model_grid(model: MultKAN, x: torch.Tensor) -> None:
    """Update every layer's grid from the activations of ``x``, layer by layer."""
    with torch.no_grad():
        h = model.check_input(x)
        for li in range(model.depth):
            if model.layers[li].active:
                update_layer_grid(model.layers[li], h)
            h = model.layer_forward(li, h).nodes


def refined_knots(old: Basis, n_intervals: int) -> torch.Tensor:
    """Extended knots with ``n_intervals`` between the old grid's ends, interpolating its knots.

    With ``n_intervals`` a multiple of the old count, every old knot is kept, so the old spline
    space is contained in the new one (the refit is exact inside the grid).
    """
    inner = old.inner  # (in, G_old + 1)
    g_old = inner.shape[1] - 1
    pos = torch.linspace(0, g_old, n_intervals + 1, dtype=torch.float64, device=inner.device)
    lo = pos.floor().clamp(max=g_old - 1).long()
    frac = (pos - lo).to(inner.dtype)
    left, right = inner[:, lo], inner[:, lo + 1]
    return extend_grid(left + (right - left) * frac, old.k)


def refine(model: MultKAN, n_intervals: int, x: torch.Tensor) -> MultKAN:
    """A NEW model whose splines have ``n_intervals`` intervals, fitted to ``model`` on ``x``."""
    new = clone_with_grid(model, n_intervals)
    with torch.no_grad():
        h = model.check_input(x)
        for li in range(model.depth):
            old_layer, layer = model.layers[li], new.layers[li]
            if isinstance(old_layer.basis, DenseBasis):
                layer.basis = old_layer.basis.refined(n_intervals)
                inside = _span_points(old_layer.basis, h, 4 * n_intervals + 1)
            else:
                layer.basis.set_grid(refined_knots(old_layer.basis, n_intervals))
                inside = _fit_points(old_layer.basis, layer.basis, h)
            layer.coef.copy_(curve_to_coef(inside, old_layer.spline(inside), layer.basis))
            h = model.layer_forward(li, h).nodes
    return new


def _span_points(basis: Basis, h: torch.Tensor, n: int) -> torch.Tensor:
    """Samples clamped into the basis's span, plus ``n`` equally spaced points over it."""
    lo, hi = basis.span().unbind(1)
    t = torch.linspace(0, 1, n, dtype=h.dtype, device=h.device).unsqueeze(1)
    return torch.cat([h.clamp(min=lo, max=hi), lo + (hi - lo) * t], dim=0)


def _fit_points(old: Basis, new: Basis, h: torch.Tensor) -> torch.Tensor:
    """Samples clamped into the grid proper, plus the new knots and their midpoints."""
    inner = old.inner
    pts = [h.clamp(min=inner[:, 0], max=inner[:, -1])]
    for knots in (old.inner, new.inner):
        pts += [knots.t(), ((knots[:, 1:] + knots[:, :-1]) / 2).t()]
    return torch.cat(pts, dim=0)
