"""Every edge basis by name: B-splines, Chebyshev, Fourier, RBF, wavelets, ReLU-KAN, BSRBF, rational.

In: a basis name and hyper-parameters, or a basis instance. Out: a :class:`Basis` bound to a
layer's inputs, dtype and device. Stage: runtime. ``make_basis`` is what ``KANLayer`` and
``MultKAN`` call; ``BASES`` lists the names.

>>> import torch
>>> basis = make_basis("chebyshev", 3, degree=4)
>>> basis.n_basis, basis.in_features
(5, 3)
>>> make_basis(RBF(centers=6), 2).centres.shape
torch.Size([2, 6])
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ...errors import ConfigError, UnsupportedError
from ..basis import Basis
from .dense import DenseBasis
from .fourier import Fourier
from .polynomial import Chebyshev
from .radial import BSRBF, RBF
from .rational import GRKAN, GroupRational, Rational
from .relu import ReLUKAN
from .wavelet import Wavelet

#: name -> (class, fixed keyword arguments)
BASES: dict[str, tuple[type[DenseBasis], dict[str, Any]]] = {
    "chebyshev": (Chebyshev, {}),
    "fourier": (Fourier, {}),
    "rbf": (RBF, {}),
    "gaussian": (RBF, {}),
    "wavelet": (Wavelet, {}),
    "mexican_hat": (Wavelet, {"kind": "mexican_hat"}),
    "morlet": (Wavelet, {"kind": "morlet"}),
    "dog": (Wavelet, {"kind": "dog"}),
    "relu_kan": (ReLUKAN, {}),
    "bsrbf": (BSRBF, {}),
    "rational": (Rational, {}),
}
NAMES = ("bspline", *BASES)


def basis_spec(name: str, **kw: Any) -> DenseBasis:
    """An unbound basis from its name and hyper-parameters (``"bspline"`` is not one: the
    layer builds B-splines from ``grid``/``k``)."""
    key = name.lower().replace("-", "_")
    if key not in BASES:
        raise ConfigError(f"unknown basis {name!r}; known: {', '.join(NAMES)}")
    cls, fixed = BASES[key]
    try:
        return cls(**fixed, **kw)
    except TypeError as err:
        raise ConfigError(f"basis {name!r}: {err}") from None


def basis_parameters(name: str) -> frozenset[str]:
    """The hyper-parameter names the named family accepts (empty for an unknown name)."""
    key = name.lower().replace("-", "_")
    if key not in BASES:
        return frozenset()
    cls, fixed = BASES[key]
    names = inspect.signature(cls).parameters
    return frozenset(n for n in names if n not in fixed and n not in _BINDING)


_BINDING = ("in_features", "dtype", "device")


def basis_choice(
    basis: str | Basis | None, options: dict[str, Any] | None, more: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A model's basis as ``(name, hyper-parameters)``, checked (what checkpoints record).

    >>> basis_choice("Chebyshev", None, {"degree": 4})
    ('chebyshev', {'degree': 4})
    >>> basis_choice(RBF(centers=6), None, {})
    ('rbf', {'centers': 6, 'width': 1.0, 'margin': 2.0, 'domain': [-1.0, 1.0]})
    """
    opts = {**(options or {}), **more}
    if basis is None or basis == "bspline":
        if opts:
            raise ConfigError(f"B-spline models take grid and k, not {sorted(opts)}")
        return "bspline", {}
    if isinstance(basis, str):
        key = basis.lower().replace("-", "_")
        basis_spec(key, **opts)  # validates the name and the hyper-parameters
        return key, opts
    if isinstance(basis, DenseBasis):
        if opts:
            raise ConfigError(f"hyper-parameters {sorted(opts)} given with a basis instance")
        return basis.spec()
    raise ConfigError(
        f"basis must be a name ({', '.join(NAMES)}) or a basis instance such as RBF(centers=8), "
        f"got {type(basis).__name__} (B-splines are chosen with grid= and k=)"
    )


def resized_config(config: dict[str, Any], size: int) -> dict[str, Any]:
    """A model config whose basis has ``size`` as its size hyper-parameter (B-splines:
    ``grid``; Chebyshev: ``degree``; Fourier: ``frequencies``; RBF, wavelets: ``centers``)."""
    name = config.get("basis") or "bspline"
    if name == "bspline":
        return dict(config, grid=size)
    cls, _ = BASES[name]
    if not cls.size_name:
        raise UnsupportedError(
            f"{cls.__name__} has no size to refine: grid extension has no meaning for it"
        )
    opts = dict(config.get("basis_options") or {})
    if cls.size_name == "grid" and "grid" not in opts:
        return dict(config, grid=size)
    return dict(config, basis_options={**opts, cls.size_name: size})


def make_basis(
    basis: str | Basis,
    in_features: int,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    **kw: Any,
) -> Basis:
    """A basis for ``in_features`` inputs from a name (+ hyper-parameters) or an instance.

    An unbound instance (``RBF(centers=8)``) or one bound to another size is bound afresh; a
    bound instance of the right size is used as it is (it keeps its state).
    """
    if isinstance(basis, str):
        return basis_spec(basis, **kw).bind(in_features, dtype, device)
    if kw:
        raise ConfigError(f"hyper-parameters {sorted(kw)} given with a basis instance")
    if isinstance(basis, DenseBasis):
        if basis.bound and basis.in_features == in_features:
            return basis
        return basis.bind(in_features, dtype, device)
    if isinstance(basis, Basis):
        return basis
    raise ConfigError(f"basis must be a name or a Basis, got {type(basis).__name__}")


__all__ = [
    "BASES", "BSRBF", "basis_choice", "resized_config", "GRKAN", "RBF", "Chebyshev", "DenseBasis", "Fourier", "GroupRational",
    "ReLUKAN", "Rational", "Wavelet", "basis_parameters", "basis_spec", "make_basis",
]  # fmt: skip
