"""The KAN paper's grid-extension experiment with kanpiler's runtime.

A [2, 5, 1] MultKAN fits f(x, y) = exp(sin(pi*x) + y**2) on 1000 training and 1000 test points
drawn uniformly from [-1, 1]^2, in float64, with LBFGS; after each stage the splines are
extended to a finer grid (3 -> 5 -> 10 -> 20 -> 50 -> 100 intervals) by
``model.refine(G, x)``, which keeps the learned function, and training continues. Printed per
grid: train and test RMSE, the number of trainable parameters and the stage's wall time.

Run: ``OMP_NUM_THREADS=2 python bench/grid_extension.py [--steps 200] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from kanpiler.runtime import MultKAN
from kanpiler.runtime.train import rmse


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="LBFGS steps per grid")
    parser.add_argument("--grids", default="3,5,10,20,50,100")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument(
        "--grid-eps", type=float, default=0.02, help="0: quantile grids, 1: uniform"
    )
    parser.add_argument("--n-test", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.n_train, 2, generator=gen, dtype=torch.float64) * 2 - 1
    x_test = torch.rand(args.n_test, 2, generator=gen, dtype=torch.float64) * 2 - 1
    y, y_test = target(x), target(x_test)
    grids = [int(g) for g in args.grids.split(",")]
    print("grid extension: [2,5,1] MultKAN, exp(sin(pi*x) + y^2), float64, LBFGS,")
    print(
        f"{args.steps} steps per grid, {args.n_train} train / {args.n_test} test points, "
        f"{args.threads} thread(s)"
    )
    print(f"{'grid':>5} {'train RMSE':>12} {'test RMSE':>12} {'params':>7} {'seconds':>8}")
    model = MultKAN(
        [2, 5, 1], grid=grids[0], k=3, seed=args.seed, dtype=torch.float64, grid_eps=args.grid_eps
    )
    for pos, grid in enumerate(grids):
        t0 = time.perf_counter()
        if pos:
            model = model.refine(grid, x)
        model.fit(x, y, steps=args.steps, stop_grid_update_step=min(50, args.steps), progress=False)
        seconds = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(
            f"{grid:>5} {rmse(model, x, y):>12.3e} {rmse(model, x_test, y_test):>12.3e} "
            f"{params:>7} {seconds:>8.1f}"
        )


if __name__ == "__main__":
    main()
