"""Chebyshev polynomial edges (ChebyKAN): ``phi(x) = sum_n c_n T_n(t(x))``.

In: inputs ``(N, in)``. Out: ``T_0 .. T_degree`` at ``t(x)``, ``(N, in, degree + 1)``.
Stage: runtime (a :class:`~kanpiler.runtime.bases.dense.DenseBasis`).

Domain: Chebyshev polynomials live on ``[-1, 1]``. With ``squash="tanh"`` (the default, as
ChebyKAN) ``t = tanh(s)`` where ``s`` maps the domain ``[lo, hi]`` affinely onto ``[-1, 1]``:
every real input is defined and the edge tends to a constant far outside. With
``squash="scale"``, ``t = s`` clamped to ``[-1, 1]``: polynomials in ``x`` on the domain,
constant beyond it. The values come from the three-term recurrence
``T_{n+1} = 2 t T_n - T_{n-1}`` (no ``acos``, whose derivative is infinite at the ends).
Grid extension raises the degree: the old polynomials are kept, so the refit is exact.

>>> import torch
>>> basis = Chebyshev(degree=3, squash="scale", in_features=1, dtype=torch.float64)
>>> basis(torch.tensor([[0.5]], dtype=torch.float64)).squeeze().tolist()  # 1, t, 2t^2-1, 4t^3-3t
[1.0, 0.5, -0.5, -1.0]
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from . import native
from .dense import DenseBasis, affine, one

SQUASHES = ("tanh", "scale")


class Chebyshev(DenseBasis):
    """Chebyshev polynomials ``T_0 .. T_degree`` of the squashed input (see the module)."""

    name = "chebyshev"
    size_name = "degree"
    init_scale = 0.1

    def __init__(
        self,
        degree: int = 8,
        squash: str = "tanh",
        domain: tuple[float, float] = (-1.0, 1.0),
        *,
        in_features: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, domain, dtype, device)
        if int(degree) < 0:
            raise ConfigError(f"Chebyshev degree must be >= 0, got {degree}")
        if squash not in SQUASHES:
            raise ConfigError(f"Chebyshev squash must be one of {SQUASHES}, got {squash!r}")
        self.degree, self.squash = int(degree), squash
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return self.degree + 1

    def hparams(self) -> dict[str, Any]:
        return {"degree": self.degree, "squash": self.squash, "domain": list(self.domain_range)}

    def domain_note(self) -> str:
        if self.squash == "tanh":
            return "inputs are squashed onto [-1, 1] by tanh, so every value is in range"
        return "inputs are scaled from the domain onto [-1, 1] (use set_domain to move it)"

    def position(self, x: torch.Tensor) -> torch.Tensor:
        """``t(x)`` in ``[-1, 1]``."""
        s = affine(x, self.domain)
        return torch.tanh(s) if self.squash == "tanh" else s.clamp(-1.0, 1.0)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        t = self.position(x)
        cols = [torch.ones_like(t), t]
        two_t = 2 * t
        for _ in range(2, self.degree + 1):
            cols.append(two_t * cols[-1] - cols[-2])
        return torch.stack(cols[: self.degree + 1], dim=-1)

    def native_args(self, x: torch.Tensor) -> tuple | None:
        lo, hi = self.domain[:, 0], self.domain[:, 1]
        a = (2 / (hi - lo)).contiguous().to(x.dtype)
        b = (-(lo + hi) / (hi - lo)).contiguous().to(x.dtype)
        kind = native.CHEB_TANH if self.squash == "tanh" else native.CHEB_SCALE
        return kind, a, b, one(x), one(x)

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``T_j(t) = cos(j theta)`` with ``t = cos(theta)``, all ``j`` in one pass."""
        theta = torch.acos(self.position(x))
        js = torch.arange(self.n_basis, dtype=x.dtype, device=x.device).unsqueeze(1)
        angles = theta.unsqueeze(1) * js  # (N, nb, in)
        torch.cos(angles, out=cols)
        return angles, theta

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        """``dT_j/dx = j sin(j theta) / sin(theta) * dt/dx``; with tanh, ``dt/ds = sin^2``, so
        ``j sin(j theta) sin(theta)`` (no division); with scaling, the ratio's limit
        ``j cos(j theta) / cos(theta)`` where ``sin(theta)`` vanishes (the domain's ends)."""
        angles, theta = state
        js = torch.arange(self.n_basis, dtype=x.dtype, device=x.device).unsqueeze(1)
        scale = 2 / (self.domain[:, 1] - self.domain[:, 0])
        sin = torch.sin(theta)
        if self.squash == "tanh":
            terms = torch.sin(angles).mul_(gcols).mul_(js)
            return terms.sum(1).mul_(sin).mul_(scale)
        tiny = sin.abs() < 1e-6
        safe = torch.where(tiny, torch.ones_like(sin), sin).unsqueeze(1)
        ratio = torch.where(
            tiny.unsqueeze(1),
            js * torch.cos(angles) / torch.cos(theta).unsqueeze(1),
            torch.sin(angles) / safe,
        )
        inside = (affine(x, self.domain).abs() <= 1).to(x.dtype)
        return ratio.mul_(gcols).mul_(js).sum(1).mul_(inside * scale)
