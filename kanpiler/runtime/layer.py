"""The numeric KAN layer: every edge is ``w_b * silu(x) + w_s * spline(x)``.

In: ``x`` of shape ``(N, in)``. Out: ``(N, out)``, the sum over inputs of the edge values.
Stage: runtime. The whole layer is one matrix product ``[silu(x) | basis(x)] @ W`` of shapes
``(N, in*(n_basis+1)) @ (in*(n_basis+1), out)``; with a B-spline basis, the fused autograd
function of :mod:`.fused` computes the sparse basis, the product and a hand-written backward.

>>> import torch
>>> layer = KANLayer(3, 2, grid=5, k=3, seed=0)
>>> layer(torch.zeros(4, 3)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from . import fused
from .bases import basis_parameters, make_basis
from .bases.fused import FusedDense, dense_weight
from .bases.fused import fusable as dense_fusable
from .basis import Basis, BSplineBasis, snapshot, unchanged
from .fused import features, interleave_weight, reference_forward

__all__ = [
    "KANLayer", "BASE_FUNCTIONS", "features", "interleave_weight", "layer_basis",
    "reference_forward",
]  # fmt: skip

BASE_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": torch.nn.functional.silu,
    "identity": lambda x: x,
    "zero": torch.zeros_like,
}


def layer_basis(
    basis: str | Basis | None,
    n_in: int,
    grid_args: tuple[int, int, tuple[float, float]],
    dtype: torch.dtype,
    device: torch.device | str | None,
    options: dict[str, Any],
) -> Basis:
    """A layer's basis: B-splines from ``grid``/``k`` (``None`` or ``"bspline"``), or a named
    basis (its ``grid``, ``k`` and ``domain`` default to the layer's ``grid``, ``k`` and
    ``grid_range`` where the family has them) or an instance, bound to the layer's inputs."""
    grid, k, grid_range = grid_args
    if basis is None or basis == "bspline":
        if options:
            raise ConfigError(f"B-spline layers take grid and k, not {sorted(options)}")
        return BSplineBasis(n_in, grid, k, grid_range, dtype=dtype, device=device)
    if isinstance(basis, str):
        defaults = {"grid": grid, "k": k, "domain": tuple(grid_range)}
        accepted = basis_parameters(basis)
        options = {**{n: v for n, v in defaults.items() if n in accepted}, **options}
    return make_basis(basis, n_in, dtype, device, **options)


class KANLayer(nn.Module):
    """A layer of ``in_features * out_features`` learnable activation edges.

    Parameters (per edge, shaped ``(in, out)``): ``scale_base`` (``w_b``), ``scale_sp``
    (``w_s``), the buffer ``mask`` (0/1); ``coef`` is ``(in, out, n_basis)``. The basis
    (``self.basis``, a :class:`Basis`) owns the per-input knot grid.
    """

    mask: torch.Tensor
    basis: Basis

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
        basis: str | Basis | None = None,
        seed: int = 0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        **basis_options: Any,
    ) -> None:
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ShapeError(f"KANLayer sizes must be >= 0, got ({in_features}, {out_features})")
        if base_fun not in BASE_FUNCTIONS:
            raise ShapeError(f"unknown base_fun {base_fun!r}; known: {', '.join(BASE_FUNCTIONS)}")
        self.in_features, self.out_features = in_features, out_features
        self.base_fun_name = base_fun
        self.grid_eps = float(grid_eps)
        self.basis = layer_basis(
            basis, in_features, (grid, k, grid_range), dtype, device, basis_options
        )
        gen = generator or torch.Generator().manual_seed(seed)
        nb, shape = self.basis.n_basis, (in_features, out_features)
        noise = (torch.rand(*shape, nb, generator=gen, dtype=torch.float64) - 0.5) * noise_scale
        base = scale_base_mu + scale_base_sigma * (
            2 * torch.rand(*shape, generator=gen, dtype=torch.float64) - 1
        )
        norm = 1.0 / max(in_features, 1) ** 0.5
        opts: dict[str, Any] = {"dtype": dtype, "device": device}
        noise = noise * getattr(self.basis, "init_scale", 1.0)  # smaller for global bases
        start = getattr(self.basis, "init_coef", 0.0)
        self.coef = nn.Parameter((start + noise / max(grid, 1)).to(**opts))
        self.scale_base = nn.Parameter((base * norm).to(**opts))
        self.scale_sp = nn.Parameter(torch.full(shape, scale_sp * norm, **opts))
        self.register_buffer("mask", torch.ones(shape, **opts))
        self._active_key: tuple | None = None  # ``active`` is cached per mask version
        self._active_value = True

    # --- properties -------------------------------------------------------------------------

    @property
    def knots(self) -> torch.Tensor:
        """The extended knots ``(in, G + 2k + 1)`` of a B-spline basis (``model.grid`` is
        the number of intervals ``G``)."""
        return self.basis.knots

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

    def dense_weight(self) -> torch.Tensor:
        """The rows in basis-major order, for a dense basis (see
        :func:`~kanpiler.runtime.bases.fused.dense_weight`)."""
        coef = self.coef * (self.scale_sp * self.mask).unsqueeze(-1)
        return dense_weight(self.scale_base * self.mask, coef)

    @property
    def active(self) -> bool:
        """Whether any edge is on (cached per mask version: no device sync per forward)."""
        if not unchanged(self._active_key, self.mask):
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
            if self.mask.requires_grad:  # a trainable mask: autograd builds the weight
                return fused.FusedSpline.apply(x, self.block_weight(), self.basis)
            params = (self.coef, self.scale_base, self.scale_sp, self.mask)
            return fused.FusedLayer.apply(x, *params, self.basis)
        if self.base_fun_name == "silu" and dense_fusable(self.basis):
            return FusedDense.apply(x, self.dense_weight(), self.basis)
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
