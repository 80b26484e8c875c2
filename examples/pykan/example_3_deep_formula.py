"""pykan's tutorial Example_3 (deep formulas), line by line:
f = exp((sin(pi (x1^2 + x2^2)) + sin(pi (x3^2 + x4^2))) / 2) needs three layers of function
composition. A [4, 2, 1, 1] KAN is trained with sparsity regularisation, pruned, and refined
through grids 3 -> 5 -> 10 -> 20 -> 50; then a two-layer [4, 9, 1] KAN goes through the same
steps and stays far less accurate.

Prints what the notebook prints: train and test RMSE after each ``fit``, the pruned width, the
RMSE lists per grid, and at the end pykan's numbers beside these. ``--small`` runs a smaller
version (as the tests do); ``--plots DIR`` saves the pruned network and the error against
parameters.

    python examples/pykan/example_3_deep_formula.py [--small] [--plots DIR]
"""

from __future__ import annotations

import torch
from _notebook import compare, options, rmse_pair, save

from kanpiler import MultKAN
from kanpiler.datasets import make

# pykan 0.2.8's Example_3_deep_formula.ipynb (float32): train / test RMSE
PYKAN = {
    "[4,2,1,1]": {
        "fit lamb=0.002": "1.76e-02 / 1.79e-02",
        3: "9.21e-03 / 9.23e-03", 5: "3.33e-03 / 3.25e-03", 10: "1.13e-03 / 1.07e-03",
        20: "3.93e-04 / 3.75e-04", 50: "3.60e-05 / 3.78e-05",
    },
    "[4,9,1]": {
        "fit lamb=0.002": "5.98e-02 / 6.11e-02",
        3: "1.98e-02 / 2.21e-02", 5: "1.15e-02 / 1.40e-02", 10: "6.69e-03 / 9.05e-03",
        20: "4.38e-03 / 8.05e-03", 50: "2.02e-03 / 9.89e-03",
    },
}  # fmt: skip


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(
        (torch.sin(torch.pi * (x[:, [0]] ** 2 + x[:, [1]] ** 2))
         + torch.sin(torch.pi * (x[:, [2]] ** 2 + x[:, [3]] ** 2))) / 2
    )  # fmt: skip


def grid_sweep(width, seed, stop, dataset, grids, steps, prune, plots) -> tuple[dict, MultKAN]:
    """The notebook's cells for one width: fit with regularisation, (prune), then for each
    grid ``refine`` and ``fit`` with grid updates until step ``stop``."""
    name, x = str(width).replace(" ", ""), dataset["train_input"]
    model = MultKAN(width, grid=3, k=3, seed=seed, dtype=torch.float64)
    hist = model.fit(dataset, opt="LBFGS", steps=steps[0], lamb=0.002, lamb_entropy=2.0,
                     progress=False)  # fmt: skip
    out = {"fit lamb=0.002": rmse_pair(hist)}
    print(f"{name} fit lamb=0.002: train/test RMSE {out['fit lamb=0.002']}")
    if prune:
        model = model.prune(x, edge_th=1e-2)
        print(f"{name} pruned: width {model.width}, edges "
              f"{[(e.i, e.j) for li in range(model.depth) for e in model.edges(li)]}")  # fmt: skip
    save(lambda: model.plot(x), plots, f"example_3_{name}")
    train_rmse, test_rmse = [], []
    for g in grids:
        model = model.refine(g, x)
        hist = model.fit(dataset, opt="LBFGS", steps=steps[1], stop_grid_update_step=stop,
                         progress=False)  # fmt: skip
        train_rmse.append(hist["train_rmse"][-1])
        test_rmse.append(hist["test_rmse"][-1])
        out[g] = rmse_pair(hist)
        print(f"{name} grid {g}: train/test RMSE {out[g]}")
    print(f"{name} train_rmse: {[float(f'{v:.3e}') for v in train_rmse]}")
    print(f"{name} test_rmse: {[float(f'{v:.3e}') for v in test_rmse]}")
    return out, model


def scaling(grids, results):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, edges in (("[4,2,1,1]", 4 * 2 + 2 * 1 + 1 * 1), ("[4,9,1]", 4 * 9 + 9 * 1)):
        n_params = [g * edges for g in grids]
        for split, k in (("train", 0), ("test", 1)):
            rmse = [float(results[name][g].split(" / ")[k]) for g in grids]
            ax.plot(n_params, rmse, marker="o", label=f"{name} {split}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (grid x edges)")
    ax.legend()
    return fig


def main(small: bool = False, plots=None) -> dict:
    n, grids, steps = (200, (3, 5), (8, 8)) if small else (3000, (3, 5, 10, 20, 50), (20, 50))
    dataset = make(f, n_var=4, n_train=n, n_test=1000 if not small else n, dtype=torch.float64)
    deep, model = grid_sweep([4, 2, 1, 1], 1, 20, dataset, grids, steps, True, plots)
    shallow, _ = grid_sweep([4, 9, 1], 0, 30, dataset, grids, steps, False, plots)
    results = {"[4,2,1,1]": deep, "[4,9,1]": shallow}
    save(lambda: scaling(grids, results), plots, "example_3_scaling")
    for name, ours in results.items():
        rows = [(f"{name} " + (f"grid {k}" if isinstance(k, int) else k), v, ours[k])
                for k, v in PYKAN[name].items() if k in ours]  # fmt: skip
        compare(f"{name}, train / test RMSE", rows, small)
    return {"model": model, "dataset": dataset, "results": results}


if __name__ == "__main__":
    main(**options())
