"""The fused B-spline layer kernel: ``[silu(x) | B(x)] @ W`` with a hand-written backward.

In: inputs ``x (N, in)``, the block weight of a :class:`~kanpiler.runtime.layer.KANLayer` and
its B-spline basis. Out: ``(N, out)`` and, on backward, the gradients of ``x`` and the weight.
Stage: runtime (the arithmetic core of ``KANLayer.forward``; ``reference_forward`` is the plain
autograd version it is tested against and falls back to for double backward).

>>> import torch
>>> from kanpiler.runtime.basis import BSplineBasis
>>> basis = BSplineBasis(2, grid=4, k=3, dtype=torch.float64)
>>> x = torch.rand(5, 2, dtype=torch.float64) * 2 - 1
>>> w = torch.rand(2 * (basis.n_basis + 1), 3, dtype=torch.float64)
>>> fast = FusedSpline.apply(x, w, basis)
>>> bool(torch.allclose(fast, reference_forward(x, interleave_weight(w, 2), basis)))
True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch

from . import native, triton_spline
from .basis import Basis, BSplineBasis, cardinal_columns, clip_local, cubic_pieces

__all__ = [
    "FusedLayer", "FusedSpline", "block_weight", "features", "interleave_weight",
    "reference_forward",
]  # fmt: skip


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


class FusedSpline(torch.autograd.Function):
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
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, basis: BSplineBasis
    ) -> torch.Tensor:
        ctx.params = ()
        return _forward(ctx, x, weight, basis)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: differentiate the reference path
            return (*_reference_grads(ctx, grad, saved[0], saved[1]), None)
        needs = ctx.needs_input_grad
        return (*_backward(ctx, grad, saved, needs[0], needs[1]), None)


class FusedLayer(torch.autograd.Function):
    """:class:`FusedSpline` of a layer's own parameters ``coef``, ``scale_base``,
    ``scale_sp`` and ``mask``: the block weight is built inside (no autograd graph for it) and
    its gradient taken back to the parameters by hand, which saves a dozen small autograd
    operations per layer and step (what dominates small models)."""

    @staticmethod
    def forward(ctx: Any, x, coef, scale_base, scale_sp, mask, basis) -> torch.Tensor:
        ctx.params = (coef, scale_base, scale_sp, mask)
        return _forward(ctx, x, _block_weight_into(coef, scale_base, scale_sp, mask), basis)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        saved = ctx.saved_tensors
        core, (coef, scale_base, scale_sp, mask) = saved[:-4], saved[-4:]
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # double backward: differentiate the reference path
            return (*_reference_layer_grads(ctx, grad, core[0], coef, scale_base, scale_sp,
                                            mask), None, None)  # fmt: skip
        gx, gw = _backward(ctx, grad, core, needs[0], any(needs[1:4]))
        g_coef = g_base = g_sp = None
        if gw is not None:
            n_in, n_out = scale_base.shape
            g_base = gw[:n_in] * mask if needs[2] else None
            g_spline = gw[n_in:].view(n_in, -1, n_out).transpose(1, 2)  # (in, out, n_basis)
            if needs[1]:
                g_coef = g_spline * (scale_sp * mask).unsqueeze(-1)
            if needs[3]:
                g_sp = (g_spline * coef).sum(-1).mul_(mask)
        return gx, g_coef, g_base, g_sp, None, None


def block_weight(coef, scale_base, scale_sp, mask) -> torch.Tensor:
    """The block weight of a layer (see :meth:`KANLayer.block_weight`): the ``in`` base rows
    ``w_b * mask``, then per input ``i`` the ``n_basis`` rows ``coef[i, :, j] * w_s * mask``."""
    base = scale_base * mask
    spline = (coef * (scale_sp * mask).unsqueeze(-1)).transpose(1, 2)
    return torch.cat([base, spline.reshape(-1, base.shape[1])])


def _block_weight_into(coef, scale_base, scale_sp, mask) -> torch.Tensor:
    """:func:`block_weight` written straight into its rows (two products, no concatenation
    and no transposing copy; not differentiable)."""
    n_in, n_out, nb = coef.shape
    w = torch.empty(n_in * (nb + 1), n_out, dtype=coef.dtype, device=coef.device)
    torch.mul(scale_base, mask, out=w[:n_in])
    rows = w[n_in:].view(n_in, nb, n_out).transpose(1, 2)  # (in, out, n_basis) view
    torch.mul(coef, torch.mul(scale_sp, mask).unsqueeze(-1), out=rows)
    return w


def _save(ctx: Any, *tensors: torch.Tensor) -> None:
    """Save what backward needs, then the layer parameters of :class:`FusedLayer` (if any)."""
    ctx.save_for_backward(*tensors, *ctx.params)


def _forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, basis: BSplineBasis):
    """The forward product on the best path for ``x``; records the path on ``ctx``."""
    n, n_in = x.shape
    ctx.basis, ctx.native, ctx.triton = basis, None, False
    if triton_spline.applies(x, basis):  # CUDA (or Triton's interpreter): fused kernels
        ctx.triton = True
        x = x.contiguous()
        _save(ctx, x, weight)
        return triton_spline.forward(x, weight, basis)
    done = _native_forward(ctx, x, weight, basis)
    if done is not None:
        return done
    fast = _fast_position(x, basis)
    ctx.fast = fast is not None
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
        assert dvals is not None  # asked for with derivative=True
        idx, vals = clip_local(start, vals, basis.n_basis)
        feats[:, n_in:].view(n, n_in, basis.n_basis).scatter_add_(2, idx, vals)
        extra = (idx, torch.where(vals != 0, dvals, torch.zeros_like(dvals)))
    _save(ctx, x, weight, feats, *extra)
    return feats @ weight


def _backward(ctx: Any, grad: torch.Tensor, saved, need_x: bool, need_w: bool):
    """``(grad_x, grad_W)`` (None where not needed) on the path the forward took."""
    x, weight, *rest = saved
    if ctx.triton:
        return triton_spline.backward(x, weight, ctx.basis, grad, (need_x, need_w))
    feats, *extra = rest
    gx = gw = None
    if need_x:
        if ctx.native is not None:
            gx = _native_grad_x(ctx, grad, x, weight, feats, *extra)
        elif ctx.fast:
            gx = _fast_grad_x(grad, x, weight, feats, *extra, k=ctx.basis.k)
        else:
            idx, dvals = extra
            gx = _general_grad_x(grad, x, weight, idx, dvals, ctx.basis.n_basis)
    if need_w:
        gw = feats.t() @ grad
    return gx, gw


def _native_forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, basis: BSplineBasis):
    """The forward product with the native feature kernel (cubic uniform grid, CPU, float32 or
    float64, every point inside the grid proper); ``None`` when it does not apply."""
    if not (basis.k == 3 and basis.uniform and x.device.type == "cpu" and x.numel() > 0):
        return None
    if x.dtype not in (torch.float32, torch.float64) or basis.knots.dtype != x.dtype:
        return None
    kern = native.kernels()
    if kern is None:
        return None
    n, n_in = x.shape
    top = basis.n_basis
    x = x.contiguous()
    g0, inv_h = basis.spacing()
    slack, below_top = _grid_ends(top, x.dtype)
    feats = scratch((n, n_in * (top + 1)), x)
    silu = torch.nn.functional.silu(x)
    if not kern.features(x, silu, g0, inv_h, feats, slack, below_top):
        return None
    ctx.native = (kern, below_top)
    _save(ctx, x, weight, feats, g0, inv_h)
    return feats @ weight


@lru_cache(maxsize=64)
def _grid_ends(top: int, dtype: torch.dtype) -> tuple[float, float]:
    """For ``n_basis = top``: how far (in intervals) a point may round outside the grid proper
    and still be clamped in, and the largest position below ``top`` in ``dtype``."""
    below = torch.nextafter(torch.tensor(float(top), dtype=dtype), torch.tensor(0.0, dtype=dtype))
    return 4 * torch.finfo(dtype).eps * top, float(below)


def _native_grad_x(ctx, grad, x, weight, feats, g0, inv_h) -> torch.Tensor:
    """``d out / dx`` with the native kernel: spline part from ``grad @ W^T``, plus silu'."""
    kern, below_top = ctx.native
    gfeat = torch.mm(grad, weight.t())
    gx = torch.empty_like(x)
    kern.grad_x(x, torch.sigmoid(x), g0, inv_h, gfeat, feats, gx, below_top)
    return gx


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


def _reference_layer_grads(ctx, grad, x, coef, scale_base, scale_sp, mask) -> list:
    """:func:`_reference_grads` for :class:`FusedLayer`: through the block weight too."""
    inputs = (x, coef, scale_base, scale_sp)
    wanted = [t for t, need in zip(inputs, ctx.needs_input_grad) if need]
    with torch.enable_grad():
        weight = block_weight(coef, scale_base, scale_sp, mask)
        out = reference_forward(x, interleave_weight(weight, x.shape[1]), ctx.basis)
        found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
    return [next(found) if need else None for need in ctx.needs_input_grad[:4]]


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
