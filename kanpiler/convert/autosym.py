"""Symbolic fitting of learned edges: every spline edge gets its best library function.

In: a trained ``MultKAN`` (and optionally the inputs ``x`` it was trained on).
Out: the model with its spline edges locked to ``c*f(a*x+b)+d`` (in place) and a
:class:`SymbolicReport` of what was chosen, with r², complexity and runner-ups per edge.
Stage: convert (between training and :func:`~kanpiler.convert.formula`).

Fitting is batched across all spline edges of a layer and all candidate functions (see
:func:`kanpiler.numerics.fit_curves`). An edge is made constant only when it is flat, and the report says so; an
edge whose best fit stays below ``r2_threshold`` keeps its spline and is reported as such.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from .. import library
from ..errors import FitError, KanpilerError
from ..numerics import CurveFits, fit_curves
from ..runtime import MultKAN
from .canonical import canonical_affine
from .pairfit import fit_pair

__all__ = ["auto_symbolic", "SymbolicReport", "EdgeFit", "resolve_library"]

Params = tuple[float, float, float, float]
Term = tuple[str, float, float, float]


class Candidate(NamedTuple):
    """One fit of an edge: function, r², complexity and canonical ``(a, b, c, d)``."""

    fn: str
    r2: float
    complexity: int
    params: Params


class _PairCandidate(NamedTuple):
    """A two-term fit: ``fn`` is ``"f1+f2"``, ``params`` only carries ``d``."""

    fn: str
    r2: float
    complexity: int
    params: Params
    terms: list[Term]


@dataclass
class EdgeFit:
    """The outcome for one edge ``(layer, i, j)``.

    ``status``: ``"symbolic"`` (locked to ``fn``), ``"flat"`` (constant ``d``), ``"sum"``
    (best explained by two terms, listed in ``terms`` as ``(fn, a, b, c)`` plus ``params[3]``
    as ``d``; a model edge holds one function, so the model keeps its spline and the graph
    and formula use the terms), or ``"spline"`` (nothing reached ``r2_threshold``).
    """

    layer: int
    i: int
    j: int
    fn: str
    r2: float
    complexity: int
    params: tuple[float, float, float, float]
    status: str
    runner_ups: list[Candidate] = field(default_factory=list)
    terms: list[tuple[str, float, float, float]] = field(default_factory=list)


@dataclass
class SymbolicReport:
    """Per-edge results of :func:`auto_symbolic`; ``str(report)`` is a table."""

    edges: list[EdgeFit]
    seconds: float
    n_functions: int

    def candidates(self) -> dict[tuple[int, int, int], list[Candidate]]:
        """``(layer, i, j)`` -> candidates (best first), for :func:`~kanpiler.to_graph`."""
        out = {}
        for e in self.edges:
            best = Candidate(e.fn, e.r2, e.complexity, e.params)
            out[(e.layer, e.i, e.j)] = [best, *e.runner_ups]
        return out

    def sums(self) -> dict[tuple[int, int, int], EdgeFit]:
        """``(layer, i, j)`` -> fit, for the edges explained by two terms."""
        return {(e.layer, e.i, e.j): e for e in self.edges if e.status == "sum"}

    def __str__(self) -> str:
        head = f"auto_symbolic: {len(self.edges)} edges x {self.n_functions} functions in "
        lines = [
            head + f"{self.seconds:.2f} s",
            "edge         status    fn        r2          next",
        ]
        for e in self.edges:
            nxt = ", ".join(f"{fn} {r2:.6f}" for fn, r2, _, _ in e.runner_ups[:2])
            lines.append(
                f"({e.layer},{e.i},{e.j}){'':<5} {e.status:<9} {e.fn:<9} {e.r2:<11.8f} {nxt}"
            )
        return "\n".join(lines)


def _known(fn: library.Function) -> library.Function:
    """A ``Function`` record given in ``extra``: registered (so edges can hold it) if new."""
    try:
        return library.get(fn.name)
    except KanpilerError:
        return library.register(
            fn.name, fn.torch_fn, fn.sympy_fn, complexity=fn.complexity,
            in_domain=fn.in_domain, domain_text=fn.domain_text, fit=fn.fit,
        )  # fmt: skip


def resolve_library(
    lib: Sequence[str | library.Function] | None, extra: Sequence[Any] = ()
) -> list[library.Function]:
    """Candidate functions: the default fit library (or ``lib``) plus ``extra``."""
    items = list(library.fit_library() if lib is None else lib) + list(extra)
    out: dict[str, library.Function] = {}
    for it in items:
        fn = _known(it) if isinstance(it, library.Function) else library.get(str(it))
        if fn.arity != 1:
            raise KanpilerError(
                f"symbolic fitting needs one-argument functions; {fn.name!r} is not"
            )
        out.setdefault(fn.name, fn)
    if not out:
        raise KanpilerError("auto_symbolic: the candidate library is empty")
    return list(out.values())


def _edge_samples(
    model: MultKAN, x: torch.Tensor | None, n_grid: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: (inputs (N, in), numeric edge values (N, in, out))."""
    if x is not None:
        rec = model.record(torch.as_tensor(x, dtype=model.dtype, device=model.device))
        return list(zip(rec.acts[: model.depth], rec.spline_acts))
    out = []
    with torch.no_grad():
        for layer in model.layers:
            lo, hi = layer.basis.span().unbind(1)
            t = torch.linspace(0, 1, n_grid, dtype=model.dtype, device=model.device)[:, None]
            xs = lo + (hi - lo) * t
            out.append((xs, layer.edge_values(xs)))
    return out


