"""Taylor-mode (forward) derivatives of a network with respect to its inputs.

In: a model (``MultKAN`` or an ``nn.Sequential`` of ``Linear`` layers and elementwise
activations), points ``x (N, n)`` and directions ``v (D, n)``. Out: the value ``u (N, out)``
and, per direction, the first and second directional derivatives ``(D, N, out)``.
Stage: physics. A jet ``(h, h', h'')`` is pushed through the network layer by layer:
``phi(h)' = phi'(h) h'`` and ``phi(h)'' = phi''(h) h'^2 + phi'(h) h''`` per edge, so a KAN layer
costs one matrix product of ``[base | basis]`` features (and their two derivatives) with the
layer's weight per jet coefficient, instead of a double backward through the whole graph.

>>> import torch
>>> mlp = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
>>> x = torch.zeros(4, 1)
>>> u, d1, d2 = jets(mlp, x, torch.eye(1))
>>> tuple(d2.shape)
(1, 4, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..runtime.basis import BSplineBasis, cardinal_columns, scatter_local

Jet = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (N, m), (D, N, m), (D, N, m)

ELEMENTWISE = (
    nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU, nn.Softplus, nn.ELU, nn.ReLU, nn.LeakyReLU,
    nn.Identity, nn.Mish, nn.Softsign, nn.Hardtanh, nn.Tanhshrink,
)  # fmt: skip


def supports(model: nn.Module) -> bool:
    """Whether :func:`jets` can push a jet through ``model``."""
    if _is_multkan(model):
        return True
    if isinstance(model, nn.Sequential):
        return all(isinstance(m, (nn.Linear, *ELEMENTWISE)) or supports(m) for m in model)
    return isinstance(model, (nn.Linear, *ELEMENTWISE))


def jets(model: nn.Module, x: torch.Tensor, directions: torch.Tensor) -> Jet:
    """Value and first/second derivatives of ``model`` at ``x`` along each direction.

    ``directions`` is ``(D, n)``; the result is ``u (N, out)``, ``du (D, N, out)``,
    ``d2u (D, N, out)`` with ``du[d] = J v_d`` and ``d2u[d] = v_d^T H v_d`` per output.
    """
    v = directions.to(x).unsqueeze(1).expand(-1, x.shape[0], -1)
    return push(model, (x, v, torch.zeros_like(v)))


def push(model: nn.Module, jet: Jet) -> Jet:
    """Push a jet through one supported module (recursing into containers)."""
    if _is_multkan(model):
        return _multkan(model, jet)
    if isinstance(model, nn.Sequential):
        for m in model:
            jet = push(m, jet)
        return jet
    if isinstance(model, nn.Linear):
        h, h1, h2 = jet
        return model(h), h1 @ model.weight.t(), h2 @ model.weight.t()
    return elementwise(model, jet)


def elementwise(fn: Callable[[torch.Tensor], torch.Tensor], jet: Jet) -> Jet:
    """A jet through an elementwise function, its derivatives by nested forward mode."""
    h, h1, h2 = jet
    f0, f1, f2 = derivatives_elementwise(fn, h)
    return f0, f1 * h1, f2 * h1 * h1 + f1 * h2


def derivatives_elementwise(fn: Callable, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``f(h), f'(h), f''(h)`` of an elementwise ``fn`` (a tangent of ones per element)."""
    if fn is torch.tanh or isinstance(fn, nn.Tanh):
        t = torch.tanh(h)
        d1 = 1 - t * t
        return t, d1, -2 * t * d1
    if fn is torch.nn.functional.silu or isinstance(fn, nn.SiLU):
        return silu_derivatives(h)
    ones = torch.ones_like(h)

    def first(z: torch.Tensor) -> Any:
        return torch.func.jvp(fn, (z,), (ones,))

    nested: Any = torch.func.jvp(first, (h,), (ones,))
    (f0, f1), (_, f2) = nested
    return f0, f1, f2


