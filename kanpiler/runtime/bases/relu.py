"""ReLU-KAN edges: squared products of two ReLUs, ``(relu(x - s_j) relu(e_j - x))^2 r_j``.

In: inputs ``(N, in)``. Out: ``(N, in, grid + k)``. Stage: runtime (a
:class:`~kanpiler.runtime.bases.dense.DenseBasis`).

Bump ``j`` is supported on ``[s_j, e_j]`` with ``s_j = lo + (j - k) h``, ``e_j = s_j + (k+1) h``
and ``h = (hi - lo) / grid``, as in ReLU-KAN; ``r_j = 16 / (e_j - s_j)^4`` makes its peak 1.
The bumps cover ``[lo - k h, hi + k h]`` like B-splines of order ``k``; outside it every
value is 0. Each bump is a piecewise quartic, continuously differentiable, with a second
derivative everywhere except at ``s_j``, ``e_j`` and the midpoints. A grid update moves the
grid over the data's range; grid extension refines ``grid``.

>>> import torch
>>> basis = ReLUKAN(grid=4, k=1, in_features=1, dtype=torch.float64)
>>> basis(torch.tensor([[0.0]], dtype=torch.float64)).squeeze().tolist()  # peak of bump 2
[0.0, 0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from . import native
from .dense import DenseBasis, one, sample_domain


class ReLUKAN(DenseBasis):
    """ReLU-KAN's squared ReLU-product bumps on a uniform grid per input (see the module)."""

    name = "relu_kan"
    size_name = "grid"
    gridded = True

    def __init__(
        self,
        grid: int = 5,
        k: int = 3,
        domain: tuple[float, float] = (-1.0, 1.0),
        *,
        in_features: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, domain, dtype, device)
        if int(grid) < 1 or int(k) < 0:
            raise ConfigError(f"ReLUKAN needs grid >= 1 and k >= 0, got grid={grid}, k={k}")
        self.grid, self.k = int(grid), int(k)
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return self.grid + self.k

    def hparams(self) -> dict[str, Any]:
        return {"grid": self.grid, "k": self.k, "domain": list(self.domain_range)}

    def supports(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Starts ``s``, ends ``e`` (``(in, grid + k)``) and the scale ``sqrt(r)``."""
        lo, hi = self.domain[:, :1], self.domain[:, 1:]
        h = (hi - lo) / self.grid
        j = torch.arange(self.n_basis, dtype=lo.dtype, device=lo.device) - self.k
        start = lo + j * h
        return start, start + (self.k + 1) * h, 4 / ((self.k + 1) * h) ** 2

    def span(self) -> torch.Tensor:
        return self.domain

    def values(self, x: torch.Tensor) -> torch.Tensor:
        start, end, root_r = self.supports()
        xe = x.unsqueeze(-1)
        bump = torch.relu(xe - start) * torch.relu(end - xe) * root_r
        return bump * bump

    def native_args(self, x: torch.Tensor) -> tuple | None:
        start, end, root_r = self.supports()
        r = (root_r**2).reshape(-1).contiguous().to(x.dtype)
        return (
            native.RELU,
            start.t().contiguous().to(x.dtype),
            end.t().contiguous().to(x.dtype),
            r,
            one(x),
        )

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Values ``(a b sqrt(r))^2``; backward needs ``a``, ``b`` and ``p = a b``."""
        start, end, root_r = self.supports()
        xe = x.unsqueeze(1)
        a = torch.sub(xe, start.t().contiguous()).clamp_(min=0)
        b = torch.sub(end.t().contiguous(), xe).clamp_(min=0)
        p = torch.mul(a, b)
        torch.mul(p, p, out=cols).mul_(root_r.t() ** 2)
        return a, b, p

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        """``d/dx (a b)^2 r = 2 r a b (b - a)`` (``r`` is per input)."""
        a, b, p = state
        _, _, root_r = self.supports()
        terms = torch.sub(b, a).mul_(p).mul_(gcols)
        return terms.sum(1).mul_(2 * root_r.squeeze(1) ** 2)

    def update_grid(self, x: torch.Tensor, grid_eps: float = 0.02) -> None:
        """The grid spread equally over the range of ``x``."""
        lo, hi = sample_domain(x)
        self.set_domain(lo, hi)