def _choose(r2: torch.Tensor, fns: list[library.Function], weight_simple: float) -> list[int]:
    """Candidate order for one edge: by ``log10(1 - r2) + weight_simple * complexity``."""
    scores = []
    for k, fn in enumerate(fns):
        v = float(r2[k])
        score = _score(v, fn.complexity, weight_simple) if v > -math.inf else math.inf
        scores.append((score, k))
    return [k for _, k in sorted(scores)]


def auto_symbolic(
    model: MultKAN,
    library: Sequence[str | Any] | None = None,
    *,
    x: torch.Tensor | None = None,
    extra: Sequence[str | Any] = (),
    r2_threshold: float = 0.9,
    weight_simple: float = 1.0,
    pairs: bool = True,
    flat_tol: float = 1e-6,
    n_grid: int = 201,
    top: int = 5,
    verbose: bool = False,
    progress: bool = True,
) -> SymbolicReport:
    """Lock every active spline edge of ``model`` to its best ``c*f(a*x+b)+d`` (in place).

    Edge samples come from a forward pass on ``x`` (recommended: the training inputs) or, if
    ``x`` is None, from ``n_grid`` points spanning each input's spline grid. Candidates are
    ``library`` (default ``kanpiler.library.fit_library()``) plus ``extra`` (names or
    ``Function`` records). The choice minimises ``log10(1 - r2) + weight_simple *
    complexity``. An edge whose values vary by less than ``flat_tol`` (relative to the
    layer's largest edge) becomes the constant ``d``. With ``pairs``, an edge that a sum of
    two library terms explains better (same score, complexity = both plus one) is reported
    with status ``"sum"`` (see :class:`EdgeFit`). An edge whose best r² is below
    ``r2_threshold`` keeps its spline. Returns a :class:`SymbolicReport`, also stored as
    ``model.symbolic_report`` (``to_graph`` shows its candidates).

    >>> import torch
    >>> from kanpiler.runtime import MultKAN
    >>> m = MultKAN([1, 1], grid=20, dtype=torch.float64, numeric=False)
    >>> m.set_symbolic(0, 0, 0, "sin", a=2.0)
    >>> m.symbolic_to_spline(x=torch.tensor([[-1.0], [1.0]], dtype=torch.float64))
    >>> report = auto_symbolic(m, progress=False)
    >>> report.edges[0].fn, report.edges[0].status, round(report.edges[0].params[0], 3)
    ('sin', 'symbolic', 2.0)
    """
    start = time.perf_counter()
    fns = resolve_library(library, extra)
    opts = _Options(weight_simple, r2_threshold, flat_tol, top, pairs)
    results: list[EdgeFit] = []
    samples = _edge_samples(model, x, n_grid)
    for li, (acts, vals) in enumerate(samples):  # checked before any edge changes
        if not (bool(torch.isfinite(acts).all()) and bool(torch.isfinite(vals).all())):
            raise FitError(
                f"auto_symbolic: layer {li} has NaN or infinite inputs or edge values (a "
                "diverged training, or x outside the model's domain); nothing was changed"
            )
    bar = _progress(progress, model.depth)
    for li, (acts, vals) in enumerate(samples):
        edges = _spline_edges(model, li)
        if edges:
            results += _fit_layer(model, li, edges, acts, vals, fns, opts)
        bar.update(1)
    bar.close()
    report = SymbolicReport(results, time.perf_counter() - start, len(fns))
    model.symbolic_report = report
    if verbose:
        print(report)
    return report


@dataclass(frozen=True)
class _Options:
    weight_simple: float
    r2_threshold: float
    flat_tol: float
    top: int
    pairs: bool


def _progress(enabled: bool, total: int) -> Any:
    from tqdm.auto import tqdm  # lazy: tqdm.auto probes for notebooks on import

    return tqdm(total=total, desc="auto_symbolic layers", disable=not enabled, leave=False)


def _spline_edges(model: MultKAN, li: int) -> list[tuple[int, int]]:
    return [(e.i, e.j) for e in model.edges(li) if e.kind == "numeric"]


def _score(r2: float, complexity: int, weight_simple: float) -> float:
    return math.log10(max(1.0 - r2, 1e-12)) + weight_simple * complexity


