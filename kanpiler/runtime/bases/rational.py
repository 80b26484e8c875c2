"""Group-rational edges (GR-KAN, the Kolmogorov-Arnold Transformer's layer).

In: inputs ``(..., C)``. Out: ``F_g(x) = P_g(x) / Q_g(x)`` per channel, with
``P_g(x) = a_0 + a_1 x + ... + a_m x^m`` and the safe denominator
``Q_g(x) = 1 + |b_1| |x| + ... + |b_n| |x|^n >= 1`` (it cannot vanish), the coefficients of
channel ``c`` those of its group ``g = c * groups // C``. Stage: runtime.

* :class:`GroupRational`: the activation module, for any ``(..., C)`` tensor.
* :class:`GRKAN`: ``Linear(GroupRational(x))``, the drop-in for ``nn.Linear`` + activation in
  a Transformer MLP block (the rational comes first, as in KAT).
* :class:`Rational`: the same functions as a one-function :class:`DenseBasis` of
  :class:`~kanpiler.runtime.layer.KANLayer` (edge ``w_b silu(x) + w_s c F_g(x)``); with
  ``base_fun="zero"`` a KANLayer on it is exactly a GR-KAN layer without bias. Its edges
  start switched on (``c = 1`` plus the layer's noise) from ``init="gelu"``: from the
  identity, ``Q = 1`` and the subgradient of ``|b_j|`` at 0 is 0, so the denominators never
  move and a 100-input layer stays a sum of odd polynomials (test RMSE 3x worse).

``init`` picks the starting coefficients: ``"identity"`` exactly, or ``"gelu"``, ``"silu"``,
``"tanh"``, ``"relu"`` fitted in float64 on ``[-3, 3]`` (computed once per process, the way KAT
starts from a pretrained ViT's activations). There is no grid: grid updates and grid
extension raise :class:`~kanpiler.errors.UnsupportedError`; the domain only sets plot ranges.

>>> import torch
>>> act = GroupRational(4, groups=2, init="gelu", dtype=torch.float64)
>>> x = torch.linspace(-3, 3, 7, dtype=torch.float64).unsqueeze(1).expand(-1, 4)
>>> bool((act(x) - torch.nn.functional.gelu(x)).abs().max() < 5e-3)
True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, ShapeError
from . import native
from .dense import DenseBasis

TARGETS = {
    "identity": lambda x: x,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
    "tanh": torch.tanh,
    "relu": torch.relu,
}


def rational_values(x: torch.Tensor, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``P(x) / (1 + sum_j |b_j| |x|^j)`` with coefficients broadcast against ``x``:
    ``num (..., m+1)`` (``a_0`` first), ``den (..., n)`` (``b_1`` first)."""
    p = num[..., -1]
    for i in range(num.shape[-1] - 2, -1, -1):
        p = p * x + num[..., i]
    if den.shape[-1] == 0:
        return p
    ax, b = x.abs(), den.abs()
    q = b[..., -1]
    for i in range(den.shape[-1] - 2, -1, -1):
        q = q * ax + b[..., i]
    return p / (q * ax + 1)


#: inputs of larger magnitude (or not finite) take the torch path (``|x|^(m+n)`` stays finite)
LIMIT = 1e4


