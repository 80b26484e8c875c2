"""What a physics-informed fit is asked to satisfy: conditions and the training schedule.

In: points and targets of boundary/initial conditions; stages of the optimiser schedule.
Out: ``Condition`` and ``Stage`` records read by :func:`kanpiler.physics.solve`.
Stage: physics.

>>> import torch
>>> c = Condition(torch.zeros(3, 2), value=lambda x: x[:, :1] + 1.0, weight=10.0)
>>> c.target(c.points).flatten().tolist()
[1.0, 1.0, 1.0]
>>> Stage("lbfgs", 20, grid=10)
Stage(optimizer='lbfgs', steps=20, lr=None, grid=10, update_grid=False, resample=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError, ShapeError

OPTIMIZERS = ("adam", "lbfgs")


@dataclass
class Condition:
    """A boundary or initial condition on fixed points ``(M, n)``.

    Either ``value`` (a number, an ``(M, out)`` tensor, or a function of the points) that the
    model's output must equal, or ``residual``, a function of the :class:`Derivatives` at
    the points that must vanish (Neumann conditions, initial velocities, ...). Its mean
    square enters the loss times ``weight``.
    """

    points: torch.Tensor
    value: float | torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = 0.0
    residual: Callable[[Any], torch.Tensor] | None = None
    weight: float = 1.0
    name: str = "boundary"

    def __post_init__(self) -> None:
        if not isinstance(self.points, torch.Tensor) or self.points.dim() != 2:
            got = tuple(self.points.shape) if isinstance(self.points, torch.Tensor) else self.points
            raise ShapeError(f"condition {self.name!r}: points must be an (M, n) tensor, got {got}")
        if not float(self.weight) >= 0:
            raise ConfigError(f"condition {self.name!r}: weight must be >= 0, got {self.weight}")

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The values the output must take at ``x`` (``(M, 1)`` or ``(M, out)``)."""
        v = self.value(x) if callable(self.value) else self.value
        v = torch.as_tensor(0.0 if v is None else v, dtype=x.dtype, device=x.device)
        if v.dim() == 0:
            return v.expand(x.shape[0], 1)
        return v.reshape(x.shape[0], -1) if v.dim() == 1 else v


@dataclass
class Stage:
    """One phase of the schedule: ``steps`` of ``optimizer`` (``"adam"`` or ``"lbfgs"``).

    For a KAN, ``update_grid`` moves the knots to the current activations of the points
    (reaching ``margin`` of their range beyond them, see :mod:`.grids`) and then ``grid``
    refines the splines to that many intervals; ``resample`` redraws the
    collocation points where the residual is large. An LBFGS step is one call of the
    optimiser (up to ``inner`` iterations with a strong-Wolfe line search).
    """

    optimizer: str = "lbfgs"
    steps: int = 100
    lr: float | None = None
    grid: int | None = None
    update_grid: bool = False
    resample: bool = False
    inner: int = field(default=20, repr=False)
    margin: float = field(default=0.05, repr=False)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}"
            )
        if self.steps < 0 or self.inner < 1:
            raise ConfigError(f"stage needs steps >= 0 and inner >= 1, got {self}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"stage learning rate must be > 0, got {self.lr}")
        if not 0 <= self.margin < 1:
            raise ConfigError(f"stage grid margin must be in [0, 1), got {self.margin}")
        if self.grid is not None and self.grid < 1:
            raise ConfigError(f"stage grid must be >= 1 intervals, got {self.grid}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "lbfgs" else 1e-3)