def _try_pair(
    xe: torch.Tensor,
    ye: torch.Tensor,
    fns: list[library.Function],
    fits: CurveFits,
    e: int,
    best: Candidate | None,
    weight_simple: float,
) -> _PairCandidate | None:
    """A two-term fit of edge ``e`` if it scores better than the single best ``best``."""
    if best is not None and best.r2 > 1 - 1e-6:
        return None
    pair = fit_pair(xe, ye, fns, fits, e)
    if pair is None:
        return None
    cx = sum(fns[k].complexity for k, *_ in pair.terms) + 1
    ours = _score(pair.r2, cx, weight_simple)
    if best is not None and ours >= _score(best.r2, best.complexity, weight_simple):
        return None
    terms = [(fns[k].name, a, b, c) for k, a, b, c in pair.terms]
    name = "+".join(t[0] for t in terms)
    return _PairCandidate(name, pair.r2, cx, (0.0, 0.0, 0.0, pair.d), terms)


def _candidates(
    xe: torch.Tensor, ye: torch.Tensor, fits: CurveFits, e: int, fns: list[library.Function],
    opts: _Options,
) -> list[Candidate]:
    """The ``top`` best single-function fits of edge ``e``, best first, canonical params.

    The score of :func:`_choose` is refined on the leading candidates by
    :func:`_cancellation`, so that a function used only through a Taylor expansion (e.g.
    ``-200*cos(0.1*x) + 200`` for ``x**2``) loses to the function it imitates.
    """
    ranked = []
    for k in _choose(fits.r2[e], fns, opts.weight_simple)[: 2 * opts.top]:
        r2 = float(fits.r2[e, k])
        if r2 > -math.inf:
            a, b, c, d = fits.params[e, k].tolist()
            score = _score(r2, fns[k].complexity, opts.weight_simple)
            score += _cancellation(fns[k], xe, ye, a, b, c)
            ranked.append((score, k, r2))
    out = []
    for _, k, r2 in sorted(ranked)[: opts.top]:
        a, b, c, d = canonical_affine(fns[k].name, *fits.params[e, k].tolist())
        out.append(Candidate(fns[k].name, r2, fns[k].complexity, (a, b, c, d)))
    return out


def _cancellation(
    fn: library.Function, xe: torch.Tensor, ye: torch.Tensor, a: float, b: float, c: float
) -> float:
    """Score penalty for a fit whose term ``c*f(a*x+b)`` is far larger than the edge's own
    variation (the offset ``d`` cancels it): ``log10(ratio / 10)`` when the ratio of
    ``max|c*f|`` to the edge's range exceeds 10, else 0."""
    with torch.no_grad():
        term = c * fn.safe_fn(a * xe + b)
    spread = float(ye.max() - ye.min())
    size = float(term.abs().max())
    if not (math.isfinite(size) and spread > 0):
        return 0.0
    return max(math.log10(size / spread / 10.0), 0.0)


def _decide(
    edge: tuple[int, int, int],
    xe: torch.Tensor,
    ye: torch.Tensor,
    fits: CurveFits,
    e: int,
    fns: list[library.Function],
    opts: _Options,
) -> EdgeFit:
    """The outcome for one non-flat edge: symbolic, a two-term sum, or kept spline."""
    cands = _candidates(xe, ye, fits, e, fns, opts)
    best = cands[0] if cands else None
    pair = _try_pair(xe, ye, fns, fits, e, best, opts.weight_simple) if opts.pairs else None
    li, i, j = edge
    if pair is not None and pair.r2 >= opts.r2_threshold:
        return EdgeFit(li, i, j, pair.fn, pair.r2, pair.complexity, pair.params, "sum",
                       runner_ups=cands, terms=pair.terms)  # fmt: skip
    if best is None or best.r2 < opts.r2_threshold:
        best = best or Candidate("none", -math.inf, 0, (1.0, 0.0, 1.0, 0.0))
        status = "spline"
    else:
        status = "symbolic"
    return EdgeFit(li, i, j, best.fn, best.r2, best.complexity, best.params, status,
                   runner_ups=cands[1:])  # fmt: skip


def _fit_layer(
    model: MultKAN,
    li: int,
    edges: list[tuple[int, int]],
    acts: torch.Tensor,
    vals: torch.Tensor,
    fns: list[library.Function],
    opts: _Options,
) -> list[EdgeFit]:
    """Fit all spline ``edges`` of layer ``li`` at once and lock the ones that fit."""
    ii = torch.tensor([e[0] for e in edges], device=acts.device)
    jj = torch.tensor([e[1] for e in edges], device=acts.device)
    xs = acts[:, ii].T.to(torch.float64)  # (E, N)
    ys = vals[:, ii, jj].T.to(torch.float64)
    flat = ys.std(dim=1) <= opts.flat_tol * max(float(vals.abs().amax()), 1e-300)
    fits = fit_curves(xs, ys, fns)
    out = []
    for e, (i, j) in enumerate(edges):
        if flat[e]:  # the constant d, written as x with a = c = 0
            const = (0.0, 0.0, 0.0, float(ys[e].mean()))
            out.append(EdgeFit(li, i, j, "x", 1.0, 0, const, "flat"))
        else:
            out.append(_decide((li, i, j), xs[e], ys[e], fits, e, fns, opts))
    locked = [(f.i, f.j, f.fn, *f.params) for f in out if f.status in ("symbolic", "flat")]
    if locked:
        model.set_edges(li, locked)
    return out
