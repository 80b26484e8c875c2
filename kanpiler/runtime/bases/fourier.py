"""Fourier edges (FourierKAN): ``phi(x) = a_0 + sum_k a_k cos(k w x') + b_k sin(k w x')``.

In: inputs ``(N, in)``. Out: ``(N, in, 2 * frequencies + 1)``: the constant, then the cosines,
then the sines of ``k = 1 .. frequencies``. Stage: runtime (a
:class:`~kanpiler.runtime.bases.dense.DenseBasis`).

Domain: every edge is periodic with period ``period`` (default ``2 * (hi - lo)``: twice the
domain, so a function on ``[lo, hi]`` need not take equal values at the two ends), with
``w = 2 pi / period`` and ``x' = x - (lo + hi) / 2``. There is no grid and nothing is out of
range: inputs beyond the domain wrap around. Grid extension adds frequencies: the old
series is kept, so the refit is exact.

>>> import math, torch
>>> basis = Fourier(frequencies=2, period=2 * math.pi, in_features=1, dtype=torch.float64)
>>> x = torch.tensor([[0.3]], dtype=torch.float64)
>>> bool(torch.allclose(basis(x), basis(x + 2 * math.pi)))  # periodic
True
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from . import native
from .dense import DenseBasis, one


class Fourier(DenseBasis):
    """Constant, ``cos(k w x')`` and ``sin(k w x')`` for ``k = 1 .. frequencies``."""

    name = "fourier"
    size_name = "frequencies"
    init_scale = 0.1

    def __init__(
        self,
        frequencies: int = 4,
        period: float | None = None,
        domain: tuple[float, float] = (-1.0, 1.0),
        *,
        in_features: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, domain, dtype, device)
        if int(frequencies) < 1:
            raise ConfigError(f"Fourier needs frequencies >= 1, got {frequencies}")
        if period is not None and not float(period) > 0:
            raise ConfigError(f"Fourier period must be > 0, got {period}")
        self.frequencies = int(frequencies)
        self.period = None if period is None else float(period)
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return 2 * self.frequencies + 1

    def hparams(self) -> dict[str, Any]:
        return {
            "frequencies": self.frequencies,
            "period": self.period,
            "domain": list(self.domain_range),
        }

    def domain_note(self) -> str:
        return (
            "the edges are periodic (period = 2 * (hi - lo) unless given), nothing is out of range"
        )

    def angular(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per input: angular frequency ``w`` and centre of the domain, ``(in,)`` each."""
        lo, hi = self.domain[:, 0], self.domain[:, 1]
        period = 2 * (hi - lo) if self.period is None else torch.full_like(lo, self.period)
        return 2 * torch.pi / period, (lo + hi) / 2

    def values(self, x: torch.Tensor) -> torch.Tensor:
        omega, centre = self.angular()
        k = torch.arange(1, self.frequencies + 1, dtype=x.dtype, device=x.device)
        theta = ((x - centre) * omega).unsqueeze(-1) * k  # (N, in, K)
        return torch.cat([torch.ones_like(theta[..., :1]), theta.cos(), theta.sin()], dim=-1)

    def native_args(self, x: torch.Tensor) -> tuple | None:
        omega, centre = self.angular()
        return (
            native.FOURIER,
            omega.contiguous().to(x.dtype),
            centre.contiguous().to(x.dtype),
            one(x),
            one(x),
        )

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """cos of ``k theta`` for ``k = 0 .. K`` (the constant is ``k = 0``), then sin; the
        slopes are the same columns swapped, so nothing more is kept."""
        omega, centre = self.angular()
        K = self.frequencies
        ks = torch.arange(K + 1, dtype=x.dtype, device=x.device).unsqueeze(1)
        angles = ((x - centre) * omega).unsqueeze(1) * ks  # (N, K+1, in)
        torch.cos(angles, out=cols[:, : K + 1])
        torch.sin(angles[:, 1:], out=cols[:, K + 1 :])
        return ()

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        """``d cos(k t)/dt = -k sin(k t)``, ``d sin(k t)/dt = k cos(k t)``, times ``w``."""
        K = self.frequencies
        omega, _ = self.angular()
        ks = torch.arange(1, K + 1, dtype=x.dtype, device=x.device).unsqueeze(1)
        terms = torch.mul(gcols[:, K + 1 :], cols[:, 1 : K + 1])
        terms.sub_(gcols[:, 1 : K + 1] * cols[:, K + 1 :]).mul_(ks)
        return terms.sum(1).mul_(omega)