def _columns(x: torch.Tensor, a: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """``P / (1 + sum_j bb_j |x|^j)`` for ``x (N, C)``, ``a (m+1, C)``, ``bb (n, C)`` (torch)."""
    p = a[-1].expand_as(x)
    for i in range(a.shape[0] - 2, -1, -1):
        p = p * x + a[i]
    if bb.shape[0] == 0:
        return p
    ax = x.abs()
    q = bb[-1].expand_as(x)
    for j in range(bb.shape[0] - 2, -1, -1):
        q = q * ax + bb[j]
    return p / (q * ax + 1)


class FusedRational(torch.autograd.Function):
    """:func:`_columns` by the native kernel: one pass forward, one pass backward for the
    input and per-channel coefficient gradients. Double backward differentiates the torch
    formula, so every derivative stays exact."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        kernel = native.rational_kernel()
        assert kernel is not None
        ctx.save_for_backward(x, a, bb)
        return kernel.forward(x, a, bb)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, a, bb = ctx.saved_tensors
        if torch.is_grad_enabled():
            with torch.enable_grad():
                out = _columns(x, a, bb)
                wanted = [t for t, need in zip((x, a, bb), ctx.needs_input_grad) if need]
                found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return tuple(next(found) if need else None for need in ctx.needs_input_grad)
        kernel = native.rational_kernel()
        assert kernel is not None
        gx, ga, gbb = kernel.backward(x, grad.contiguous(), a, bb)
        return gx, ga, gbb


def _fused_ok(x: torch.Tensor) -> bool:
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    if x.numel() == 0 or torch._C._are_functorch_transforms_active():
        return False
    if native.rational_kernel() is None:
        return False
    lo, hi = torch.aminmax(x)
    return bool((lo > -LIMIT) & (hi < LIMIT))  # also False for NaN


def channel_rational(x: torch.Tensor, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` group-rational values, ``num (C, m+1)`` and ``den (C, n)`` per channel
    (a group's row repeated): the native kernel where it applies, else torch."""
    a, bb = num.t().contiguous(), den.abs().t().contiguous()
    x = x.contiguous()
    if _fused_ok(x):
        return FusedRational.apply(x, a.to(x.dtype), bb.to(x.dtype))
    return _columns(x, a, bb)


@lru_cache(maxsize=32)
def fitted_coefficients(init: str, m: int, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Numerator and denominator coefficients of a rational close to ``TARGETS[init]`` on
    ``[-3, 3]``: float64 least squares from a linearised solve (and, for GELU, from the SiLU
    fit rescaled by ``gelu(x) ~ silu(1.702 x) / 1.702``), refined by L-BFGS; the best wins."""
    if init not in TARGETS:
        raise ConfigError(f"unknown rational init {init!r}; known: {', '.join(TARGETS)}")
    if init == "identity" and m >= 1:
        return (0.0, 1.0) + (0.0,) * (m - 1), (0.0,) * n
    x = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    y = TARGETS[init](x)
    # P(x) - y * sum_j c_j |x|^j = y is linear in (a, c)
    cols = [x**i for i in range(m + 1)] + [-y * x.abs() ** j for j in range(1, n + 1)]
    sol = torch.linalg.lstsq(torch.stack(cols, 1), y.unsqueeze(1)).solution.squeeze(1)
    starts = [(sol[: m + 1], sol[m + 1 :].abs())]
    if init == "gelu":
        a, b = (torch.tensor(v, dtype=torch.float64) for v in fitted_coefficients("silu", m, n))
        s = 1.702
        starts.append((a * s ** (torch.arange(m + 1) - 1.0), b * s ** torch.arange(1.0, n + 1)))
    fits = [_refine(x, y, num, den) for num, den in starts]
    best = min(fits, key=lambda f: f[0])
    return tuple(best[1].tolist()), tuple(best[2].abs().tolist())


def _refine(x: torch.Tensor, y: torch.Tensor, num: torch.Tensor, den: torch.Tensor):
    """L-BFGS on the mean squared error; returns ``(error, num, den)``."""
    num, den = num.clone().requires_grad_(), den.clone().requires_grad_()
    opt = torch.optim.LBFGS([num, den], max_iter=400, tolerance_grad=1e-14,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (rational_values(x, num, den) - y).pow(2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        err = float((rational_values(x, num, den) - y).abs().max())
    return err, num.detach(), den.detach()


def _check_order(order: Any) -> tuple[int, int]:
    m, n = (int(v) for v in order)
    if m < 0 or n < 0:
        raise ConfigError(f"rational order must be (m >= 0, n >= 0), got {order!r}")
    return m, n


def group_index(channels: int, groups: int, device: torch.device | str | None) -> torch.Tensor:
    """``(channels,)``: the group of each channel, ``c * groups // channels``."""
    return torch.arange(channels, device=device) * groups // max(channels, 1)


def _coefficient_parameters(
    init: str, order: tuple[int, int], groups: int, dtype, device
) -> tuple[nn.Parameter, nn.Parameter]:
    num, den = fitted_coefficients(init, *order)
    opts = {"dtype": dtype, "device": device}
    a = torch.tensor(num, **opts).expand(groups, -1).clone()
    b = torch.tensor(den, dtype=dtype, device=device).reshape(1, -1).expand(groups, -1).clone()
    return nn.Parameter(a), nn.Parameter(b)


class GroupRational(nn.Module):
    """Rational activation with coefficients shared by ``groups`` groups of channels."""

    group_of: torch.Tensor

    def __init__(
        self,
        features: int,
        groups: int = 8,
        order: tuple[int, int] = (5, 4),
        init: str = "identity",
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if features < 1 or not 1 <= groups <= features:
            raise ConfigError(
                f"GroupRational needs 1 <= groups <= features, got {groups}, {features}"
            )
        self.features, self.groups, self.order = int(features), int(groups), _check_order(order)
        self.numerator, self.denominator = _coefficient_parameters(
            init, self.order, self.groups, dtype or torch.float32, device
        )
        self.register_buffer("group_of", group_index(self.features, self.groups, device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.features:
            raise ShapeError(f"GroupRational expects (..., {self.features}), got {tuple(x.shape)}")
        num, den = self.numerator[self.group_of], self.denominator[self.group_of]
        flat = channel_rational(x.reshape(-1, self.features), num, den)
        return flat.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"features={self.features}, groups={self.groups}, order={self.order}"


class GRKAN(nn.Module):
    """GR-KAN layer ``W F(x) + b``: a group-rational activation, then a linear map."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        groups: int = 8,
        order: tuple[int, int] = (5, 4),
        init: str = "identity",
        bias: bool = True,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.act = GroupRational(in_features, groups, order, init, dtype=dtype, device=device)
        self.linear = nn.Linear(in_features, out_features, bias=bias, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.act(x))


class Rational(DenseBasis):
    """One group-rational function per input as a basis of ``n_basis = 1`` (see module)."""

    name = "rational"
    size_name = ""
    free_curves = False
    init_coef = 1.0
    per_input = ("domain", "group_of")
    group_of: torch.Tensor
    numerator: nn.Parameter
    denominator: nn.Parameter

    def __init__(
        self,
        groups: int = 8,
        order: tuple[int, int] | list[int] = (5, 4),
        init: str = "gelu",
        domain: tuple[float, float] = (-1.0, 1.0),
        *,
        in_features: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, domain, dtype, device)
        if int(groups) < 1:
            raise ConfigError(f"Rational needs groups >= 1, got {groups}")
        self.groups, self.order, self.init = int(groups), _check_order(order), str(init)
        fitted_coefficients(self.init, *self.order)  # validates init early
        if self.in_features is not None:
            n_groups = max(1, min(self.groups, self.in_features))
            self.numerator, self.denominator = _coefficient_parameters(
                self.init, self.order, n_groups, self._dtype, device
            )
            self.register_buffer("group_of", group_index(self.in_features, n_groups, device))
        self._setup()

    @property
    def n_basis(self) -> int:  # type: ignore[override]
        return 1

    def hparams(self) -> dict[str, Any]:
        return {"groups": self.groups, "order": list(self.order), "init": self.init,
                "domain": list(self.domain_range)}  # fmt: skip

    def domain_note(self) -> str:
        return "a rational function is defined on every real input (its denominator is >= 1)"

    def values(self, x: torch.Tensor) -> torch.Tensor:
        num, den = self.numerator[self.group_of], self.denominator[self.group_of]
        return channel_rational(x, num, den).unsqueeze(-1)

    def _after_select(self, old: DenseBasis, rows: torch.Tensor) -> None:
        assert isinstance(old, Rational)
        self.numerator = nn.Parameter(old.numerator.detach().clone(), old.numerator.requires_grad)
        self.denominator = nn.Parameter(
            old.denominator.detach().clone(), old.denominator.requires_grad
        )
