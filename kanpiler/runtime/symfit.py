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

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .. import library
from ..errors import ConfigError, FitError, ShapeError, UnsupportedError
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


#: ``fix_symbolic`` refuses fits below this r² unless ``force=True``
MIN_R2 = 0.9


def _edge_curve(
    model: MultKAN, li: int, i: int, j: int, x: torch.Tensor | None, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The edge's input samples and current values, from ``x`` or the cached activations."""
    if x is None and model.cache is None:
        raise ShapeError(f"{what} needs x, or cached activations (cache_acts)")
    rec = model.record(x)
    u, v = rec.acts[li][:, i].detach(), rec.edge_acts[li][:, i, j].detach()
    if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(v).all())):
        raise FitError(f"{what}: edge ({li}, {i}, {j}) has NaN or infinite values on these inputs")
    return u, v


def fix_symbolic(
    model: MultKAN, li: int, i: int, j: int, fn: str, fit: bool = True,
    x: torch.Tensor | None = None, *, force: bool = False, min_r2: float = MIN_R2,
) -> float:  # fmt: skip
    """Lock edge ``(l, i, j)`` to ``fn``; with ``fit``, fit ``a, b, c, d`` to its current curve
    sampled at ``x`` (model inputs) or at the cached activations. Returns r² (1.0 unfitted).

    A fit with r² below ``min_r2`` (or not finite: ``sqrt`` of a curve it cannot follow)
    raises a :class:`~kanpiler.errors.FitError` and leaves the edge as it was, unless
    ``force=True``; :func:`suggest_symbolic` lists functions that fit.
    """
    model.check_edge(li, i, j)
    library.get(fn)  # an unknown name fails before anything changes
    if not fit:
        model.set_symbolic(li, i, j, fn)
        return 1.0
    u, v = _edge_curve(model, li, i, j, x, "fix_symbolic(fit=True)")
    params, r2 = fit_affine(u, v, fn)
    if not (math.isfinite(r2) and r2 >= min_r2) and not force:
        raise FitError(
            f"fix_symbolic: {fn} fits edge ({li}, {i}, {j}) with r2 = {r2:.4g} (< {min_r2}); "
            f"the edge keeps its curve. See model.suggest_symbolic({li}, {i}, {j}) for "
            "functions that fit, or pass force=True"
        )
    if not all(math.isfinite(p) for p in params):
        raise FitError(f"fix_symbolic: the fit of {fn} to edge ({li}, {i}, {j}) is not finite")
    model.set_symbolic(li, i, j, fn, *params)
    return r2


def suggest_symbolic(
    model: MultKAN, li: int, i: int, j: int, topk: int = 5, *,
    lib: Sequence[str | library.Function] | None = None, x: torch.Tensor | None = None,
    weight_simple: float = 0.8,
) -> list[tuple[str, float, int, tuple[float, float, float, float]]]:  # fmt: skip
    """The ``topk`` best library functions for edge ``(l, i, j)``, best first, as
    ``(name, r2, complexity, (a, b, c, d))``, ranked like ``auto_symbolic`` by
    ``log10(1 - r2) + weight_simple * complexity``. ``lib``: candidate names or records
    (default: the fit library, registered functions included). Nothing in the model changes.
    """
    model.check_edge(li, i, j)
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
        raise ConfigError(f"topk must be a positive integer, got {topk!r}")
    items = library.fit_library() if lib is None else list(lib)
    fns = [f if isinstance(f, library.Function) else library.get(str(f)) for f in items]
    if not fns:
        raise ConfigError("suggest_symbolic: the candidate library is empty")
    u, v = _edge_curve(model, li, i, j, x, "suggest_symbolic")
    fits = fit_curves(u.reshape(1, -1), v.reshape(1, -1), fns)
    rows = []
    for k, fn in enumerate(fns):
        r2 = float(fits.r2[0, k])
        if math.isfinite(r2):
            a, b, c, d = fn.canonical_affine(*fits.params[0, k].tolist())
            score = math.log10(max(1 - r2, 1e-12)) + weight_simple * fn.complexity
            rows.append((score, (fn.name, r2, fn.complexity, (a, b, c, d))))
    rows.sort(key=lambda row: row[0])
    return [row for _, row in rows[:topk]]


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
