"""The shared frame of the non-spline edge bases: hyper-parameters, per-input domains, binding.

In: a basis family's hyper-parameters (and, once bound to a layer, its number of inputs).
Out: a :class:`~kanpiler.runtime.basis.Basis` whose ``forward(x)`` gives ``(N, in, n_basis)``.
Stage: runtime. ``DenseBasis`` holds what every family shares: an unbound instance is a
specification (``RBF(centers=8)``) that a layer *binds* to its inputs, dtype and device; each
input has a ``domain`` ``[lo, hi]`` that positions the basis functions (centres, knots,
period); ``select`` keeps some inputs (pruning), ``refined`` grows the size hyper-parameter
(grid extension), ``update_grid`` moves positions to the data where that has a meaning.

>>> import torch
>>> from kanpiler.runtime.bases import RBF
>>> spec = RBF(centers=4)
>>> spec.bound
False
>>> basis = spec.bind(2, torch.float64)
>>> basis(torch.zeros(3, 2, dtype=torch.float64)).shape
torch.Size([3, 2, 4])
>>> basis.hparams()
{'centers': 4, 'width': 1.0, 'margin': 2.0, 'domain': [-1.0, 1.0]}
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...errors import ConfigError, ShapeError, UnsupportedError
from ..basis import Basis


class DenseBasis(Basis):
    """A basis whose values are computed densely, ``(N, in, n_basis)``, from closed forms.

    Subclasses set ``name`` (the registry key), ``size_name`` (the hyper-parameter that grid
    extension grows, e.g. ``"degree"``), ``gridded`` (whether ``update_grid`` has a meaning),
    ``per_input`` (names of buffers/parameters whose first axis is the input) and implement
    ``n_basis``, ``hparams`` and ``values``. They call :meth:`_setup` at the end of
    ``__init__`` (after reading their hyper-parameters) and create per-input state in
    :meth:`_place`, from ``self.domain``.
    """

    name: ClassVar[str] = ""
    size_name: ClassVar[str] = ""
    gridded: ClassVar[bool] = False
    #: whether each edge can take a curve of its own (False: shared functions, as rational)
    free_curves: ClassVar[bool] = True
    #: factor on the layer's initial coefficient noise: global bases (every function nonzero
    #: everywhere) add up all their noise at each point, so they start quieter
    init_scale: ClassVar[float] = 1.0
    #: the layer's starting coefficient before its noise: 0 (the edge starts as its base
    #: function); a one-function basis (rational) starts at 1, its function switched on
    init_coef: ClassVar[float] = 0.0
    per_input: ClassVar[tuple[str, ...]] = ("domain",)
    domain: torch.Tensor

    def __init__(
        self,
        in_features: int | None,
        domain: tuple[float, float],
        dtype: torch.dtype | None,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        lo, hi = (float(v) for v in domain)
        if not hi > lo:
            raise ConfigError(f"{type(self).__name__}: domain needs lo < hi, got {domain!r}")
        self.domain_range = (lo, hi)
        self.in_features = None if in_features is None else int(in_features)
        self._dtype = dtype or torch.float32
        self._device = device

    def _setup(self) -> None:
        """Create the per-input state (only for a bound basis)."""
        if self.in_features is None:
            return
        if self.in_features < 0:
            raise ConfigError(f"{type(self).__name__}: in_features must be >= 0")
        lo, hi = self.domain_range
        dom = torch.tensor([lo, hi], dtype=self._dtype, device=self._device)
        self.register_buffer("domain", dom.expand(self.in_features, 2).contiguous())
        self._place()

    # --- what subclasses provide ---------------------------------------------------------

    def hparams(self) -> dict[str, Any]:
        """The JSON-serialisable constructor arguments (no ``in_features``/dtype/device)."""
        raise NotImplementedError

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, n_basis)`` differentiable basis values of a bound basis."""
        raise NotImplementedError

    def fill(self, x: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Write the values into ``cols`` (``(N, n_basis, in)``, a strided view of the fused
        layer's features) without autograd; return the tensors :meth:`grad_input` needs.
        Optional: a family without it takes the plain autograd path."""
        raise NotImplementedError

    def grad_input(
        self, x: torch.Tensor, cols: torch.Tensor, gcols: torch.Tensor, state: Any
    ) -> torch.Tensor:
        """``(N, in)``: ``sum_j gcols[:, j] * dB_j/dx`` from the ``state`` of :meth:`fill`."""
        return contract(gcols, state[0])

    def native_args(self, x: torch.Tensor) -> tuple | None:
        """``(kind, a, b, r, c)`` for :func:`.native.dense_kernel` (contiguous tensors of
        ``x``'s dtype), or ``None``: this family has no native kernel."""
        return None

    def _place(self) -> None:
        """(Re)compute the per-input positions (centres, knots, frequencies) from ``domain``."""

    # --- binding --------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        """Whether the basis has its per-input state (a layer has bound it)."""
        return self.in_features is not None

    def bind(
        self,
        in_features: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> DenseBasis:
        """A fresh basis with these hyper-parameters for ``in_features`` inputs."""
        return type(self)(**self.hparams(), in_features=in_features, dtype=dtype, device=device)

    def spec(self) -> tuple[str, dict[str, Any]]:
        """``(name, hparams)``: what a checkpoint records to rebuild the basis."""
        return self.name, self.hparams()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_features is None:
            raise ShapeError(
                f"{type(self).__name__} is not bound to a layer; pass it to KANLayer/MultKAN "
                "or call .bind(in_features)"
            )
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ShapeError(
                f"{type(self).__name__} expects input (N, {self.in_features}), got {tuple(x.shape)}"
            )
        return self.values(x)

    # --- domains, pruning, grids ----------------------------------------------------------

    @property
    def size(self) -> int:
        """The value of the size hyper-parameter (degree, frequencies, centres, intervals)."""
        return int(self.hparams()[self.size_name])

    def span(self) -> torch.Tensor:
        """``(in, 2)``: the interval per input where the basis is meant to be used (plots,
        sampling, refits)."""
        return self.domain

    def set_domain(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Move every input's domain to ``[lo, hi]`` (``(in,)`` each) and re-place the basis."""
        wide = hi - lo > 0
        if not bool(wide.all()):
            raise ShapeError(f"{type(self).__name__}.set_domain: every hi must exceed lo")
        self.domain = torch.stack([lo, hi], dim=1).to(self.domain).contiguous()
        self._place()

    def select(self, rows: torch.Tensor) -> DenseBasis:
        """A basis for the inputs ``rows`` only (per-input state copied)."""
        new = self.bind(len(rows), self.domain.dtype, self.domain.device)
        with torch.no_grad():
            for name in self.per_input:
                src = getattr(self, name)
                value = src[rows].clone()
                if isinstance(src, torch.nn.Parameter):
                    setattr(new, name, torch.nn.Parameter(value, src.requires_grad))
                else:
                    setattr(new, name, value)
        new._after_select(self, rows)
        return new

    def _after_select(self, old: DenseBasis, rows: torch.Tensor) -> None:
        """Hook for state that is not per input (e.g. shared group coefficients)."""

    def refined(self, size: int) -> DenseBasis:
        """A basis with the size hyper-parameter set to ``size``, on the same domains."""
        if not self.size_name:
            raise UnsupportedError(
                f"{type(self).__name__} has no size to refine (grid extension has no meaning)"
            )
        hp = dict(self.hparams(), **{self.size_name: int(size)})
        new = type(self)(**hp, in_features=self.in_features, dtype=self.domain.dtype,
                         device=self.domain.device)  # fmt: skip
        new.set_domain(self.domain[:, 0], self.domain[:, 1])
        return new

    def update_grid(self, x: torch.Tensor, grid_eps: float = 0.02) -> None:
        """Move the basis to the samples ``x`` (``(N, in)``); see the family's docstring."""
        raise UnsupportedError(f"{type(self).__name__} has no grid to update: {self.domain_note()}")

    def domain_note(self) -> str:
        """One line on how the family handles its domain (used in error messages)."""
        return "its domain is fixed"

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{args}, in_features={self.in_features}"


def affine(x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """``x`` mapped affinely so that each input's ``[lo, hi]`` becomes ``[-1, 1]``."""
    lo, hi = domain[:, 0], domain[:, 1]
    return (2 * x - (lo + hi)) / (hi - lo)


def uniform_positions(domain: torch.Tensor, n: int) -> torch.Tensor:
    """``(in, n)``: ``n`` equally spaced points from ``lo`` to ``hi`` per input."""
    steps = torch.linspace(0, 1, n, dtype=torch.float64, device=domain.device).to(domain.dtype)
    lo, hi = domain[:, :1], domain[:, 1:]
    if n == 1:
        return (lo + hi) / 2
    return lo + (hi - lo) * steps


def margin_positions(domain: torch.Tensor, n: int, margin: float) -> torch.Tensor:
    """``(in, n)``: ``n`` equally spaced points from ``lo - margin * s`` to ``hi + margin * s``
    with ``s = (hi - lo) / (n - 1)``, so that about ``margin`` of them lie beyond each end
    (as the extra knots of B-splines do: curves stay flexible up to the domain's ends)."""
    if n == 1:
        return uniform_positions(domain, 1)
    lo, hi = domain[:, :1], domain[:, 1:]
    s = (hi - lo) / (n - 1)
    return uniform_positions(torch.cat([lo - margin * s, hi + margin * s], 1), n)


def sample_domain(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input ``(lo, hi)`` of the samples ``x`` (a constant input is widened to +-1)."""
    if x.dim() != 2 or x.shape[0] < 2:
        raise ShapeError(f"a grid update needs samples (N >= 2, in), got {tuple(x.shape)}")
    lo, hi = x.amin(0), x.amax(0)
    flat = (hi - lo) <= torch.finfo(x.dtype).eps * (1 + lo.abs())
    return torch.where(flat, lo - 1, lo), torch.where(flat, hi + 1, hi)


def quantile_positions(x: torch.Tensor, n: int, grid_eps: float) -> torch.Tensor:
    """``(in, n)`` positions: a blend of sample quantiles (weight ``1 - grid_eps``) and equal
    spacing over the samples' range (weight ``grid_eps``), as B-spline grid updates do."""
    lo, hi = sample_domain(x)
    uniform = uniform_positions(torch.stack([lo, hi], 1), n)
    if n == 1:
        return uniform
    q = torch.linspace(0, 1, n, dtype=x.dtype, device=x.device)
    adaptive = torch.quantile(x, q, dim=0).t()
    flat = (x.amax(0) - x.amin(0)) <= torch.finfo(x.dtype).eps * (1 + x.amin(0).abs())
    adaptive = torch.where(flat.unsqueeze(1), uniform, adaptive)
    return grid_eps * uniform + (1 - grid_eps) * adaptive


def one(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """A one-element tensor like ``x`` (an unused or scalar kernel argument)."""
    return torch.full((1,), value, dtype=x.dtype, device=x.device)


def contract(gcols: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """``sum_j gcols[:, j] * slopes[:, j]`` for ``(N, nb, in)`` tensors, as ``(N, in)``."""
    return torch.mul(gcols, slopes).sum(1)
