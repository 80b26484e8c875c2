"""Radial edges: Gaussian RBF (FastKAN) and B-splines plus RBF (BSRBF-KAN).

In: inputs ``(N, in)``. Out: ``(N, in, n_basis)`` basis values. Stage: runtime.

``RBF``: ``exp(-((x - c_j) / h_j)^2)`` for ``centers`` centres ``c_j`` per input. Domain: the
centres start equally spaced over ``[lo - margin s, hi + margin s]`` (``s = (hi - lo) /
(centers - 1)``; the outer ones keep edges flexible up to the domain's ends, as the extra
knots of B-splines do) with ``h_j = width * spacing``; a grid update moves the domain to the
data's range and the inner centres to the sample quantiles (blended with equal spacing, as
B-spline grid updates do; widths from the neighbours' distances), and grid extension places
more centres over the same span. Far outside the centres every value decays to 0.

``BSRBF``: the ``grid + k`` B-splines of order ``k`` on ``grid`` intervals over ``[lo, hi]``
plus, added to them one by one, ``grid + k`` Gaussians centred on the B-splines' supports
with the knot spacing as width (BSRBF-KAN spreads its Gaussians over ``[lo, hi]`` instead).
Grid updates move the knots, and with them the Gaussians, to the data.

>>> import torch
>>> basis = RBF(centers=5, margin=0.0, in_features=1, dtype=torch.float64)
>>> basis.centres.tolist()
[[-1.0, -0.5, 0.0, 0.5, 1.0]]
>>> basis(torch.tensor([[0.5]], dtype=torch.float64)).argmax().item()  # the centre at 0.5
3
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from ..basis import BSplineBasis, clip_local, extend_grid
from . import native
from .dense import DenseBasis, margin_positions, one, quantile_positions, sample_domain


def neighbour_widths(centres: torch.Tensor, width: float) -> torch.Tensor:
    """``(in, n)`` widths: ``width`` times the mean distance to the neighbouring centres."""
    if centres.shape[1] < 2:
        return torch.full_like(centres, width)
    gaps = centres.diff(dim=1).clamp(min=torch.finfo(centres.dtype).tiny)
    left = torch.cat([gaps[:, :1], gaps], dim=1)
    right = torch.cat([gaps, gaps[:, -1:]], dim=1)
    return width * (left + right) / 2


def gaussians(x: torch.Tensor, centres: torch.Tensor, inv_width: torch.Tensor) -> torch.Tensor:
    """``exp(-((x - c) / h)^2)`` as ``(N, in, n)``."""
    u = (x.unsqueeze(-1) - centres) * inv_width
    return torch.exp(-u * u)


def gaussian_fill(
    x: torch.Tensor, centres: torch.Tensor, inv_width: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Write ``exp(-u^2)``, ``u = (x - c) / h``, into ``cols`` ``(N, n, in)``; return
    ``-2 u / h`` ``(N, n, in)`` (the slopes divided by the values). ``centres``,
    ``inv_width``: ``(n, in)`` or broadcastable."""
    inv_width = inv_width.contiguous()
    shift = (-centres * inv_width).contiguous()
    u = torch.addcmul(shift, x.unsqueeze(1), inv_width)  # (N, n, in)
    torch.addcmul(torch.zeros((), dtype=x.dtype, device=x.device), u, u, value=-1, out=cols)
    cols.exp_()
    return u.mul_(-2 * inv_width)


