"""pykan's tutorial Example_9 (singularity), line by line: two functions whose formulas have a
singularity. f = sin(2 (log x + log y)) on [0.2, 5]^2 is learned by a [2, 1, 1] KAN whose edges
are then fixed to log, log and sin; g = sqrt(x^2 + y^2) on [-1, 1]^2 (singular at the origin)
by one whose edges become x^2, x^2 and sqrt, then trained further with Adam.

Prints what the notebook shows: train and test RMSE after each ``fit``, the r² of each
``fix_symbolic``, the formulas, and at the end pykan's notebook numbers beside these. pykan
needs ``singularity_avoiding=True`` for the last fit (without it the loss turns NaN); kanpiler
always trains with singularity-safe functions, and the model states its input domain
(``model.domain()``) and checks it (``model.evaluate``). ``--small`` runs a smaller version (as
the tests do); ``--plots DIR`` saves the trained networks.

    python examples/pykan/example_9_singularity.py [--small] [--plots DIR]
"""

from __future__ import annotations

import torch
from _notebook import compare, options, rmse_pair, save

import kanpiler
from kanpiler import MultKAN
from kanpiler.datasets import make

# pykan 0.2.8's Example_9_singularity.ipynb (float32)
PYKAN = {
    "log: fit": "1.14e-01 / 1.29e-01",
    "log: fix_symbolic r2": "0.9975, 0.9975, 0.9741",
    "log: symbolic fit": "2.66e-07 / 2.75e-07",
    "log: formula": "-1.0*sin(2.0*log(5.017*x_1) + 2.0*log(1.512*x_2) - 7.194)",
    "sqrt: fit": "3.65e-03 / 3.97e-03",
    "sqrt: fix_symbolic r2": "1.0000, 1.0000, 0.9999",
    "sqrt: formula": "1.01*sqrt(1.0*x_1**2 + x_2**2) - 0.e-2",
    "sqrt: Adam 1000": "5.11e-04 / 5.64e-04 (nan without singularity_avoiding)",
}


def log_sin(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * (torch.log(x[:, [0]]) + torch.log(x[:, [1]])))


def radius(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x[:, [0]] ** 2 + x[:, [1]] ** 2)


def fix_all(model: MultKAN, names: list[tuple[int, int, int, str]], x: torch.Tensor) -> str:
    r2 = []
    for li, i, j, fn in names:
        r2.append(model.fix_symbolic(li, i, j, fn, x=x))
        print(f"fix_symbolic({li},{i},{j},{fn!r}): r2 is {r2[-1]:.10f}")
    return ", ".join(f"{v:.4f}" for v in r2)


def singular_log(n: int, steps: int, plots) -> dict[str, str]:
    model = MultKAN([2, 1, 1], grid=5, k=3, seed=2, dtype=torch.float64)
    dataset = make(log_sin, n_var=2, ranges=[0.2, 5], n_train=n, n_test=n, dtype=torch.float64)
    x, ours = dataset["train_input"], {}
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    ours["log: fit"] = rmse_pair(hist)
    print(f"log fit: train/test RMSE {ours['log: fit']}")
    save(lambda: model.plot(x), plots, "example_9_log")
    ours["log: fix_symbolic r2"] = fix_all(
        model, [(0, 0, 0, "log"), (0, 1, 0, "log"), (1, 0, 0, "sin")], x
    )
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    ours["log: symbolic fit"] = rmse_pair(hist)
    print(f"log symbolic: train/test RMSE {ours['log: symbolic fit']}")
    (formula,) = kanpiler.formula(model)
    ours["log: formula"] = str(kanpiler.round_constants(formula, 3))
    print(f"log formula: {ours['log: formula']}")
    print(f"log domain: {model.domain()}")
    ours["_log"] = (model, formula)
    return ours


def singular_sqrt(n: int, steps: int, adam: int, plots) -> dict[str, str]:
    model = MultKAN([2, 1, 1], grid=5, k=3, seed=0, dtype=torch.float64)
    dataset = make(radius, n_var=2, n_train=n, n_test=n, dtype=torch.float64)
    x, ours = dataset["train_input"], {}
    hist = model.fit(dataset, opt="LBFGS", steps=steps, progress=False)
    ours["sqrt: fit"] = rmse_pair(hist)
    print(f"sqrt fit: train/test RMSE {ours['sqrt: fit']}")
    save(lambda: model.plot(x), plots, "example_9_sqrt")
    ours["sqrt: fix_symbolic r2"] = fix_all(
        model, [(0, 0, 0, "x^2"), (0, 1, 0, "x^2"), (1, 0, 0, "sqrt")], x
    )
    (formula,) = kanpiler.formula(model)
    ours["sqrt: formula"] = str(kanpiler.round_constants(formula, 2))
    print(f"sqrt formula: {ours['sqrt: formula']}")
    # pykan: fit(..., singularity_avoiding=True); kanpiler's symbolic edges are always safe
    hist = model.fit(dataset, opt="Adam", steps=adam, lr=1e-3, update_grid=False, progress=False)
    ours["sqrt: Adam 1000"] = rmse_pair(hist)
    print(f"sqrt Adam: train/test RMSE {ours['sqrt: Adam 1000']}")
    (formula,) = kanpiler.formula(model)
    print(f"sqrt formula after Adam: {kanpiler.round_constants(formula, 2)}")
    print(f"sqrt domain: {model.domain()}")
    ours["_sqrt"] = (model, formula)
    return ours


def main(small: bool = False, plots=None) -> dict:
    n, steps, adam = (300, 10, 200) if small else (1000, 20, 1000)
    ours = singular_log(n, steps, plots) | singular_sqrt(n, steps, adam, plots)
    compare("train / test RMSE", [(k, v, ours[k]) for k, v in PYKAN.items()], small)
    return ours


if __name__ == "__main__":
    main(**options())
