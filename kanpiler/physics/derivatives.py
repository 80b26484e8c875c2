"""Derivatives of a model's outputs with respect to its inputs, batched over points.

In: a model, collocation points ``x (N, n)`` and the input names. Out: a
:class:`Derivatives` object a residual reads: ``d.u``, ``d("x")``, ``d("x", "x")``,
``d.laplacian()``, each ``(N, out)``. Stage: physics. Derivatives are computed on demand and
cached. Up to second order they come from Taylor-mode jets (:mod:`.taylor`) when the model is
a ``MultKAN`` or a plain ``Linear``/activation stack; higher orders, other models or
``method="autograd"`` use nested reverse mode on the summed outputs (every sample's output
depends only on its own input, so one backward gives every sample's derivative: no
per-sample Jacobians).

>>> import torch
>>> mlp = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
>>> x = torch.rand(5, 2, dtype=torch.float64)
>>> mlp = mlp.double()
>>> d = Derivatives(mlp, x, names=("x", "y"))
>>> a = Derivatives(mlp, x, names=("x", "y"), method="autograd")
>>> bool(torch.allclose(d("x", "y"), a("x", "y")))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from . import taylor

METHODS = ("auto", "taylor", "autograd")


class Derivatives:
    """Model values and input derivatives at points ``x``, computed when first asked for.

    ``names`` are the input names (default: ``model.variables`` or ``x1, x2, ...``);
    derivatives are asked for by name or by input index: ``d("t")``, ``d("x", "x")``,
    ``d(0, 1)``. ``method`` is ``"auto"`` (Taylor mode up to order 2 where the model allows
    it), ``"taylor"`` or ``"autograd"``. The first derivative asked for computes the value,
    the gradient and the pure second derivatives of every input in one Taylor pass.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        *,
        names: Sequence[str] | None = None,
        method: str = "auto",
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"derivative method {method!r}: use one of {', '.join(METHODS)}")
        if x.dim() != 2:
            raise ShapeError(f"points must be (N, n_inputs), got shape {tuple(x.shape)}")
        self.model, self.x = model, x.detach()
        self.names = tuple(names) if names is not None else input_names(model, x.shape[1])
        if len(self.names) != x.shape[1]:
            raise ShapeError(f"{len(self.names)} input names {self.names} for {x.shape[1]} inputs")
        self.use_taylor = method != "autograd" and taylor.supports(model)
        if method == "taylor" and not self.use_taylor:
            raise ConfigError(
                f"Taylor-mode derivatives need a MultKAN or a Linear/activation stack, "
                f"not {type(model).__name__}; use method='autograd'"
            )
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._ag: dict[tuple[int, ...], torch.Tensor] = {}
        self._x_grad: torch.Tensor | None = None

    # --- public -------------------------------------------------------------------------------

    @property
    def u(self) -> torch.Tensor:
        """The model's outputs ``(N, out)``."""
        if () not in self._cache:
            self._cache[()] = self.model(self.x)
        return self._cache[()]

    def input(self, name: str | int) -> torch.Tensor:
        """The column ``(N, 1)`` of one input, e.g. ``d.input("t")``."""
        i = self.index(name)
        return self.x[:, i : i + 1]

    def __call__(self, *wrt: str | int) -> torch.Tensor:
        """``d^k u / d wrt[0] ... d wrt[k-1]`` as ``(N, out)``; no argument gives ``u``."""
        key = tuple(sorted(self.index(w) for w in wrt))
        if key in self._cache:
            return self._cache[key]
        if self.use_taylor and len(key) == 1:
            self._pure_jets()
            value = self._cache[key]
        elif self.use_taylor and len(key) == 2:
            value = self._mixed(*key)
        else:
            value = self._autograd(key)
        self._cache[key] = value
        return value

    def laplacian(self, wrt: Sequence[str | int] | None = None) -> torch.Tensor:
        """``sum_i d^2 u / d x_i^2`` over ``wrt`` (default: every input) as ``(N, out)``."""
        parts = [self(w, w) for w in (wrt if wrt is not None else self.names)]
        return torch.stack(parts).sum(0)

    def gradient(self) -> torch.Tensor:
        """``(N, out, n)``: every first derivative."""
        return torch.stack([self(i) for i in range(len(self.names))], dim=-1)

    def index(self, name: str | int) -> int:
        """Input index of ``name`` (a name or an index), with a clear error otherwise."""
        if isinstance(name, int) and not isinstance(name, bool):
            if 0 <= name < len(self.names):
                return name
        elif name in self.names:
            return self.names.index(name)
        raise ShapeError(
            f"no model input {name!r}: derivatives are taken with respect to {list(self.names)} "
            f"(or indices 0..{len(self.names) - 1})"
        )

    # --- engines ------------------------------------------------------------------------------

    def _pure_jets(self) -> None:
        n = self.x.shape[1]
        eye = torch.eye(n, dtype=self.x.dtype, device=self.x.device)
        u, d1, d2 = taylor.jets(self.model, self.x, eye)
        self._cache.setdefault((), u)
        for i in range(n):
            self._cache[(i,)] = d1[i]
            self._cache[(i, i)] = d2[i]

    def _mixed(self, i: int, j: int) -> torch.Tensor:
        if (i, i) not in self._cache:
            self._pure_jets()
        if i == j:
            return self._cache[(i, i)]
        v = torch.zeros(1, self.x.shape[1], dtype=self.x.dtype, device=self.x.device)
        v[0, i] = v[0, j] = 1.0
        _, _, d2 = taylor.jets(self.model, self.x, v)
        # (e_i + e_j)^T H (e_i + e_j) = u_ii + 2 u_ij + u_jj
        return (d2[0] - self._cache[(i, i)] - self._cache[(j, j)]) / 2

    def _autograd(self, key: tuple[int, ...]) -> torch.Tensor:
        """Nested reverse mode on one graph from ``x`` (kept apart from the Taylor values)."""
        if key in self._ag:
            return self._ag[key]
        if not key:
            with torch.enable_grad():
                self._x_grad = self.x.clone().requires_grad_(True)
                value = self.model(self._x_grad)
            self._cache.setdefault((), value)
        else:
            value = self._grad(self._autograd(key[:-1]), key[-1])
        self._ag[key] = value
        return value

    def _grad(self, y: torch.Tensor, i: int) -> torch.Tensor:
        cols = []
        x = self._x_grad
        assert x is not None  # set by the order-0 call every chain starts from
        with torch.enable_grad():
            for o in range(y.shape[1]):
                if not y.requires_grad:
                    cols.append(torch.zeros_like(y[:, o]))
                    continue
                (g,) = torch.autograd.grad(y[:, o].sum(), x, create_graph=True, allow_unused=True)
                cols.append(torch.zeros_like(y[:, o]) if g is None else g[:, i])
        return torch.stack(cols, dim=1)


def input_names(model: nn.Module, n: int) -> tuple[str, ...]:
    """``model.variables`` when the model names its inputs, else ``x1 .. xn``."""
    names = getattr(model, "variables", None)
    if names is not None and len(names) == n:
        return tuple(names)
    return tuple(f"x{i + 1}" for i in range(n))
