"""The KAN runtime: layers, MultKAN, training, grids, pruning, checkpoints and plots.

In: a width list (or a layout built by the compiler). Out: torch modules that compute, train
and explain. Stage: runtime — between the compiler (which builds into ``MultKAN``) and the
converter (which reads it back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .basis import Basis, BSplineBasis
from .layer import KANLayer
from .multkan import MultKAN
from .symbolic import SymbolicLayer


def fit(model: MultKAN, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> dict[str, list[float]]:
    """Functional form of :meth:`MultKAN.fit` (same arguments, same history)."""
    from .train import fit as _fit

    return _fit(model, x, y, **kw)


def load(path: str | Path, device: torch.device | str | None = None) -> MultKAN:
    """Load a model written by :meth:`MultKAN.save` (see :mod:`kanpiler.runtime.io`)."""
    from .io import load as _load

    return _load(path, device)


__all__ = ["Basis", "BSplineBasis", "KANLayer", "MultKAN", "SymbolicLayer", "fit", "load"]
