"""Neural scaling laws of KANs against MLPs on the KAN paper's compositional functions.

Functions (inputs uniform in [-1, 1]^n, float64) and the KAN shapes that represent them:

* ``f1 = exp(sin(pi x) + y^2)``, KAN [2, 1, 1];
* ``xy = x y``, KAN [2, 2, 1];
* ``f4 = exp((sin(pi (x1^2 + x2^2)) + sin(pi (x3^2 + x4^2))) / 2)``, KAN [4, 4, 2, 1];
* ``f100 = exp(mean_i sin^2(pi x_i / 2))`` over 100 inputs, KAN [100, 1, 1].

Each KAN is fitted to 8,000 training points (8,000 fresh test points): 300 Adam steps at the
first grid, then at every grid the knots move to the current activations of the training
points (reaching 5% of their range beyond them, ``kanpiler.physics.grids``), ``refine`` builds
the finer model (the function is kept), and ``kanpiler.physics.least_squares`` runs up to
``--lm-steps`` Levenberg-Marquardt steps with the exact Jacobian (models above
``--lm-max-params`` parameters, or ``--optimizer lbfgs``: ``--steps`` LBFGS steps instead).
MLPs (tanh, widths swept, depth 2 and 3) train with Adam then LBFGS on the same points.
Printed: train / test RMSE per grid (median over seeds), and the exponent alpha of
``RMSE ~ G^-alpha`` (and ``~ params^-alpha``) from a least-squares line in log-log over the
fit range (from G = 5 to the last grid before the RMSE stops falling by 1.5x per step), as
mean +- standard deviation over seeds (f1: ``--seeds``), or with one seed (the other
functions, the MLPs) the fitted slope +- its standard error; the paper's claim is alpha = k + 1.

The default run (``exp(sin(pi x) + y^2)`` for k = 1, 2, 3 with two seeds, and the MLPs; about
ten minutes on a loaded 2-core machine) is what the claim is checked on; the other functions
are options, and ``docs/physics.md`` was produced by
``--functions f1,xy,f4,f100 --mlp-widths 4,8,16,32 --plot docs/img/scaling.png``.

Run: ``OMP_NUM_THREADS=1 python bench/scaling.py [--quick] [--functions f1,xy,f4,f100]
[--seeds 2] [--optimizer lm|lbfgs] [--points 8000] [--plot docs/img/scaling.png]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time

import torch
from torch import nn

from kanpiler.physics import Box, Stage, least_squares, n_params, solve
from kanpiler.physics.grids import update_grid
from kanpiler.runtime import MultKAN

F64 = torch.float64
PI = math.pi
FUNCTIONS = {
    "f1": (2, [2, 1, 1], lambda x: torch.exp(torch.sin(PI * x[:, :1]) + x[:, 1:] ** 2)),
    "xy": (2, [2, 2, 1], lambda x: x[:, :1] * x[:, 1:]),
    "f4": (4, [4, 4, 2, 1], lambda x: torch.exp(
        (torch.sin(PI * (x[:, :1] ** 2 + x[:, 1:2] ** 2)) + torch.sin(PI * (x[:, 2:3] ** 2 + x[:, 3:] ** 2))) / 2
    )),
    "f100": (100, [100, 1, 1], lambda x: torch.exp(torch.sin(PI * x / 2).square().mean(1, keepdim=True))),
}  # fmt: skip


def data(n_in: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=gen, dtype=F64) * 2 - 1


def kan_curve(
    name: str,
    k: int,
    grids: list[int],
    seed: int,
    n: int,
    steps: int,
    optimizer: str = "lm",
    lm_steps: int = 10,
    lm_max_params: int = 1500,
) -> list[dict]:
    """Train one KAN through ``grids``; a row per grid (train / test RMSE, params, seconds).

    300 Adam steps at G = grids[0]; then for every grid: knots to the activations (5% margin),
    ``refine`` (past the first), then ``lm_steps`` Levenberg-Marquardt
    steps (``kanpiler.physics.least_squares``, exact Jacobian) while the model has at most
    ``lm_max_params`` parameters, else ``steps`` LBFGS steps (``optimizer="lbfgs"``: always).
    """
    n_in, width, f = FUNCTIONS[name]
    x, xt = data(n_in, n, 2 * seed), data(n_in, n, 2 * seed + 1)
    y, yt = f(x), f(xt)
    box = Box([-1.0] * n_in, [1.0] * n_in)
    model = MultKAN(width, grid=grids[0], k=k, grid_eps=1.0, dtype=F64, seed=seed)
    start = time.perf_counter()
    # Adam first: LBFGS or LM alone from the random start stalls on [2, 1, 1] (RMSE 0.6)
    res = solve(model, lambda d: d.u - f(d.x), box, points=x,
                stages=[Stage("adam", 300, lr=1e-2)])  # fmt: skip
    model, rows = res.model, []
    for g in grids:
        update_grid(model, x)  # knots to the activations, 5% margin
        if g != model.grid:
            model = model.refine(g, x)
        if optimizer == "lm" and n_params(model) <= lm_max_params:
            least_squares(model, x, y, lm_steps, tolerance=1e-6)
            how = "LM"
        else:
            res = solve(model, lambda d: d.u - f(d.x), box, points=x,
                        stages=[Stage("lbfgs", steps)])  # fmt: skip
            model, how = res.model, "LBFGS"
        with torch.no_grad():
            train = float((model(x) - y).square().mean().sqrt())
            test = float((model(xt) - yt).square().mean().sqrt())
        rows.append({"grid": g, "params": n_params(model), "train": train, "test": test,
                     "seconds": time.perf_counter() - start, "how": how})  # fmt: skip
    return rows


def mlp(widths: list[int], seed: int) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        lin = nn.Linear(a, b, dtype=F64)
        with torch.no_grad():
            nn.init.xavier_uniform_(lin.weight, generator=gen)
            lin.bias.zero_()
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def mlp_point(name: str, hidden: list[int], seed: int, n: int, steps: int) -> dict:
    n_in, _, f = FUNCTIONS[name]
    x, xt = data(n_in, n, 2 * seed), data(n_in, n, 2 * seed + 1)
    model = mlp([n_in, *hidden, 1], seed)
    stages = [Stage("adam", 10 * steps, lr=1e-3), Stage("lbfgs", 2 * steps)]
    res = solve(model, lambda d: d.u - f(d.x), Box([-1.0] * n_in, [1.0] * n_in), points=x,
                stages=stages, test=(xt, f(xt)))  # fmt: skip
    last = res.stages[-1]
    return {"params": n_params(model), "train": math.sqrt(last["residual"]),
            "test": math.sqrt(last["test_mse"]), "seconds": res.seconds}  # fmt: skip


def fit_range(xs: list[float], ys: list[float], first: float) -> tuple[int, int]:
    """Indices [a, b] from the first x >= ``first`` to the last point still falling 1.5x."""
    a = next((i for i, v in enumerate(xs) if v >= first), 0)
    b = a
    while b + 1 < len(ys) and ys[b + 1] < ys[b] / 1.5:
        b += 1
    return a, b


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """The exponent ``-d log y / d log x`` of a least-squares line and its standard error."""
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    b = sum((a - mx) * (c - my) for a, c in zip(lx, ly)) / sxx
    if len(xs) < 3:
        return -b, math.nan
    sse = sum((c - my - b * (a - mx)) ** 2 for a, c in zip(lx, ly))
    return -b, math.sqrt(sse / (len(xs) - 2) / sxx)


def alpha(curves: list[list[dict]], key: str, first: float) -> tuple[float, float, str]:
    """The test-RMSE exponent against ``key``: mean and standard deviation over seeds, or for
    one seed the fitted slope and its standard error."""
    values, errors, ranges = [], [], []
    for rows in curves:
        xs, ys = [r[key] for r in rows], [r["test"] for r in rows]
        a, b = fit_range(xs, ys, first)
        if b > a:
            v, e = slope(xs[a : b + 1], ys[a : b + 1])
            values.append(v)
            errors.append(e)
            ranges.append(f"{xs[a]}-{xs[b]}")
    if not values:
        return math.nan, math.nan, "-"
    spread = statistics.stdev(values) if len(values) > 1 else errors[0]
    return statistics.fmean(values), spread, ",".join(sorted(set(ranges)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--functions", default="f1", help="any of f1,xy,f4,f100")
    ap.add_argument("--ks", default="1,2,3", help="spline orders for f1")
    ap.add_argument("--other-ks", default="1,2,3", help="spline orders for the other functions")
    ap.add_argument("--seeds", type=int, default=2, help="seeds for f1 (others: 1)")
    ap.add_argument("--mlp-functions", default="f1")
    ap.add_argument("--optimizer", default="lm", choices=("lm", "lbfgs"),
                    help="fine grids: Levenberg-Marquardt (default) or LBFGS")  # fmt: skip
    ap.add_argument("--steps", type=int, default=30, help="LBFGS steps per grid")
    ap.add_argument("--lm-steps", type=int, default=10, help="LM steps per grid")
    ap.add_argument("--lm-max-params", type=int, default=1500, help="LBFGS above this size")
    ap.add_argument("--points", type=int, default=8000, help="train and test points each")
    ap.add_argument("--grids", default="3,5,10,20,50,100", help="grids for f1 and xy")
    ap.add_argument("--other-grids", default="3,5,10,20", help="grids for f4 and f100")
    ap.add_argument("--mlp-widths", default="4,8,16")
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    grids = [int(g) for g in args.grids.split(",")]
    other_grids = [int(g) for g in args.other_grids.split(",")]
    if args.quick:
        args.seeds, args.steps, args.lm_steps, args.points = 1, 3, 2, 500
        grids = other_grids = [3, 5, 10]
        args.mlp_widths = "4,8"
    print(f"# {platform.platform()}, torch {torch.__version__}, 1 thread, float64, "
          f"{args.points} train + {args.points} test points, fine grids by {args.optimizer} "
          f"({args.lm_steps} LM steps up to {args.lm_max_params} params, else {args.steps} "
          f"LBFGS steps), seeds 0..{args.seeds - 1}")  # fmt: skip
    start = time.perf_counter()
    summary, plots = [], {}
    for name in args.functions.split(","):
        ks = [int(k) for k in (args.ks if name == "f1" else args.other_ks).split(",")]
        gs = grids if name in ("f1", "xy") else other_grids
        for k in ks:
            seeds = args.seeds if name == "f1" else 1
            curves = [kan_curve(name, k, gs, s, args.points, args.steps, args.optimizer,
                                args.lm_steps, args.lm_max_params) for s in range(seeds)]  # fmt: skip
            print(f"\n## {name}, KAN {FUNCTIONS[name][1]}, k = {k} (median over seeds)\n")
            print("| G | params | train RMSE | test RMSE | optimizer | seconds |")
            print("|---|---|---|---|---|---|")
            for i, row in enumerate(curves[0]):
                tr = statistics.median(c[i]["train"] for c in curves)
                te = statistics.median(c[i]["test"] for c in curves)
                print(f"| {row['grid']} | {row['params']} | {tr:.2e} | {te:.2e} | {row['how']} | "
                      f"{row['seconds']:.0f} |")  # fmt: skip
            sys.stdout.flush()
            a_g = alpha(curves, "grid", 5)
            a_p = alpha(curves, "params", curves[0][1]["params"] if len(curves[0]) > 1 else 0)
            summary.append((name, f"KAN k={k}", a_g, a_p, k + 1))
            plots[f"{name} KAN k={k}"] = curves[0]
        if name in args.mlp_functions.split(","):
            rows = []
            for depth in (2, 3):
                for w in (int(v) for v in args.mlp_widths.split(",")):
                    pts = [mlp_point(name, [w] * depth, 0, args.points, args.steps)]
                    rows.append({"params": pts[0]["params"], "width": w, "depth": depth,
                                 "test": statistics.median(p["test"] for p in pts),
                                 "train": statistics.median(p["train"] for p in pts)})  # fmt: skip
            print(f"\n## {name}, MLP tanh (median over seeds)\n")
            print("| depth | width | params | train RMSE | test RMSE |\n|---|---|---|---|---|")
            for r in rows:
                print(
                    f"| {r['depth']} | {r['width']} | {r['params']} | {r['train']:.2e} | {r['test']:.2e} |"
                )
            for depth in (2, 3):
                curve = [r for r in rows if r["depth"] == depth]
                a_p = alpha([curve], "params", 0)
                summary.append((name, f"MLP depth {depth}", (math.nan, math.nan, "-"), a_p, None))
                plots[f"{name} MLP depth {depth}"] = curve
    print(
        "\n## alpha (test RMSE ~ x^-alpha): mean +- std over seeds, or slope +- its standard error\n"
    )
    print("| function | model | alpha vs G | fit range (G) | alpha vs params | fit range | claim |")
    print("|---|---|---|---|---|---|---|")
    for name, model, (ag, sg, rg), (ap_, sp, rp), claim in summary:
        print(f"| {name} | {model} | {ag:.2f} +- {sg:.2f} | {rg} | {ap_:.2f} +- {sp:.2f} | {rp} | "
              f"{claim if claim else '-'} |")  # fmt: skip
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.plot:
        plot(plots, args.plot)


def plot(curves: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = plt.get_cmap("tab20").colors
    for i, (label, rows) in enumerate(curves.items()):
        style = "o-" if "KAN" in label else "s--"
        xs, ys = [r["params"] for r in rows], [r["test"] for r in rows]
        ax.loglog(xs, ys, style, label=label, ms=3, color=colors[i % len(colors)])
    ax.set_xlabel("parameters")
    ax.set_ylabel("test RMSE")
    ax.set_title("Scaling: test RMSE against parameters")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
