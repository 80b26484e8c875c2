"""The numeric KAN layer: every edge is ``w_b * silu(x) + w_s * spline(x)``.

In: ``x`` of shape ``(N, in)``. Out: ``(N, out)``, the sum over inputs of the edge values.
Stage: runtime. The whole layer is one matrix product ``[silu(x) | basis(x)] @ W`` of shapes
``(N, in*(n_basis+1)) @ (in*(n_basis+1), out)``; with a B-spline basis, a fused autograd
function computes the sparse basis, the product and a hand-written backward.

>>> import torch
>>> layer = KANLayer(3, 2, grid=5, k=3, seed=0)
>>> layer(torch.zeros(4, 3)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch import nn

from ..errors import ShapeError
from .basis import (
    Basis,
    BSplineBasis,
    cardinal_columns,
    clip_local,
    cubic_pieces,
    snapshot,
    unchanged,
)

BASE_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": torch.nn.functional.silu,
    "identity": lambda x: x,
    "zero": torch.zeros_like,
}


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    """``d silu / dx = s * (1 + x * (1 - s))`` with ``s = sigmoid(x)`` (four kernels)."""
    s = torch.sigmoid(x)
    return torch.rsub(s, 1).mul_(x).add_(1).mul_(s)


def _fast_position(x: torch.Tensor, basis: BSplineBasis):
    """On a uniform grid with every point inside the grid proper: the feature column of each
    input's first non-zero B-spline ``(N, in)`` (int64), the position ``u`` in the interval
    and ``1/h``. ``None`` when a point (or NaN) lies outside: take the general path."""
    if not basis.uniform or x.numel() == 0:
        return None
    g0, inv_h = basis.spacing()
    t = torch.sub(x, g0).mul_(inv_h)  # knot intervals from the first knot
    k, top = basis.k, basis.n_basis  # inside the grid proper: k <= t < n_basis
    lo, hi = (float(v) for v in torch.aminmax(t))
    # continuous splines (k >= 1): the ends of the grid proper (x = -1 or 1, maybe rounded a
    # few ulps outside) are clamped in, to the same values; NaN fails every comparison
    slack = 4 * torch.finfo(t.dtype).eps * top if k > 0 else 0.0
    if not (lo >= k - slack and (hi < top or (slack > 0 and hi <= top + slack))):
        return None
    if lo < k or hi >= top:
        below_top = torch.nextafter(t.new_tensor(float(top)), t.new_tensor(0.0)).item()
        t.clamp_(float(k), below_top)
    offset = _column_offset(x.shape[1], basis.n_basis, basis.k, x.device)
    return t.long().add_(offset), torch.frac(t), inv_h  # t >= 0: trunc is floor


@lru_cache(maxsize=64)
def _column_offset(n_in: int, n_basis: int, k: int, device: torch.device) -> torch.Tensor:
    """Feature column of basis ``m - k`` of input ``i``, less ``m``: ``in + i * n_basis - k``."""
    return torch.arange(n_in, device=device) * n_basis + (n_in - k)


def scratch(shape: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``shape`` tensor with the dtype and device of ``like``."""
    return torch.empty(shape, dtype=like.dtype, device=like.device)


class _FusedSpline(torch.autograd.Function):
    """``[silu(x) | B(x)] @ W`` with the sparse B-spline basis and a hand-written backward.

    ``W`` is :meth:`KANLayer.block_weight`: ``in`` base rows, then ``n_basis`` spline rows
    per input; the features are ``(N, in * (n_basis + 1))`` in the same order. Fast path
    (uniform grid, every point inside the grid proper): the ``k+1`` non-zero basis values of
    each input, computed from the position ``u`` in its interval, are written by one scatter
    of one flat index into ``k+1`` overlapping windows of the feature rows. Backward uses
    ``d/dx sum_j c_j B_j = (1/h) sum_j (c_j - c_{j-1}) B'_j`` (``B'`` of order ``k-1``): one
    product of the gradient with the differenced weights, then one gather of ``k`` windows
    times the order ``k-1`` values at the same ``u``. Otherwise the general local basis
    (clipped at the ends) is used. Double backward (``create_graph=True``) recomputes through
    the plain autograd path, so higher derivatives stay exact.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, basis: BSplineBasis) -> torch.Tensor:
        n, n_in = x.shape
        fast = _fast_position(x, basis)
        ctx.basis, ctx.fast = basis, fast is not None
        if fast is not None:  # the small (N, in) work first, while x is in cache
            flat_idx, u, inv_h = fast
            vals, state = _fast_values(u, basis.k)
        feats = scratch((n, n_in * (basis.n_basis + 1)), x).zero_()
        torch.ops.aten.silu.out(x, out=feats[:, :n_in])  # written in place, no copy
        if fast is not None:
            # one scatter into overlapping windows: window r of row n starts at column r
            window(feats, basis.k + 1).scatter_(2, _spread(flat_idx, basis.k + 1), vals)
            extra = (flat_idx, inv_h, *state)
        else:
            start, vals, dvals = basis.local(x, derivative=True)
            idx, vals = clip_local(start, vals, basis.n_basis)
            feats[:, n_in:].view(n, n_in, basis.n_basis).scatter_add_(2, idx, vals)
            extra = (idx, torch.where(vals != 0, dvals, torch.zeros_like(dvals)))
        ctx.save_for_backward(x, weight, feats, *extra)
        return feats @ weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, feats, *extra = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: differentiate the reference path
            return (*_reference_grads(ctx, grad, x, weight), None)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            if ctx.fast:
                gx = _fast_grad_x(grad, x, weight, feats, *extra, k=ctx.basis.k)
            else:
                gx = _general_grad_x(grad, x, weight, *extra, ctx.basis.n_basis)
        if ctx.needs_input_grad[1]:
            gw = feats.t() @ grad
        return gx, gw, None


def window(mat: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, size, C - size + 1)`` view of a contiguous ``(N, C)`` matrix: ``[n, r, c]`` is
    ``mat[n, r + c]``. Windows overlap, so writes through it must hit distinct elements."""
    n, cols = mat.shape
    return mat.as_strided((n, size, cols - size + 1), (mat.stride(0), 1, 1))


