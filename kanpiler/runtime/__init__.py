"""The KAN runtime: layers, MultKAN, training, grids, pruning, checkpoints and plots.

In: a width list (or a layout built by the compiler). Out: torch modules that compute, train
and explain. Stage: runtime — between the compiler (which builds into ``MultKAN``) and the
converter (which reads it back through the structure API: ``layer_forward``, ``edges``,
``subnode_owner``, ``record``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import train
from .basis import Basis, BSplineBasis
from .layer import KANLayer
from .multkan import MultKAN
from .structure import Edge, LayerValues, Record
from .symbolic import SymbolicLayer


def fit(model: MultKAN, x: Any, y: Any = None, **kw: Any) -> dict[str, list]:
    """Functional form of :meth:`MultKAN.fit` (same arguments, same history)."""
    return train.fit(model, x, y, **kw)


def load(path: str | Path, device: torch.device | str | None = None) -> MultKAN:
    """Load a model written by :meth:`MultKAN.save` (see :mod:`kanpiler.runtime.checkpoint`)."""
    return MultKAN.load(path, device)


__all__ = [
    "Basis",
    "BSplineBasis",
    "Edge",
    "KANLayer",
    "LayerValues",
    "MultKAN",
    "Record",
    "SymbolicLayer",
    "fit",
    "load",
]
