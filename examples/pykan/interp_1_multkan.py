"""pykan's tutorial Interp_1 (Hello, MultKAN), line by line: f = x1*x2 learned by a KAN with a
multiplication node, pruned, made symbolic and read back as a clean formula.

Prints what the notebook shows: the training RMSE after each stage, the pruned width and the
formula (pykan's ``symbolic_formula`` + ``ex_round`` + ``nsimplify``; here ``kanpiler.formula``
and ``round_constants``). ``--small`` runs a smaller version (as the tests do).

    python examples/pykan/interp_1_multkan.py [--small]
"""

from __future__ import annotations

import sys

import torch

import kanpiler
from kanpiler import MultKAN
from kanpiler.datasets import make


def main(small: bool = False) -> None:
    n, steps = (200, 10) if small else (1000, 20)
    dataset = make(lambda x: x[:, [0]] * x[:, [1]], n_var=2, n_train=n, n_test=n,
                   dtype=torch.float64)  # fmt: skip
    x = dataset["train_input"]

    model = MultKAN([2, [5, 2], 1], base_fun="identity", dtype=torch.float64, seed=0)
    hist = model.fit(dataset, steps=steps, lamb=0.01, lamb_coef=1.0, progress=False)
    print(f"trained:  train RMSE {hist['train_rmse'][-1]:.3e}")
    model = model.prune(x)
    print(f"pruned:   width {model.width}")
    hist = model.fit(dataset, steps=steps, progress=False)
    print(f"retrained: train RMSE {hist['train_rmse'][-1]:.3e}")
    kanpiler.auto_symbolic(model, ["x", "x^2", "x^3", "exp", "sin"], x=x, progress=False)
    hist = model.fit(dataset, steps=steps, progress=False, update_grid=False)
    print(f"symbolic: train RMSE {hist['train_rmse'][-1]:.3e}")
    (f,) = kanpiler.formula(model, rtol=1e-3)
    print(f"formula:  {f}")
    print(f"rounded:  {kanpiler.round_constants(f, 3)}")


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
