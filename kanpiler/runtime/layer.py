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

import torch
from torch import nn

from ..errors import ShapeError
from .basis import Basis, BSplineBasis, cardinal_columns, clip_local, snapshot, unchanged

BASE_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": torch.nn.functional.silu,
    "identity": lambda x: x,
    "zero": torch.zeros_like,
}


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    """``d silu / dx = s * (1 + x * (1 - s))`` with ``s = sigmoid(x)`` (four kernels)."""
    s = torch.sigmoid(x)
    return torch.rsub(s, 1).mul_(x).add_(1).mul_(s)


def _fast_position(x: torch.Tensor, basis: BSplineBasis, width: int):
    """On a uniform grid with every point inside the grid proper: the flat feature column of
    each input's first non-zero B-spline ``(N, in)`` (int64) and the position ``u`` in the
    interval. ``None`` when a point (or NaN) lies outside: the caller takes the general path."""
    if not basis.uniform or x.numel() == 0:
        return None
    g0, inv_h = basis.spacing()
    t = torch.sub(x, g0).mul_(inv_h)  # knot intervals from the first knot
    lo, hi = torch.aminmax(t)
    if not bool((lo >= basis.k) & (hi < basis.n_basis)):
        return None
    # column of basis m - k + r of input i: i * width + 1 + m - k + r; t >= 0, so trunc = floor
    offset = torch.arange(x.shape[1], device=x.device) * width + (1 - basis.k)
    return t.long().add_(offset), torch.frac(t), inv_h


class _FusedSpline(torch.autograd.Function):
    """``[silu(x) | B(x)] @ W`` with the sparse B-spline basis and a hand-written backward.

    Fast path (uniform grid, every point inside the grid proper): the ``k+1`` non-zero basis
    values of each input are written by ``k+1`` shifted scatters of one flat index. Backward
    uses ``d/dx sum_j c_j B_j = (1/h) sum_j (c_j - c_{j-1}) B'_j`` (``B'`` of order ``k-1``):
    one product of the gradient with the differenced weights, then ``k`` shifted gathers
    times the order ``k-1`` values at the same position. Otherwise the general local basis
    (clipped at the ends) is used. Double backward (``create_graph=True``) recomputes through
    the plain autograd path, so higher derivatives stay exact.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, basis: BSplineBasis) -> torch.Tensor:
        n, n_in = x.shape
        width = basis.n_basis + 1
        feats = torch.zeros(n, n_in * width, dtype=x.dtype, device=x.device)
        feats[:, ::width] = torch.nn.functional.silu(x)
        fast = _fast_position(x, basis, width)
        ctx.basis, ctx.fast = basis, fast is not None
        if fast is not None:
            flat_idx, u, inv_h = fast
            for r, col in enumerate(cardinal_columns(u, basis.k)):
                feats[:, r:].scatter_(1, flat_idx, col)
            ctx.save_for_backward(x, weight, feats, flat_idx, u, inv_h)
        else:
            start, vals, dvals = basis.local(x, derivative=True)
            idx, vals = clip_local(start, vals, basis.n_basis)
            feats.view(n, n_in, width)[:, :, 1:].scatter_add_(2, idx, vals)
            dvals = torch.where(vals != 0, dvals, torch.zeros_like(dvals))
            ctx.save_for_backward(x, weight, feats, idx, dvals)
        return feats @ weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, feats, idx, *extra = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: differentiate the reference path
            with torch.enable_grad():
                out = reference_forward(x, weight, ctx.basis)
                gx, gw = torch.autograd.grad(out, (x, weight), grad, create_graph=True)
            return gx, gw, None
        gx = gw = None
        if ctx.needs_input_grad[0]:
            if ctx.fast:
                gx = _fast_grad_x(grad, weight, x, idx, *extra, ctx.basis.k)
            else:
                gx = _general_grad_x(grad, weight, x, idx, extra[0], ctx.basis.n_basis + 1)
        if ctx.needs_input_grad[1]:
            gw = feats.t() @ grad
        return gx, gw, None


def _fast_grad_x(grad, weight, x, flat_idx, u, inv_h, k: int) -> torch.Tensor:
    """``d out / dx`` on the fast path: silu column plus the order ``k-1`` derivative basis."""
    n_in = x.shape[1]
    w3 = weight.reshape(n_in, -1, weight.shape[1])
    width = w3.shape[1]
    # row 1 + j of input i: (c_j - c_{j-1}) / h; rows 0 (silu) and 1 (B'_0, never active) kept
    diff = (w3[:, 2:] - w3[:, 1:-1]).mul_(inv_h.view(-1, 1, 1))
    gfeat = grad @ torch.cat([w3[:, :2], diff], dim=1).reshape(-1, weight.shape[1]).t()
    gx = _silu_grad(x).mul_(gfeat[:, ::width])
    if k > 0:
        for r, col in enumerate(cardinal_columns(u, k - 1)):
            gx.addcmul_(torch.gather(gfeat[:, 1 + r :], 1, flat_idx), col)
    return gx


def _general_grad_x(grad, weight, x, idx, dvals, width: int) -> torch.Tensor:
    """``d out / dx`` on the general path: gathers of ``grad @ W^T`` times the derivatives."""
    n, n_in = x.shape
    gfeat = grad @ weight.t()
    local = torch.gather(gfeat.view(n, n_in, width)[:, :, 1:], 2, idx)
    return (local * dvals).sum(-1) + gfeat[:, ::width] * _silu_grad(x)


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
        base = (self.scale_base * self.mask).unsqueeze(1)
        spline = (self.coef * (self.scale_sp * self.mask).unsqueeze(-1)).transpose(1, 2)
        return torch.cat([base, spline], dim=1).reshape(-1, self.out_features)

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
        weight = self.weight()
        if self._fusable(x):
            return _FusedSpline.apply(x, weight, self.basis)
        feats = features(x, self.basis, BASE_FUNCTIONS[self.base_fun_name])
        return feats.reshape(x.shape[0], -1) @ weight

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
