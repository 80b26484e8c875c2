"""Moving single edges between the numeric and the symbolic branch.

In: a model, an edge ``(l, i, j)`` and sample inputs. Out: the edge locked to
``c*f(a*x+b)+d`` with fitted parameters (``fix_symbolic``), or symbolic edges replaced by
splines fitted to them (``symbolic_to_spline``). Stage: runtime. Curves are fitted by
:func:`kanpiler.numerics.fit_curves`, the fitter ``kanpiler.auto_symbolic`` uses for whole
networks, and put in the canonical form of the function's library record.

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([1, 1], dtype=torch.float64, numeric=False)
>>> model.set_symbolic(0, 0, 0, "sin", a=2.0)
>>> model.symbolic_to_spline(ranges=[(-1.0, 1.0)])
>>> x = torch.linspace(-1, 1, 50, dtype=torch.float64).reshape(-1, 1)
>>> bool((model(x) - torch.sin(2 * x)).abs().max() < 1e-2)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .. import library
from ..errors import FitError, ShapeError, UnsupportedError
from ..numerics import fit_curves
from .bases import DenseBasis
from .basis import Basis, extend_grid, uniform_points
from .grid import curve_to_coef
from .layer import KANLayer
from .symbolic import SymbolicLayer

if TYPE_CHECKING:
    from .multkan import MultKAN


def fit_affine(
    x: torch.Tensor, y: torch.Tensor, fn: str
) -> tuple[tuple[float, float, float, float], float]:
    """Fit ``y ~ c*f(a*x+b)+d`` on 1-D samples; returns ``((a, b, c, d), r2)``.

    One curve through the batched fitter that ``kanpiler.auto_symbolic`` uses (a coarse search
    over ``(a, b)`` with closed-form ``(c, d)``, then Levenberg-Marquardt), so an edge fixed by
    hand and an edge fixed by ``auto_symbolic`` are fitted alike.
    """
    rec = library.get(fn)
    fits = fit_curves(x.reshape(1, -1), y.reshape(1, -1), [rec])
    a, b, c, d = rec.canonical_affine(*fits.params[0, 0].tolist())
    return (a, b, c, d), float(fits.r2[0, 0])


def fix_symbolic(
    model: MultKAN, li: int, i: int, j: int, fn: str, fit: bool = True,
    x: torch.Tensor | None = None,
) -> float:  # fmt: skip
    """Lock edge ``(l, i, j)`` to ``fn``; with ``fit``, fit ``a, b, c, d`` to its current curve
    sampled at ``x`` (model inputs) or at the cached activations. Returns r² (1.0 unfitted)."""
    model.check_edge(li, i, j)
    if not fit:
        model.set_symbolic(li, i, j, fn)
        return 1.0
    if x is None and model.cache is None:
        raise ShapeError("fix_symbolic(fit=True) needs x, or cached activations (cache_acts)")
    rec = model.record(x)
    params, r2 = fit_affine(rec.acts[li][:, i].detach(), rec.edge_acts[li][:, i, j].detach(), fn)
    model.set_symbolic(li, i, j, fn, *params)
    return r2


def _layer_ranges(model: MultKAN, x: torch.Tensor | None, ranges: Any) -> list[torch.Tensor]:
    """``(in, 2)`` low/high per input of every layer, from ``x``, ``ranges`` or the grids."""
    out = []
    if x is not None:
        acts = model.record(x).acts
        return [torch.stack([a.amin(0), a.amax(0)], dim=1) for a in acts[:-1]]
    for li in range(model.depth):
        n_in = model.n_nodes(li)
        if ranges is None:
            out.append(model.layers[li].basis.span())
            continue
        if len(ranges) != model.depth:
            raise ShapeError(f"ranges needs one entry per KAN layer ({model.depth})")
        r = torch.as_tensor(ranges[li], dtype=model.dtype, device=model.device)
        out.append(r.expand(n_in, 2) if r.dim() == 1 else r)
    return out


def symbolic_to_spline(model: MultKAN, x: torch.Tensor | None = None, ranges: Any = None) -> None:
    """Replace every active symbolic edge by a spline fitted to it on the given ranges.

    Inputs that feed a symbolic edge get a uniform grid over their range; numeric edges from
    those inputs are refitted on the new grid, so they keep their curves there.
    """
    bounds = _layer_ranges(model, x, ranges)
    with torch.no_grad():
        for li in range(model.depth):
            num, sym = model.layers[li], model.symbolic[li]
            if not sym.active:
                continue
            lo, hi = bounds[li][:, 0], bounds[li][:, 1]
            wide = torch.where(hi - lo > 0, hi - lo, torch.ones_like(hi))
            lo, hi = torch.where(hi - lo > 0, lo, lo - 0.5), lo + wide
            _refit_layer(num, sym, lo, hi)


def _place_basis(basis: Basis, lo: torch.Tensor, hi: torch.Tensor) -> None:
    """Spread the basis over ``[lo, hi]`` per input: uniform knots, or the domain of the
    other families (centres, translations, period); refused where an edge cannot take a
    curve of its own (a rational basis shares one function per group of inputs)."""
    if isinstance(basis, DenseBasis):
        if not basis.free_curves:
            raise UnsupportedError(
                f"symbolic_to_spline: a {basis.name} basis shares one function per group of "
                "inputs, so an edge cannot take the curve of its symbolic function; keep the "
                "edge symbolic, or build the model with another basis"
            )
        basis.set_domain(lo, hi)
        return
    unit = uniform_points(lo.shape[0], basis.n_intervals, (0.0, 1.0), lo.dtype, lo.device)
    basis.set_grid(extend_grid(lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * unit, basis.k))


def _refit_layer(
    num: KANLayer, sym: SymbolicLayer, lo: torch.Tensor, hi: torch.Tensor, n_samples: int = 257
) -> None:
    dtype, dev = num.coef.dtype, num.coef.device
    steps = torch.linspace(0, 1, n_samples, dtype=dtype, device=dev).unsqueeze(1)
    xs = lo + (hi - lo) * steps  # (S, in)
    old_spline = num.spline(xs)
    target_sym = sym.edge_values(xs)
    is_sym = (sym.mask != 0) & (sym.fn_ids != 0)
    _place_basis(num.basis, lo, hi)
    # symbolic edges: the spline alone carries c*f(a*x+b)+d
    target = torch.where(is_sym.unsqueeze(0), target_sym, old_spline)
    coef = curve_to_coef(xs, target, num.basis)
    if not torch.isfinite(coef).all():
        raise FitError("symbolic_to_spline: the fitted spline is not finite")
    num.coef.copy_(coef)
    num.scale_base.copy_(torch.where(is_sym, torch.zeros_like(num.scale_base), num.scale_base))
    num.scale_sp.copy_(torch.where(is_sym, torch.ones_like(num.scale_sp), num.scale_sp))
    num.mask.copy_(torch.where(is_sym, torch.ones_like(num.mask), num.mask))
    sym.mask.copy_(torch.where(is_sym, torch.zeros_like(sym.mask), sym.mask))
