"""pykan's tutorial Example_5 (special functions), line by line: f = exp(J0(20 x) + y**2) with the
Bessel function J0 added to the symbolic library in one line.

Prints what the notebook shows: the training RMSE on the coarse and the refined grid, the
candidates ``suggest_symbolic`` ranks for the J0 edge before and after ``J0`` is registered, and
the final formula. ``--small`` runs a smaller version (as the tests do).

    python examples/pykan/example_5_special_functions.py [--small]
"""

from __future__ import annotations

import sys

import torch

import kanpiler
from kanpiler import MultKAN
from kanpiler.datasets import make


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.special.bessel_j0(20 * x[:, [0]]) + x[:, [1]] ** 2)


def show(title: str, ranked: list) -> None:
    print(title)
    for name, r2, complexity, _ in ranked:
        print(f"  {name:8s} r2={r2:.6f} complexity={complexity}")


def fix_with_a_range(model: MultKAN, x: torch.Tensor, fn: str, scales: tuple) -> None:
    """pykan's ``suggest_symbolic(..., a_range=(-40, 40))``: fit ``fn`` to the edge with its
    input pre-scaled by each of ``scales`` and lock the best fit."""
    from kanpiler.runtime.symfit import fit_affine

    rec = model.record(x)
    u, v = rec.acts[0][:, 0], rec.edge_acts[0][:, 0, 0]
    fits = [(fit_affine(s * u, v, fn), s) for s in scales]
    ((a, b, c, d), r2), s = max(fits, key=lambda t: t[0][1])
    print(f"{fn} with a_range: r2={r2:.6f}, a={a * s:.4f}")
    model.set_symbolic(0, 0, 0, fn, a * s, b, c, d)


def main(small: bool = False) -> None:
    n, steps, fine = (400, 20, 30) if small else (1000, 20, 40)
    dataset = make(f, n_var=2, n_train=n, n_test=n, dtype=torch.float64)
    x = dataset["train_input"]
    model = MultKAN([2, 1, 1], grid=3, k=3, seed=2, dtype=torch.float64)
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    print(f"grid 3:  train RMSE {hist['train_rmse'][-1]:.3e}")
    model = model.refine(fine, x)
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    print(f"grid {fine}: train RMSE {hist['train_rmse'][-1]:.3e}")
    show("candidates for edge (0,0,0):", model.suggest_symbolic(0, 0, 0, topk=3, x=x))
    kanpiler.library.register("J0", torch.special.bessel_j0)  # pykan: add_symbolic('J0', ...)
    try:
        show("with J0 registered:", model.suggest_symbolic(0, 0, 0, topk=3, x=x))
        try:
            model.fix_symbolic(0, 0, 0, "J0", x=x)
        except kanpiler.FitError as err:  # as in the notebook: J0(20x) is outside the search
            print(f"refused: {str(err).split(';')[0]}")
            fix_with_a_range(model, x, "J0", scales=(1, 2, 5, 10, 20, 40))
        kanpiler.auto_symbolic(model, x=x, progress=False)
        hist = model.fit(dataset, steps=steps, update_grid=False, progress=False)
        print(f"symbolic: train RMSE {hist['train_rmse'][-1]:.3e}")
        (formula,) = kanpiler.formula(model, rtol=1e-3)
        print(f"formula: {kanpiler.round_constants(formula, 4)}")
    finally:
        kanpiler.library.unregister("J0")


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