class RBF(DenseBasis):
    """Gaussian radial basis functions with per-input centres (see the module)."""

    name = "rbf"
    size_name = "centers"
    gridded = True
    per_input = ("domain", "centres", "inv_width")
    centres: torch.Tensor
    inv_width: torch.Tensor

    def __init__(
        self,
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
        if int(centers) < 1 or not float(width) > 0 or float(margin) < 0:
            raise ConfigError(
                f"RBF needs centers >= 1, width > 0, margin >= 0; got {centers}, {width}, {margin}"
            )
        self.centers, self.width, self.margin = int(centers), float(width), float(margin)
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return self.centers

    def hparams(self) -> dict[str, Any]:
        return {"centers": self.centers, "width": self.width, "margin": self.margin,
                "domain": list(self.domain_range)}  # fmt: skip

    def _place(self) -> None:
        self._set_centres(margin_positions(self.domain, self.centers, self.margin))

    def _set_centres(self, centres: torch.Tensor) -> None:
        if self.centers == 1:
            widths = (self.domain[:, 1:] - self.domain[:, :1]) * self.width / 2
        else:
            widths = neighbour_widths(centres, self.width)
        self.register_buffer("centres", centres.contiguous())
        self.register_buffer("inv_width", (1.0 / widths).contiguous())

    def values(self, x: torch.Tensor) -> torch.Tensor:
        return gaussians(x, self.centres, self.inv_width)

    def update_grid(self, x: torch.Tensor, grid_eps: float = 0.02) -> None:
        """Domain to the samples' range; the centres inside it to the sample quantiles of
        ``x`` (blended with equal spacing), the ``margin`` outer ones spaced like their
        neighbours beyond each end."""
        lo, hi = sample_domain(x)
        self.domain = torch.stack([lo, hi], 1).to(self.domain)
        outer = min(int(round(self.margin)), (self.centers - 2) // 2)
        inner = self.centers - 2 * outer
        if inner < 2:
            self._place()
            return
        mid = quantile_positions(x, inner, grid_eps).to(self.domain)
        steps = torch.arange(1, outer + 1, dtype=mid.dtype, device=mid.device)
        left = mid[:, :1] - (mid[:, 1:2] - mid[:, :1]) * steps.flip(0)
        right = mid[:, -1:] + (mid[:, -1:] - mid[:, -2:-1]) * steps
        self._set_centres(torch.cat([left, mid, right], dim=1))

    def native_args(self, x: torch.Tensor) -> tuple | None:
        a = self.inv_width.t().contiguous().to(x.dtype)
        b = (-self.centres * self.inv_width).t().contiguous().to(x.dtype)
        return native.GAUSS, a, b, one(x), one(x)

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Values ``exp(-u^2)`` and slopes ``-2 u exp(-u^2) / h``."""
        return (gaussian_fill(x, self.centres.t(), self.inv_width.t(), cols),)

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        return torch.mul(gcols, cols).mul_(state[0]).sum(1)


class BSRBF(DenseBasis):
    """B-splines of order ``k`` on ``grid`` intervals plus Gaussians (see the module)."""

    name = "bsrbf"
    size_name = "grid"
    gridded = True
    per_input = ("domain",)
    spline: BSplineBasis

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
            raise ConfigError(f"BSRBF needs grid >= 1 and k >= 0, got grid={grid}, k={k}")
        self.grid, self.k = int(grid), int(k)
        if self.in_features is not None:
            self.spline = BSplineBasis(
                self.in_features, self.grid, self.k, self.domain_range,
                dtype=self._dtype, device=self._device,
            )  # fmt: skip
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return self.grid + self.k

    def hparams(self) -> dict[str, Any]:
        return {"grid": self.grid, "k": self.k, "domain": list(self.domain_range)}

    def _place(self) -> None:
        lo, hi = self.domain[:, :1], self.domain[:, 1:]
        steps = torch.linspace(0, 1, self.grid + 1, dtype=self.domain.dtype, device=lo.device)
        self.spline.set_grid(extend_grid(lo + (hi - lo) * steps, self.k))

    def gaussian_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Centres ``(in, n_basis)``, those of the B-splines' supports, and ``1 / h``
        ``(in, 1)`` with ``h`` the mean knot spacing."""
        t, k, nb = self.spline.knots, self.k, self.n_basis
        centres = (t[:, :nb] + t[:, k + 1 : k + 1 + nb]) / 2
        return centres, (t.shape[1] - 1) / (t[:, -1:] - t[:, :1])

    def values(self, x: torch.Tensor) -> torch.Tensor:
        centres, inv_h = self.gaussian_state()
        return self.spline(x) + gaussians(x, centres, inv_h)

    def native_args(self, x: torch.Tensor) -> tuple | None:
        """The Gaussians as for :class:`RBF` plus the uniform knots (first, 1 / spacing);
        ``None`` on a non-uniform grid (after a grid update: the torch path)."""
        if not self.spline.uniform:
            return None
        centres, inv_h = self.gaussian_state()
        a = inv_h.expand_as(centres).t().contiguous().to(x.dtype)
        b = (-centres * inv_h).t().contiguous().to(x.dtype)
        g0, inv_s = self.spline.spacing()
        r = torch.cat([g0, inv_s]).contiguous().to(x.dtype)
        c = torch.tensor([0.0, float(self.k)], dtype=x.dtype, device=x.device)
        return native.BSRBF, a, b, r, c

    def _after_select(self, old: DenseBasis, rows: torch.Tensor) -> None:
        assert isinstance(old, BSRBF)
        self.spline.set_grid(old.spline.knots[rows])

    def update_grid(self, x: torch.Tensor, grid_eps: float = 0.02) -> None:
        """B-spline knots to the sample quantiles of ``x``, Gaussians over its range."""
        lo, hi = sample_domain(x)
        self.domain = torch.stack([lo, hi], 1).to(self.domain)
        knots = quantile_positions(x, self.grid + 1, grid_eps).to(self.domain)
        self.spline.set_grid(extend_grid(knots, self.k))

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Gaussians written first, then the local B-splines added (values and slopes)."""
        centres, inv_h = self.gaussian_state()
        slopes = gaussian_fill(x, centres.t(), inv_h.t(), cols).mul_(cols)
        start, vals, dvals = self.spline.local(x, derivative=True)
        assert dvals is not None
        idx, vals = clip_local(start, vals, self.n_basis)
        dvals = torch.where(vals != 0, dvals, torch.zeros_like(dvals))
        idx = idx.transpose(1, 2)
        cols.scatter_add_(1, idx, vals.transpose(1, 2))
        slopes.scatter_add_(1, idx, dvals.transpose(1, 2))
        return (slopes,)

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        return torch.mul(gcols, state[0]).sum(1)
