"""pykan's tutorial Example_7 (PDE accuracy), line by line: the 2-D Poisson equation
laplacian(f) = -2 pi^2 sin(pi x) sin(pi y) on [-1, 1]^2 with f = 0 on the boundary (solution
sin(pi x) sin(pi y)), solved by a [2, 2, 1] KAN on grids 5 -> 10 -> 20 with
``kanpiler.physics.solve`` in place of the notebook's hand-written LBFGS loop.

The notebook's recipe is kept: a 51 x 51 mesh of interior points, 51 points per side of the
boundary, loss ``0.01 * mean(pde residual^2) + mean(boundary error^2)``, 50 LBFGS steps per
grid, the grid moved to the samples before steps 0, 5, 10 and 15 of each grid. Prints what the
notebook prints at the end of each grid: the PDE loss, the boundary loss and the squared L2
error on the interior points, then pykan's numbers beside these. ``--small`` runs a smaller
version (as the tests do); ``--plots DIR`` saves the loss curves.

    python examples/pykan/example_7_pde.py [--small] [--plots DIR]
"""

from __future__ import annotations

import math

import torch
from _notebook import compare, options, save

from kanpiler import MultKAN
from kanpiler.physics import Box, Condition, Stage, solve

# pykan 0.2.8's Example_7_PDE_accuracy.ipynb (float32): pde loss, bc loss, l2 per grid
PYKAN = {5: (2.13e00, 1.80e-03, 3.11e-03), 10: (5.68e-01, 5.30e-04, 1.03e-03),
         20: (1.23e-01, 1.51e-04, 1.74e-04)}  # fmt: skip
ALPHA = 0.01  # the notebook's weight of the PDE term


def sol_fun(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(math.pi * x[:, [0]]) * torch.sin(math.pi * x[:, [1]])


def source_fun(x: torch.Tensor) -> torch.Tensor:
    return -2 * math.pi**2 * sol_fun(x)


def mesh_points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's points: an ``n x n`` mesh of [-1, 1]^2 (its edges included) and ``n``
    points on each of the four sides."""
    t = torch.linspace(-1, 1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(t, t, indexing="ij")

    def helper(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)

    x_b = torch.cat([helper(X[0], Y[0]), helper(X[-1], Y[0]),
                     helper(X[:, 0], Y[:, 0]), helper(X[:, 0], Y[:, -1])])  # fmt: skip
    return helper(X, Y), x_b


def schedule(grids: tuple[int, ...], steps: int) -> list[Stage]:
    """Per grid: refine, then ``steps`` LBFGS steps with the grid updated before steps
    0, 5, 10 and 15 (pykan: ``if _ % 5 == 0 and _ < 20: update_grid_from_samples``)."""
    stages = []
    for g in grids:
        updates = [s for s in range(0, min(steps, 20), 5)]
        bounds = updates + [steps]
        for k, start in enumerate(updates):
            stages.append(Stage("lbfgs", bounds[k + 1] - start, grid=g if k == 0 else None,
                                update_grid=True))  # fmt: skip
    return stages


def main(small: bool = False, plots=None) -> dict:
    n, grids, steps = (11, (5, 10), 6) if small else (51, (5, 10, 20), 50)
    x_i, x_b = mesh_points(n)
    box = Box([-1, -1], [1, 1], names=("x", "y"))
    model = MultKAN([2, 2, 1], grid=grids[0], k=3, seed=1, dtype=torch.float64)

    def poisson(d) -> torch.Tensor:  # the PDE residual at the interior points
        return d.laplacian() - source_fun(d.x)

    result = solve(
        model, poisson, box, [Condition(x_b, value=sol_fun, name="bc")],
        points=x_i, residual_weight=ALPHA, stages=schedule(grids, steps),
        test=(x_i, sol_fun(x_i)),
    )  # fmt: skip
    ours = {}
    per_grid = len(result.stages) // len(grids)
    for g, k in zip(grids, range(per_grid - 1, len(result.stages), per_grid)):
        s = result.stages[k]
        ours[g] = (s["residual"], s["bc"], s["test_mse"])
        print(f"grid {g}: pde loss {s['residual']:.2e}, bc loss {s['bc']:.2e}, "
              f"l2 {s['test_mse']:.2e}")  # fmt: skip
    save(lambda: loss_curves(result), plots, "example_7_losses")
    rows = []
    for g in grids:
        theirs = "{:.2e} / {:.2e} / {:.2e}".format(*PYKAN[g])
        rows.append((f"grid {g}", theirs, "{:.2e} / {:.2e} / {:.2e}".format(*ours[g])))
    compare("pde loss / bc loss / l2 (squared)", rows, small)
    return {"model": result.model, "losses": ours, "points": (x_i, x_b)}


def loss_curves(result):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for key, label in (("residual", "PDE loss"), ("bc", "BC loss")):
        ax.plot([h[key] for h in result.history], marker="o", ms=2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("steps")
    ax.legend()
    return fig


if __name__ == "__main__":
    main(**options())
