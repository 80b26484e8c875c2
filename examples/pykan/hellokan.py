"""pykan's notebook hellokan ("Hello, KAN!"), line by line: f = exp(sin(pi x) + y**2) learned by
a [2, 5, 1] KAN with sparsity regularisation, pruned, retrained, refined to grid 10, made
symbolic and read back as a formula.

Prints what the notebook shows: train and test RMSE after each ``fit``, the pruned width, the
function ``auto_symbolic`` puts on each edge with its r², the formula, and at the end pykan's
notebook numbers beside these. ``--small`` runs a smaller version (as the tests do);
``--plots DIR`` saves the four ``model.plot()`` figures of the notebook.

    python examples/pykan/hellokan.py [--small] [--plots DIR]
"""

from __future__ import annotations

import torch
from _notebook import compare, options, rmse_pair, save

import kanpiler
from kanpiler import MultKAN
from kanpiler.datasets import make

# pykan 0.2.8's hellokan.ipynb, float64: train / test RMSE printed after each fit
PYKAN = {
    "fit lamb=0.001": "1.85e-02 / 1.77e-02",
    "prune, fit": "1.79e-02 / 1.72e-02",
    "refine(10), fit": "4.67e-04 / 4.73e-04",
    "auto_symbolic, fit": "3.33e-10 / 7.20e-11",
    "formula": "1.0*exp(1.0*x_2**2 + 1.0*sin(3.1416*x_1))",
}
LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)


def main(small: bool = False, plots=None) -> dict:
    n, steps = (200, 10) if small else (1000, 50)
    # pykan: torch.set_default_dtype(torch.float64); kanpiler takes the dtype per model
    model = MultKAN([2, 5, 1], grid=3, k=3, seed=42, dtype=torch.float64)
    dataset = make(f, n_var=2, n_train=n, n_test=n, dtype=torch.float64)
    x = dataset["train_input"]
    print(f"dataset: train_input {tuple(x.shape)}, train_label "
          f"{tuple(dataset['train_label'].shape)}")  # fmt: skip
    save(lambda: model.plot(x), plots, "hellokan_init")
    ours = {}

    hist = model.fit(dataset, opt="LBFGS", steps=steps, lamb=0.001, progress=False)
    ours["fit lamb=0.001"] = rmse_pair(hist)
    print(f"fit lamb=0.001: train/test RMSE {ours['fit lamb=0.001']}, reg {hist['reg'][-1]:.2e}")
    save(lambda: model.plot(x), plots, "hellokan_trained")

    model = model.prune(x)
    print(f"pruned: width {model.width}")
    save(lambda: model.plot(x), plots, "hellokan_pruned")
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    ours["prune, fit"] = rmse_pair(hist)
    print(f"retrained: train/test RMSE {ours['prune, fit']}")

    model = model.refine(10, x)
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    ours["refine(10), fit"] = rmse_pair(hist)
    print(f"grid 10: train/test RMSE {ours['refine(10), fit']}")

    report = kanpiler.auto_symbolic(model, LIB, x=x, progress=False)
    for e in report.edges:
        print(f"fixing ({e.layer},{e.i},{e.j}): {e.fn}, r2={e.r2:.10f}, {e.status}")
    save(lambda: model.plot(x), plots, "hellokan_symbolic")
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    ours["auto_symbolic, fit"] = rmse_pair(hist)
    print(f"symbolic: train/test RMSE {ours['auto_symbolic, fit']}")

    (formula,) = kanpiler.formula(model)
    ours["formula"] = str(kanpiler.round_constants(formula, 4))
    print(f"formula: {ours['formula']}")
    compare("train / test RMSE", [(k, v, ours[k]) for k, v in PYKAN.items()], small)
    return {"model": model, "formula": formula, "dataset": dataset}


if __name__ == "__main__":
    main(**options())
