"""Edge bases: the functions every numeric KAN edge is a linear combination of.

In: inputs ``x`` of shape ``(N, in)``. Out: basis values ``(N, in, n_basis)``.
Stage: runtime. ``Basis`` is the one interface a layer needs; ``BSplineBasis`` implements it
with per-input knot grids and evaluates only the ``k + 1`` non-zero B-splines of each input.

>>> import torch
>>> basis = BSplineBasis(2, grid=5, k=3)
>>> values = basis(torch.linspace(-1, 1, 9).reshape(-1, 1).expand(-1, 2))
>>> values.shape
torch.Size([9, 2, 8])
>>> bool(torch.allclose(values.sum(-1), torch.ones(9, 2)))  # partition of unity
True
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from ..errors import ShapeError


def snapshot(*tensors: torch.Tensor) -> tuple:
    """A cache key for the current content of ``tensors``: the objects and their versions
    (in-place changes bump a tensor's version; replacing it changes the object)."""
    return tuple((t, t._version) for t in tensors)


def unchanged(key: tuple | None, *tensors: torch.Tensor) -> bool:
    """Whether ``tensors`` are the very objects of ``key``, not modified since."""
    if key is None or len(key) != len(tensors):
        return False
    return all(old is t and version == t._version for (old, version), t in zip(key, tensors))


class Basis(nn.Module):
    """Interface of an edge basis: B-splines here, the other families in :mod:`.bases`.

    A basis owns whatever per-input state it needs (e.g. knot grids) and exposes:

    * ``n_basis``: number of basis functions per input;
    * ``forward(x) -> (N, in, n_basis)``: the dense basis values;
    * ``local(x, derivative) -> (start, values, derivatives)`` (optional, with
      ``has_local``): the few non-zero values per input, starting at basis index ``start``
      (the fused fast path of ``KANLayer`` uses it);
    * ``span() -> (in, 2)``: each input's natural domain; ``select(rows)``: the basis of
      some inputs (pruning);
    * for B-splines, ``knots``/``inner`` and ``set_grid(knots)``: grid updates and grid
      extension (``grid.py``) go through them; the other families
      (:class:`~kanpiler.runtime.bases.DenseBasis`) have ``update_grid``/``refined``.

    A basis without ``local`` still works: the layer multiplies its dense values.
    """

    n_basis: int
    #: for grid-based bases: intervals, spline order, knots ``(in, G + 2k + 1)``, uniformity
    n_intervals: int
    k: int
    knots: torch.Tensor
    uniform: bool

    @property
    def inner(self) -> torch.Tensor:
        """Grid-based bases: the ``(in, G + 1)`` knots of the grid proper."""
        raise NotImplementedError

    def set_grid(self, knots: torch.Tensor) -> None:
        """Grid-based bases: move to new extended knots ``(in, G + 2k + 1)``."""
        raise NotImplementedError

    def local(
        self, x: torch.Tensor, derivative: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    @property
    def has_local(self) -> bool:
        return False

    def span(self) -> torch.Tensor:
        """``(in, 2)``: the low and high end of each input's natural domain (where plots and
        symbolic fits sample an edge without data)."""
        raise NotImplementedError

    def select(self, rows: torch.Tensor) -> Basis:
        """A basis for the inputs ``rows`` only, their state copied (pruning)."""
        raise NotImplementedError


def extend_grid(points: torch.Tensor, k: int) -> torch.Tensor:
    """Add ``k`` knots on each side of ``points`` (``(in, G+1)``), spaced like the average."""
    h = (points[:, -1:] - points[:, :1]) / (points.shape[1] - 1)
    steps = torch.arange(1, k + 1, dtype=points.dtype, device=points.device)
    left = points[:, :1] - h * steps.flip(0)
    right = points[:, -1:] + h * steps
    return torch.cat([left, points, right], dim=1)


def uniform_points(
    n_in: int, grid: int, grid_range: tuple[float, float], dtype: torch.dtype, device
) -> torch.Tensor:
    """``(in, grid+1)`` equally spaced knots over ``grid_range`` for every input."""
    lo, hi = float(grid_range[0]), float(grid_range[1])
    pts = torch.linspace(lo, hi, grid + 1, dtype=torch.float64)
    return pts.expand(n_in, -1).to(dtype=dtype, device=device).contiguous()


class BSplineBasis(Basis):
    """B-splines of order ``k`` (degree k) on ``grid`` intervals, one knot vector per input.

    The knot buffer ``knots`` is ``(in, G + 2k + 1)`` (``k`` extra knots on each side), so each
    input has ``n_basis = G + k`` basis functions. On uniform grids the ``k+1`` non-zero values
    come from the cardinal B-spline recursion on the fractional position in the interval; on
    non-uniform grids (after a grid update) from the local Cox-de Boor recursion with the knots
    found by ``searchsorted``. Outside the knot span every basis function is 0.
    """

    def __init__(
        self,
        in_features: int,
        grid: int = 5,
        k: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if grid < 1 or k < 0:
            raise ShapeError(f"B-spline basis needs grid >= 1 and k >= 0, got grid={grid}, k={k}")
        self.k = int(k)
        self.n_intervals = int(grid)
        pts = uniform_points(in_features, grid, grid_range, dtype, device)
        self.register_buffer("knots", extend_grid(pts, self.k))
        self.uniform = is_uniform(self.knots)
        self.register_load_state_dict_post_hook(_refresh_uniform)
        # caches keyed by the knots' identity and version (see ``snapshot``)
        self._spacing_key: tuple | None = None
        self._spacing: tuple[torch.Tensor, torch.Tensor] = (self.knots, self.knots)
        self._table_key: tuple | None = None
        self._table_value: tuple[torch.Tensor, torch.Tensor] = (self.knots, self.knots)

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return self.n_intervals + self.k

    @property
    def has_local(self) -> bool:
        return True

    @property
    def inner(self) -> torch.Tensor:
        """The ``(in, G+1)`` knots inside the extension (the grid proper)."""
        return self.knots[:, self.k : self.knots.shape[1] - self.k]

    def span(self) -> torch.Tensor:
        """``(in, 2)``: the ends of the grid proper."""
        inner = self.inner
        return torch.stack([inner[:, 0], inner[:, -1]], dim=1)

    def select(self, rows: torch.Tensor) -> BSplineBasis:
        new = BSplineBasis(len(rows), self.n_intervals, self.k, dtype=self.knots.dtype,
                           device=self.knots.device)  # fmt: skip
        new.set_grid(self.knots[rows])
        return new

    def set_grid(self, knots: torch.Tensor) -> None:
        """Replace the extended knot vectors (``(in, G+2k+1)``, sorted along dim 1)."""
        self.n_intervals = knots.shape[1] - 1 - 2 * self.k
        self.knots = torch.sort(knots.to(self.knots), dim=1).values.contiguous()
        self.uniform = is_uniform(self.knots)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start, vals, _ = self.local(x, derivative=False)
        return scatter_local(start, vals, self.n_basis)

    def local(
        self, x: torch.Tensor, derivative: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Non-zero basis values: ``start (N, in)``, ``values (N, in, k+1)``, d/dx of them.

        Value ``r`` belongs to basis function ``start + r`` (which may lie outside
        ``[0, n_basis)``; those values are 0). Derivatives are ``None`` unless asked for.
        """
        if self.uniform:
            return self._local_uniform(x, derivative)
        return self._local_general(x, derivative)

    def spacing(self) -> tuple[torch.Tensor, torch.Tensor]:
        """On a uniform grid: first knot and ``1 / spacing`` per input (contiguous, cached)."""
        if not unchanged(self._spacing_key, self.knots):
            g0 = self.knots[:, 0].contiguous()
            self._spacing = (g0, 1.0 / (self.knots[:, 1] - g0))
            self._spacing_key = snapshot(self.knots)
        return self._spacing

    def position(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """On a uniform grid: interval index ``m`` (float), position ``u`` in it, 1/spacing."""
        g0, inv_h = self.spacing()
        t = (x - g0) * inv_h
        m = torch.floor(t)
        return m, t - m, inv_h

    def _local_uniform(self, x: torch.Tensor, derivative: bool):
        m, u, inv_h = self.position(x)
        n_knots = self.knots.shape[1]
        inside = None
        if not _all_inside(m, 0, n_knots - 2):  # some points outside the knot span (or NaN)
            inside = (m >= 0) & (m < n_knots - 1)
            m = torch.where(inside, m, torch.zeros_like(m))
        vals = _stack_last(cardinal_columns(u, self.k))
        dvals = None
        if derivative:
            dvals = _stack_last(cardinal_columns(u, self.k, derivative=True)) * inv_h.unsqueeze(-1)
        return m.long() - self.k, *_zero_outside(inside, vals, dvals)

    def _table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per input and knot interval, the power coefficients of the ``k+1`` non-zero
        B-splines in ``u = (x - t_m) / (t_{m+1} - t_m)``: ``(in*(K-1), k+1 powers, k+1)``,
        and ``1 / (t_{m+1} - t_m)`` as ``(in*(K-1),)`` (0 on empty intervals). Cached."""
        if unchanged(self._table_key, self.knots):
            return self._table_value
        n_in, n_knots = self.knots.shape
        size = self.k + 1
        knots = self.knots.double()
        left, h = knots[:, :-1], knots.diff(dim=1)  # (in, K-1)
        us = (torch.arange(size, dtype=torch.float64, device=knots.device) + 0.5) / size
        xs = left.unsqueeze(-1) + h.unsqueeze(-1) * us  # (in, K-1, S)
        _, vals, _ = _local_recursive(knots, self.k, xs.reshape(n_in, -1).t(), False)
        vals = vals.reshape(n_knots - 1, size, n_in, size).permute(2, 0, 1, 3)  # (in, K-1, S, R)
        vander = us.unsqueeze(-1) ** torch.arange(size, dtype=torch.float64, device=us.device)
        coef = torch.linalg.solve(vander, vals)  # (in, K-1, P, R)
        coef = torch.where((h > 0)[..., None, None], coef, torch.zeros_like(coef))
        inv_h = torch.where(h > 0, 1.0 / torch.where(h > 0, h, torch.ones_like(h)), 0.0)
        dtype = self.knots.dtype
        value = (coef.reshape(-1, size, size).to(dtype), inv_h.reshape(-1).to(dtype))
        self._table_value, self._table_key = value, snapshot(self.knots)
        return value

    def _local_general(self, x: torch.Tensor, derivative: bool):
        coef, inv_h = self._table()
        n_in, n_knots = self.knots.shape
        m = knot_interval(self.knots, x)
        inside = None
        if not _all_inside(m, 0, n_knots - 2):
            inside = (m >= 0) & (m < n_knots - 1)
            m = torch.where(inside, m, torch.zeros_like(m))
        row = (m + torch.arange(n_in, device=x.device) * (n_knots - 1)).flatten()
        scale = inv_h.index_select(0, row).view_as(x)
        left = self.knots[:, :-1].reshape(-1).index_select(0, row).view_as(x)
        u = ((x - left) * scale).unsqueeze(-1)
        c = coef.index_select(0, row).view(*x.shape, self.k + 1, self.k + 1)  # (N, in, P, R)
        vals = c[..., -1, :]
        for p in range(self.k - 1, -1, -1):
            vals = vals * u + c[..., p, :]
        dvals = None
        if derivative:
            dvals = torch.zeros_like(vals)
            for p in range(self.k, 0, -1):
                dvals = dvals * u + p * c[..., p, :]
            dvals = dvals * scale.unsqueeze(-1)
        return m - self.k, *_zero_outside(inside, vals, dvals)


def _zero_outside(inside: torch.Tensor | None, vals: torch.Tensor, dvals: torch.Tensor | None):
    """Values (and derivatives) set to 0 where ``inside`` is False (``None``: all inside)."""
    if inside is None:
        return vals, dvals
    keep = inside.unsqueeze(-1)
    vals = torch.where(keep, vals, torch.zeros_like(vals))
    if dvals is not None:
        dvals = torch.where(keep, dvals, torch.zeros_like(dvals))
    return vals, dvals


def _local_recursive(knots: torch.Tensor, k: int, x: torch.Tensor, derivative: bool):
    """Local Cox-de Boor recursion on the ``k+1`` knots around each point (any grid)."""
    n_knots = knots.shape[1]
    m = knot_interval(knots, x)
    inside = (m >= 0) & (m < n_knots - 1) & ~torch.isnan(x)
    m = torch.where(inside, m, torch.zeros_like(m))
    # knot t[m + s] for s in -k..k+1, gathered per point (clamped at the ends)
    offs = torch.arange(-k, k + 2, device=x.device)
    idx = (m.unsqueeze(-1) + offs).clamp(0, n_knots - 1)  # (N, in, 2k+2)
    kn = torch.gather(knots.expand(x.shape[0], -1, -1), 2, idx)
    vals = [inside.to(x.dtype)]
    dvals = None
    for p in range(1, k + 1):
        inv = _recips(kn, p, k)
        if derivative and p == k:
            dvals = _general_derivative(vals, inv, p)
        vals = _general_step(vals, x, kn, inv, p, k)
    if derivative and k == 0:
        dvals = [torch.zeros_like(x)]
    return (
        m - k,
        torch.stack(vals, dim=-1),
        torch.stack(dvals, dim=-1) if dvals is not None else None,
    )


def knot_interval(knots: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(N, in)`` int64: index of the last knot ``<= x`` per input (-1 below the first knot,
    ``K - 1`` at or above the last). Under ``torch.func`` transforms, where ``searchsorted``
    would see batched, non-contiguous values, the knots ``<= x`` are counted instead."""
    if torch._C._are_functorch_transforms_active():
        return (x.unsqueeze(-1) >= knots).sum(-1) - 1
    return torch.searchsorted(knots, x.t().contiguous(), right=True).t() - 1


def _all_inside(m: torch.Tensor, lo: float, hi: float) -> bool:
    """Whether every ``m`` lies in ``[lo, hi]`` (no NaN). False under ``torch.func``
    transforms, where a branch on tensor values cannot be taken: callers then mask."""
    if torch._C._are_functorch_transforms_active():
        return False
    if m.numel() == 0:
        return True
    low, high = torch.aminmax(m)
    return bool((low >= lo) & (high <= hi))


def is_uniform(knots: torch.Tensor) -> bool:
    """Whether every row of ``knots`` is equally spaced (to a few ulps of the knot values)."""
    if knots.numel() == 0:
        return True
    h = knots.diff(dim=1)
    tol = 16 * torch.finfo(knots.dtype).eps * knots.abs().amax(dim=1, keepdim=True)
    return bool(((h - h[:, :1]).abs() <= tol).all() and (h > 0).all())


def _refresh_uniform(module: BSplineBasis, incompatible: object) -> None:
    module.uniform = is_uniform(module.knots)


def _zero(u: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=u.dtype, device=u.device)


def cubic_columns(u: torch.Tensor) -> list[torch.Tensor]:
    """The four non-zero uniform cubic B-splines at position ``u`` in [0, 1) (closed form,
    symmetric under ``u -> 1 - u``; nine elementwise kernels)."""
    v = 1 - u
    return cubic_pieces(u, v, u * u, v * v)


def cubic_pieces(
    u: torch.Tensor,
    v: torch.Tensor,
    u2: torch.Tensor,
    v2: torch.Tensor,
    out: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """:func:`cubic_columns` from ``u``, ``v = 1 - u`` and their squares (written into the
    four tensors ``out`` if given; not differentiable then)."""
    o = out if out is not None else (None,) * 4
    return [
        torch.addcmul(_zero(u), v2, v, value=1 / 6, out=o[0]),
        torch.addcmul(torch.rsub(u2, 2 / 3), u2, u, value=0.5, out=o[1]),
        torch.addcmul(torch.rsub(v2, 2 / 3), v2, v, value=0.5, out=o[2]),
        torch.addcmul(_zero(u), u2, u, value=1 / 6, out=o[3]),
    ]


def quadratic_columns(u: torch.Tensor) -> list[torch.Tensor]:
    """The three non-zero uniform quadratic B-splines at position ``u`` in [0, 1)."""
    v = 1 - u
    q0 = torch.addcmul(_zero(u), v, v, value=0.5)
    q2 = torch.addcmul(_zero(u), u, u, value=0.5)
    return [q0, torch.rsub(q0, 1).sub_(q2), q2]


def _stack_last(cols: list[torch.Tensor]) -> torch.Tensor:
    """``(..., len(cols))`` from equally shaped tensors (stacking on dim 0 is the fast copy)."""
    return torch.stack(cols, dim=0).movedim(0, -1)


def cardinal_columns(u: torch.Tensor, k: int, derivative: bool = False) -> list[torch.Tensor]:
    """The ``k+1`` non-zero uniform B-splines of order ``k`` at ``u`` (or d/du of them).

    Column ``r`` belongs to basis ``m - k + r`` on interval ``m``. The derivative of column
    ``r`` is ``c_{r-1} - c_r`` in the columns ``c`` of order ``k - 1`` (uniform knots).
    """
    if derivative:
        if k == 0:
            return [torch.zeros_like(u)]
        low = cardinal_columns(u, k - 1)
        return [-low[0], *(low[r - 1] - low[r] for r in range(1, k)), low[-1]]
    if k == 3:
        return cubic_columns(u)
    if k == 2:
        return quadratic_columns(u)
    out = []
    for coefs in _cardinal_float64(k).t().tolist():
        acc = torch.full_like(u, coefs[-1])
        for a in reversed(coefs[:-1]):
            acc = torch.addcmul(torch.full((), a, dtype=u.dtype, device=u.device), acc, u)
        out.append(acc)
    return out


@lru_cache(maxsize=64)
def _cardinal_float64(k: int) -> torch.Tensor:
    """``(k+1, k+1)``: power-of-``u`` coefficients (rows) of the k+1 cardinal B-spline pieces.

    Column ``r`` is ``b_r(u)``, the piece of basis ``m - k + r`` on interval ``m`` with ``u``
    the position in the interval. Built by the unit-knot recursion
    ``b_r = ((u + p - r) b'_{r-1} + (r + 1 - u) b'_r) / p`` on polynomials.
    """
    polys = [np.array([1.0])]
    for p in range(1, k + 1):
        new = []
        for r in range(p + 1):
            acc = np.zeros(p + 1)
            if r >= 1:
                acc += np.polynomial.polynomial.polymul([p - r, 1.0], polys[r - 1])[: p + 1]
            if r < p:
                acc += np.polynomial.polynomial.polymul([r + 1, -1.0], polys[r])[: p + 1]
            new.append(acc / p)
        polys = new
    mat = np.zeros((k + 1, k + 1))
    for r, poly in enumerate(polys):
        mat[: len(poly), r] = poly
    return torch.from_numpy(mat)


def _recips(kn: torch.Tensor, p: int, k: int) -> list[torch.Tensor]:
    """``1 / (t_{m+r} - t_{m+r-p})`` for r = 1..p (0 where knots repeat); index 0 unused."""
    out = [kn.new_zeros(())]
    for r in range(1, p + 1):
        inv = 1.0 / (kn[..., r + k] - kn[..., r - p + k])
        out.append(inv.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0))
    return out


def _general_step(
    old: list[torch.Tensor], x: torch.Tensor, kn: torch.Tensor, inv: list[torch.Tensor],
    p: int, k: int,
) -> list[torch.Tensor]:  # fmt: skip
    # b_{j,p} = (x - t_j)/(t_{j+p} - t_j) b_{j,p-1} + (t_{j+p+1} - x)/(t_{j+p+1} - t_{j+1}) b_{j+1,p-1}
    # with j = m - p + r; kn[..., s + k] holds t_{m+s}
    new = []
    for r in range(p + 1):  # p >= 1: at least one of the two terms
        terms = []
        if r >= 1:
            terms.append((x - kn[..., r - p + k]) * inv[r] * old[r - 1])
        if r < p:
            terms.append((kn[..., r + 1 + k] - x) * inv[r + 1] * old[r])
        new.append(terms[0] if len(terms) == 1 else terms[0] + terms[1])
    return new


def _general_derivative(
    old: list[torch.Tensor], inv: list[torch.Tensor], p: int
) -> list[torch.Tensor]:
    # d/dx b_{j,p} = p (b_{j,p-1}/(t_{j+p} - t_j) - b_{j+1,p-1}/(t_{j+p+1} - t_{j+1}))
    out = []
    for r in range(p + 1):
        if r == 0:
            out.append(-p * (old[r] * inv[r + 1]))
        elif r == p:
            out.append(p * (old[r - 1] * inv[r]))
        else:
            out.append(p * (old[r - 1] * inv[r] - old[r] * inv[r + 1]))
    return out


def scatter_local(start: torch.Tensor, vals: torch.Tensor, n_basis: int) -> torch.Tensor:
    """Dense ``(N, in, n_basis)`` basis from local values (out-of-range entries dropped)."""
    n, n_in, width = vals.shape
    idx, vals = clip_local(start, vals, n_basis)
    out = torch.zeros(n, n_in, n_basis, dtype=vals.dtype, device=vals.device)
    return out.scatter_add(2, idx, vals)


def clip_local(
    start: torch.Tensor, vals: torch.Tensor, n_basis: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices clamped into ``[0, n_basis)`` and the values of clamped entries zeroed."""
    width = vals.shape[-1]
    idx = start.unsqueeze(-1) + torch.arange(width, device=start.device)
    ok = (idx >= 0) & (idx < n_basis)
    return idx.clamp(0, n_basis - 1), torch.where(ok, vals, torch.zeros_like(vals))
