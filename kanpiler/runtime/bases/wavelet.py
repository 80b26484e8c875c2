"""Wavelet edges (Wav-KAN): a frame of translated wavelets ``psi((x - t_j) / s)`` per input.

In: inputs ``(N, in)``. Out: ``(N, in, centers)``. Stage: runtime (a
:class:`~kanpiler.runtime.bases.dense.DenseBasis`).

Mother wavelets (``kind``), with ``u = (x - t_j) / s``:

* ``"mexican_hat"``: ``2 / (sqrt(3) pi^(1/4)) (1 - u^2) exp(-u^2 / 2)``;
* ``"morlet"``: ``cos(omega0 u) exp(-u^2 / 2)`` with ``omega0 = 5``;
* ``"dog"`` (derivative of Gaussian): ``-u exp(-u^2 / 2)``.

Wav-KAN gives every edge one wavelet with its own learned translation and scale; here every
input has ``centers`` translations ``t_j`` equally spaced over ``[lo - margin d, hi + margin d]``
(``d = (hi - lo) / (centers - 1)``: the outer ones keep edges flexible up to the ends) and the
scale ``s = width * spacing`` (``2 * width * spacing`` for Morlet, whose oscillation is
faster), so each edge is a learned combination, linear in its coefficients like every other
basis. Far outside the translations every value decays to 0. A grid update moves the
translations over the data's range; grid extension adds translations.

>>> import torch
>>> basis = Wavelet("dog", centers=3, in_features=1, dtype=torch.float64)
>>> basis(torch.tensor([[0.0]], dtype=torch.float64)).squeeze()[1].item()  # odd wavelet at 0
-0.0
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...errors import ConfigError
from . import native
from .dense import DenseBasis, margin_positions, one, sample_domain

MEXICAN_HAT_NORM = 2 / (math.sqrt(3) * math.pi**0.25)
MORLET_OMEGA = 5.0


def mexican_hat(u: torch.Tensor) -> torch.Tensor:
    u2 = u * u
    return MEXICAN_HAT_NORM * (1 - u2) * torch.exp(-0.5 * u2)


def morlet(u: torch.Tensor) -> torch.Tensor:
    return torch.cos(MORLET_OMEGA * u) * torch.exp(-0.5 * u * u)


def dog(u: torch.Tensor) -> torch.Tensor:
    return -u * torch.exp(-0.5 * u * u)


WAVELETS = {"mexican_hat": mexican_hat, "morlet": morlet, "dog": dog}
SCALE = {"mexican_hat": 1.0, "morlet": 2.0, "dog": 1.0}


class Wavelet(DenseBasis):
    """Translates of one mother wavelet per input (see the module)."""

    name = "wavelet"
    size_name = "centers"
    gridded = True

    def __init__(
        self,
        kind: str = "mexican_hat",
        centers: int = 8,
        width: float = 1.0,
        margin: float = 2.0,
        domain: tuple[float, float] = (-1.0, 1.0),
        *,
        in_features: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, domain, dtype, device)
        if kind not in WAVELETS:
            raise ConfigError(f"unknown wavelet {kind!r}; known: {', '.join(WAVELETS)}")
        if int(centers) < 1 or not float(width) > 0 or float(margin) < 0:
            raise ConfigError(
                f"Wavelet needs centers >= 1, width > 0, margin >= 0; got {centers}, {width}, "
                f"{margin}"
            )
        self.kind, self.centers, self.width = kind, int(centers), float(width)
        self.margin = float(margin)
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return self.centers

    def hparams(self) -> dict[str, Any]:
        return {"kind": self.kind, "centers": self.centers, "width": self.width,
                "margin": self.margin, "domain": list(self.domain_range)}  # fmt: skip

    def translations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(in, centers)`` translations and ``1 / s`` as ``(in, 1)``."""
        t = margin_positions(self.domain, self.centers, self.margin)
        if self.centers > 1:
            spacing = t[:, 1:2] - t[:, :1]
        else:
            spacing = self.domain[:, 1:] - self.domain[:, :1]
        return t, 1.0 / (SCALE[self.kind] * self.width * spacing)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        t, inv_s = self.translations()
        return WAVELETS[self.kind]((x.unsqueeze(-1) - t) * inv_s)

    def native_args(self, x: torch.Tensor) -> tuple | None:
        t, inv_s = self.translations()
        a = inv_s.t().expand(self.centers, -1).contiguous().to(x.dtype)
        b = (-t.t() * inv_s.t()).contiguous().to(x.dtype)
        kind, c = {
            "mexican_hat": (native.MEXICAN_HAT, MEXICAN_HAT_NORM),
            "morlet": (native.MORLET, MORLET_OMEGA),
            "dog": (native.DOG, 0.0),
        }[self.kind]
        return kind, a, b, one(x), one(x, c)

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Values and slopes from ``u`` and the Gaussian envelope ``e = exp(-u^2 / 2)``."""
        t, inv_s = self.translations()
        inv = inv_s.t().contiguous()
        u = torch.addcmul((-t.t() * inv).contiguous(), x.unsqueeze(1), inv)  # (N, n, in)
        u2 = u * u
        env = torch.mul(u2, -0.5).exp_()
        if self.kind == "mexican_hat":  # C (1 - u^2) e;  d/du = C u (u^2 - 3) e
            torch.mul(u2, -MEXICAN_HAT_NORM, out=cols).add_(MEXICAN_HAT_NORM).mul_(env)
            slope = u2.sub_(3).mul_(u).mul_(env).mul_(MEXICAN_HAT_NORM)
        elif self.kind == "dog":  # -u e;  d/du = (u^2 - 1) e
            torch.mul(u, env, out=cols).neg_()
            slope = u2.sub_(1).mul_(env)
        else:  # cos(w u) e;  d/du = -(w sin(w u) + u cos(w u)) e
            wu = u * MORLET_OMEGA
            cos = torch.cos(wu)
            torch.mul(cos, env, out=cols)
            slope = torch.sin(wu).mul_(MORLET_OMEGA).addcmul_(u, cos).mul_(env).neg_()
        return (slope.mul_(inv),)

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        return torch.mul(gcols, state[0]).sum(1)

    def update_grid(self, x: torch.Tensor, grid_eps: float = 0.02) -> None:
        """Translations equally spaced over the range of ``x``."""
        lo, hi = sample_domain(x)
        self.set_domain(lo, hi)