def silu_derivatives(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``silu``, ``silu' = s (1 + h (1 - s))``, ``silu'' = s (1 - s) (2 + h (1 - 2 s))``."""
    s = torch.sigmoid(h)
    one_s = 1 - s
    return h * s, s * (1 + h * one_s), s * one_s * (2 + h * (1 - 2 * s))


def _is_multkan(model: nn.Module) -> bool:
    return hasattr(model, "layers") and hasattr(model, "symbolic") and hasattr(model, "width")


def _multkan(model, jet: Jet) -> Jet:
    for li in range(model.depth):
        num, sym = model.layers[li], model.symbolic[li]
        parts = [kan_layer(num, jet)] if num.active else []
        if sym.active:
            parts.append(edge_sum(sym.edge_values, jet))
        if not parts:
            zero = jet[1].new_zeros(jet[1].shape[0], jet[0].shape[0], num.out_features)
            parts = [(zero[0], zero, zero)]
        y = _add(parts)
        y = _affine(y, model.subnode_scale[li], model.subnode_bias[li])
        jet = _affine(_nodes(model, li + 1, y), model.node_scale[li], model.node_bias[li])
    return jet


def _add(parts: list[Jet]) -> Jet:
    first, *rest = parts
    for p in rest:
        first = (first[0] + p[0], first[1] + p[1], first[2] + p[2])
    return first


def kan_layer(layer, jet: Jet) -> Jet:
    """A jet through a numeric KAN layer. The ``[base | basis]`` features and their two
    derivatives times each input's block of the weight give every edge's ``phi``,
    ``phi'`` and ``phi''`` (one batched product); the jet then combines them per edge."""
    h = jet[0]
    n, n_in = h.shape
    feats = torch.stack(_feature_derivatives(layer, h))  # (3, N, in, F)
    weight = layer.weight().view(n_in, feats.shape[-1], -1)  # (in, F, out)
    per_edge = torch.bmm(feats.permute(2, 0, 1, 3).reshape(n_in, 3 * n, -1), weight)
    p0, p1, p2 = per_edge.view(n_in, 3, n, -1).unbind(1)
    return _edge_jet(p0, p1, p2, jet)


def _edge_jet(p0, p1, p2, jet: Jet) -> Jet:
    """``y_o = sum_i phi_io(h_i)`` from per-edge values and derivatives ``(in, N, out)``."""
    _, h1, h2 = jet
    y1 = torch.einsum("dni,ino->dno", h1, p1)
    y2 = torch.einsum("dni,ino->dno", h1 * h1, p2) + torch.einsum("dni,ino->dno", h2, p1)
    return p0.sum(0), y1, y2


def _feature_derivatives(layer, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    b = derivatives_elementwise(_base_function(layer), h)
    s = bspline_derivatives(layer.basis, h)
    if s is None:  # any other basis: nested forward mode (each value depends on one input)
        with torch.no_grad():  # fill the basis' caches outside the forward-mode transform
            layer.basis(h[:1].detach())
        s = derivatives_elementwise(layer.basis, h)
    return tuple(torch.cat([bi.unsqueeze(-1), si], dim=-1) for bi, si in zip(b, s))


def bspline_derivatives(basis, h: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    """Dense values and first/second derivatives ``(N, in, n_basis)`` of a B-spline basis on
    a uniform grid, in closed form: ``d/du`` of the order-``k`` cardinal pieces is a
    difference of the order ``k-1`` pieces, applied twice. ``None`` for other bases."""
    if not (isinstance(basis, BSplineBasis) and basis.uniform):
        return None
    k = basis.k
    g0, inv_h = basis.spacing()
    t = (h - g0) * inv_h
    m = torch.floor(t).detach()
    u = t - m
    cols = [cardinal_columns(u, k)]
    cols.append(_differenced(cardinal_columns(u, k - 1)) if k >= 1 else [torch.zeros_like(u)])
    low = cardinal_columns(u, k - 2) if k >= 2 else None
    cols.append(
        _differenced(_differenced(low)) if low is not None else [torch.zeros_like(u)] * (k + 1)
    )
    # outside the knot span every basis function (and derivative) is zero
    inside = (m >= 0) & (m < basis.knots.shape[1] - 1)
    start = torch.where(inside, m, torch.zeros_like(m)).long() - k
    out = []
    for order, c in enumerate(cols):
        vals = torch.stack(c, dim=-1) * inv_h.unsqueeze(-1) ** order
        vals = torch.where(inside.unsqueeze(-1), vals, torch.zeros_like(vals))
        out.append(scatter_local(start, vals, basis.n_basis))
    return tuple(out)


def _differenced(low: list[torch.Tensor]) -> list[torch.Tensor]:
    """``d/du`` of the ``len(low) + 1`` cardinal pieces from the ``len(low)`` lower ones."""
    return [-low[0], *(low[r - 1] - low[r] for r in range(1, len(low))), low[-1]]


def _base_function(layer) -> Callable[[torch.Tensor], torch.Tensor]:
    name = layer.base_fun_name
    if name == "silu":
        return torch.nn.functional.silu
    if name == "identity":
        return lambda z: z
    return torch.zeros_like


def edge_sum(edge_values: Callable, jet: Jet) -> Jet:
    """A jet through ``sum_i phi_ij(h_i)`` given per-edge values ``(N, in, out)``."""
    f0, f1, f2 = derivatives_elementwise(edge_values, jet[0])
    return _edge_jet(f0.permute(1, 0, 2), f1.permute(1, 0, 2), f2.permute(1, 0, 2), jet)


def _affine(jet: Jet, scale: torch.Tensor, bias: torch.Tensor) -> Jet:
    h, h1, h2 = jet
    return scale * h + bias, scale * h1, scale * h2


def _nodes(model, li: int, jet: Jet) -> Jet:
    """Sum nodes pass through; a mult node's jet is the product rule over its subnodes."""
    n_sum, n_mult = model.width[li]
    if n_mult == 0:
        return jet
    h, h1, h2 = jet
    idx = model.mult_index(li, h.device)  # (n_mult, arity), padded with a column of ones
    p0 = torch.cat([h, torch.ones_like(h[:, :1])], 1)[:, idx]  # (N, M, A)
    p1 = torch.cat([h1, torch.zeros_like(h1[..., :1])], -1)[..., idx]  # (D, N, M, A)
    p2 = torch.cat([h2, torch.zeros_like(h2[..., :1])], -1)[..., idx]
    q0, q1, q2 = p0[..., 0], p1[..., 0], p2[..., 0]
    for a in range(1, idx.shape[1]):
        r0, r1, r2 = p0[..., a], p1[..., a], p2[..., a]
        q0, q1, q2 = q0 * r0, q1 * r0 + q0 * r1, q2 * r0 + 2 * q1 * r1 + q0 * r2
    if n_sum == 0:
        return q0, q1, q2
    return (
        torch.cat([h[:, :n_sum], q0], 1),
        torch.cat([h1[..., :n_sum], q1], -1),
        torch.cat([h2[..., :n_sum], q2], -1),
    )
