"""pykan's tutorial Example_1 (function fitting by grid extension), line by line:
f = exp(sin(pi x) + y**2) fitted by a [2, 1, 1] KAN whose grid is refined 3 -> 5 -> 10 -> 20.

Prints what the notebook plots: train and test RMSE after training on each grid, and the
parameter count, then the formula after ``auto_symbolic``. ``--small`` runs a smaller version.

    python examples/pykan/example_1_grid_extension.py [--small]
"""

from __future__ import annotations

import sys

import torch

import kanpiler
from kanpiler import MultKAN
from kanpiler.datasets import make


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)


def main(small: bool = False) -> None:
    grids, steps, n = ((3, 5, 10), 20, 300) if small else ((3, 5, 10, 20, 50), 50, 1000)
    dataset = make(f, n_var=2, n_train=n, n_test=n, dtype=torch.float64)
    x = dataset["train_input"]
    model = MultKAN([2, 1, 1], grid=grids[0], k=3, seed=1, dtype=torch.float64)
    for g in grids:
        if g != model.grid:
            model = model.refine(g, x)
        hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"grid {g:3d}: train RMSE {hist['train_rmse'][-1]:.3e}  "
              f"test RMSE {hist['test_rmse'][-1]:.3e}  params {n_params}")  # fmt: skip
    kanpiler.auto_symbolic(model, ["x", "x^2", "sin", "exp"], x=x, progress=False)
    hist = model.fit(dataset, steps=steps, update_grid=False, progress=False)
    print(f"symbolic: train RMSE {hist['train_rmse'][-1]:.3e}")
    (formula,) = kanpiler.formula(model, rtol=1e-3)
    print(f"formula: {formula}")


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
