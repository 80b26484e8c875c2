"""Physics-informed training for KANs and plain torch models.

In: a model, the residual of a differential equation written from the model's input
derivatives, a box domain and boundary/initial conditions. Out: the trained model and its
loss history. Stage: physics — beside the runtime, using only its public model API.

>>> import torch
>>> from kanpiler.physics import Box, Derivatives
>>> box = Box([-1, -1], [1, 1], names=("x", "y"))
>>> mlp = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
>>> d = Derivatives(mlp.double(), box.interior(8), names=box.names)
>>> tuple(d.laplacian().shape)
(8, 1)
"""

from __future__ import annotations

from .derivatives import Derivatives
from .domain import Box, resample
from .lsq import LSQResult, least_squares
from .problem import Condition, Stage
from .taylor import jets
from .training import PINNResult, n_params, solve

__all__ = [
    "Box",
    "Condition",
    "Derivatives",
    "LSQResult",
    "PINNResult",
    "Stage",
    "jets",
    "least_squares",
    "n_params",
    "resample",
    "solve",
]