def _spread(flat_idx: torch.Tensor, size: int) -> torch.Tensor:
    return flat_idx.unsqueeze(1).expand(-1, size, -1)


def _fast_values(u: torch.Tensor, k: int):
    """The ``k+1`` basis values at ``u`` as ``(N, k+1, in)`` and what backward needs for the
    derivatives: ``(u^2, (1-u)^2)`` for cubics, else ``(u,)``."""
    if k != 3:
        return torch.stack(cardinal_columns(u, k), dim=1), (u,)
    vals = u.new_empty(u.shape[0], 4, u.shape[1])
    v = 1 - u
    u2, v2 = u * u, v * v
    cubic_pieces(u, v, u2, v2, out=vals.unbind(1))
    return vals, (u2, v2)


def _fast_grad_x(grad, x, weight, feats, flat_idx, inv_h, *state, k: int) -> torch.Tensor:
    """``d out / dx`` on the fast path: silu column plus the order ``k-1`` derivative basis."""
    n_in = x.shape[1]
    # spline row j of input i becomes (c_j - c_{j-1}) / h, the weight of the order k-1
    # B-spline j (j >= 1; row 0 is never read: inside the grid proper that B-spline is 0)
    rows = weight.new_empty(weight.shape)
    rows[:n_in] = weight[:n_in]
    w3, r3 = (t[n_in:].reshape(n_in, -1, t.shape[1]) for t in (weight, rows))
    torch.sub(w3[:, 1:], w3[:, :-1], out=r3[:, 1:]).mul_(inv_h.view(-1, 1, 1))
    r3[:, 0] = 0
    # silu' = s + silu * (1 - s), with silu(x) read back from the features
    s = torch.sigmoid(x)
    gx = torch.rsub(s, 1).mul_(feats[:, :n_in]).add_(s)
    gfeat = torch.mm(grad, rows.t(), out=scratch((grad.shape[0], rows.shape[0]), grad))
    gx.mul_(gfeat[:, :n_in])
    if k == 0:
        return gx
    # g[:, r, i]: column of the order k-1 B-spline m - k + 1 + r of input i
    g = torch.gather(window(gfeat[:, 1:], k), 2, _spread(flat_idx, k))
    if k == 3:  # q0 g0 + q1 g1 + q2 g2 = g1 + (g0 - g1) v^2/2 + (g2 - g1) u^2/2
        u2, v2 = state
        g[:, ::2] -= g[:, 1:2]
        return gx.add_(g[:, 1]).addcmul_(g[:, 0], v2, value=0.5).addcmul_(g[:, 2], u2, value=0.5)
    for r, col in enumerate(cardinal_columns(state[0], k - 1)):
        gx.addcmul_(g[:, r], col)
    return gx


def _general_grad_x(grad, x, weight, idx, dvals, n_basis: int) -> torch.Tensor:
    """``d out / dx`` on the general path: the local derivatives times ``grad @ W^T``."""
    n, n_in = x.shape
    gfeat = grad @ weight.t()
    local = gfeat[:, n_in:].view(n, n_in, n_basis)
    gx = (torch.gather(local, 2, idx) * dvals).sum(-1)
    return gx + gfeat[:, :n_in] * _silu_grad(x)


def _reference_grads(ctx, grad, x, weight) -> list[torch.Tensor | None]:
    """Gradients of the inputs that need one, through ``reference_forward``, with a graph."""
    wanted = [t for t, need in zip((x, weight), ctx.needs_input_grad) if need]
    with torch.enable_grad():
        out = reference_forward(x, interleave_weight(weight, x.shape[1]), ctx.basis)
        found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
    return [next(found) if need else None for need in ctx.needs_input_grad[:2]]


def interleave_weight(weight: torch.Tensor, n_in: int) -> torch.Tensor:
    """Block layout (base rows, then spline rows) to per-input layout (base row, spline rows)."""
    n_out = weight.shape[1]
    spline = weight[n_in:].reshape(n_in, -1, n_out)
    return torch.cat([weight[:n_in].unsqueeze(1), spline], dim=1).reshape(-1, n_out)


def features(x: torch.Tensor, basis: Basis, base_fun: Callable) -> torch.Tensor:
    """``(N, in, n_basis + 1)``: the base function then the basis values, per input."""
    return torch.cat([base_fun(x).unsqueeze(-1), basis(x)], dim=-1)


def reference_forward(x: torch.Tensor, weight: torch.Tensor, basis: Basis) -> torch.Tensor:
    """The plain autograd version of the silu + basis product (any basis, any order)."""
    feats = features(x, basis, torch.nn.functional.silu)
    return feats.reshape(x.shape[0], -1) @ weight


class KANLayer(nn.Module):
    """A layer of ``in_features * out_features`` learnable activation edges.

    Parameters (per edge, shaped ``(in, out)``): ``scale_base`` (``w_b``), ``scale_sp``
    (``w_s``), the buffer ``mask`` (0/1); ``coef`` is ``(in, out, n_basis)``. The basis
    (``self.basis``, a :class:`Basis`) owns the per-input knot grid.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid: int = 5,
        k: int = 3,
        *,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        noise_scale: float = 0.3,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        scale_sp: float = 1.0,
        base_fun: str = "silu",
        grid_eps: float = 0.02,
        basis: Basis | None = None,
        seed: int = 0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ShapeError(f"KANLayer sizes must be >= 0, got ({in_features}, {out_features})")
        if base_fun not in BASE_FUNCTIONS:
            raise ShapeError(f"unknown base_fun {base_fun!r}; known: {', '.join(BASE_FUNCTIONS)}")
        self.in_features, self.out_features = in_features, out_features
        self.base_fun_name = base_fun
        self.grid_eps = float(grid_eps)
        self.basis = basis or BSplineBasis(
            in_features, grid, k, grid_range, dtype=dtype, device=device
        )
        gen = generator or torch.Generator().manual_seed(seed)
        nb, shape = self.basis.n_basis, (in_features, out_features)
        noise = (torch.rand(*shape, nb, generator=gen, dtype=torch.float64) - 0.5) * noise_scale
        base = scale_base_mu + scale_base_sigma * (
            2 * torch.rand(*shape, generator=gen, dtype=torch.float64) - 1
        )
        norm = 1.0 / max(in_features, 1) ** 0.5
        opts = {"dtype": dtype, "device": device}
        self.coef = nn.Parameter((noise / max(grid, 1)).to(**opts))
        self.scale_base = nn.Parameter((base * norm).to(**opts))
        self.scale_sp = nn.Parameter(torch.full(shape, scale_sp * norm, **opts))
        self.register_buffer("mask", torch.ones(shape, **opts))

    # --- properties -------------------------------------------------------------------------

    @property
    def grid(self) -> torch.Tensor:
        """The extended knot grid ``(in, G + 2k + 1)`` of a B-spline basis."""
        return self.basis.grid

    @property
    def k(self) -> int:
        return self.basis.k

    @property
    def n_intervals(self) -> int:
        return self.basis.n_intervals

    def weight(self) -> torch.Tensor:
        """The fused ``(in * (n_basis + 1), out)`` matrix: base row then spline rows per input."""
        return interleave_weight(self.block_weight(), self.in_features)

    def block_weight(self) -> torch.Tensor:
        """The same rows in blocks: the ``in`` base rows ``w_b * mask``, then per input ``i``
        the ``n_basis`` spline rows ``coef[i, :, j] * w_s[i] * mask[i]``."""
        base = self.scale_base * self.mask
        spline = (self.coef * (self.scale_sp * self.mask).unsqueeze(-1)).transpose(1, 2)
        return torch.cat([base, spline.reshape(-1, self.out_features)])

    @property
    def active(self) -> bool:
        """Whether any edge is on (cached per mask version: no device sync per forward)."""
        if not unchanged(getattr(self, "_active_key", None), self.mask):
            self._active_value = bool((self.mask != 0).any())
            self._active_key = snapshot(self.mask)
        return self._active_value

    # --- evaluation -------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ShapeError(
                f"KANLayer expects input (N, {self.in_features}), got {tuple(x.shape)}"
            )
        if self._fusable(x):
            return _FusedSpline.apply(x, self.block_weight(), self.basis)
        feats = features(x, self.basis, BASE_FUNCTIONS[self.base_fun_name])
        return feats.reshape(x.shape[0], -1) @ self.weight()

    def _fusable(self, x: torch.Tensor) -> bool:
        return (
            self.base_fun_name == "silu"
            and self.basis.has_local
            and not torch._C._are_functorch_transforms_active()
        )

    def spline(self, x: torch.Tensor) -> torch.Tensor:
        """Per-edge spline values ``(N, in, out)`` (no ``w_s``, no mask)."""
        return torch.einsum("nib,iob->nio", self.basis(x), self.coef)

    def edge_values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-edge ``phi`` values ``(N, in, out)`` including mask (for plots, attribution)."""
        base = BASE_FUNCTIONS[self.base_fun_name](x).unsqueeze(-1) * self.scale_base
        return (base + self.scale_sp * self.spline(x)) * self.mask
