"""Physics-informed KANs against MLPs (and pykan's own recipe) on three PDEs, in one run.

Problems (float64, one thread, ``kanpiler.physics.solve`` with LBFGS + strong Wolfe):

* ``poisson``: Delta u = -2 pi^2 sin(pi x) sin(pi y) on [-1, 1]^2, u = 0 on the boundary,
  solution u = sin(pi x) sin(pi y). Interior: an open ``mesh x mesh`` grid; boundary: 51
  points per side. KAN [2,10,1] and [2,2,1] refined G = 5 -> 10 -> 20 (``--steps`` LBFGS
  steps per grid); the MLP [2,100,100,100,1] (tanh) trains with the same points, loss and
  optimiser for the same wall-clock time as the [2,10,1] KAN. pykan 0.2.8 runs its tutorial
  recipe (Example_7_PDE_accuracy: [2,2,1], 51x51 mesh, pde weight 0.01, grid updates in the
  first 20 steps, float32, its nested ``batch_jacobian`` closure) with ``--pykan-steps``.
* ``heat``: u_t = 0.1 u_xx on x in [-1, 1], t in [0, 1], u(x, 0) = sin(pi x), u(+-1, t) = 0;
  solution exp(-0.1 pi^2 t) sin(pi x).
* ``poisson3d``: Delta u = (r^2 - 3) u on [-1, 1]^3 with u = exp(-r^2 / 2) on the boundary;
  solution exp(-(x^2 + y^2 + z^2) / 2).

Reported per model: trainable parameters, test MSE on a fresh grid (101^2, 51^2 or 21^3
points), H1 error sqrt(mean e^2 + mean |grad e|^2) on the same points, and seconds. A
derivative table times the Laplacian + backward of both engines (Taylor mode and nested
reverse mode) at N = 2500 (median of 5). ``--plot PATH`` writes the loglog error-vs-params
figure (nothing is written otherwise).

Run: ``OMP_NUM_THREADS=1 python bench/pde.py [--quick] [--problems poisson,heat,poisson3d]
[--pykan-steps 50] [--plot docs/img/pde_poisson.png]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import torch
from torch import nn

from kanpiler.physics import Box, Condition, Derivatives, Stage, n_params, solve
from kanpiler.runtime import MultKAN

F64 = torch.float64
PI = math.pi


def mlp(widths: list[int], seed: int) -> nn.Sequential:
    """A tanh MLP with Xavier-uniform weights from a private generator, zero biases."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        lin = nn.Linear(a, b, dtype=F64)
        with torch.no_grad():
            nn.init.xavier_uniform_(lin.weight, generator=gen)
            lin.bias.zero_()
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers[:-1])


# --- problems -------------------------------------------------------------------------------


def poisson(mesh: int):
    box = Box([-1, -1], [1, 1], names=("x", "y"))
    exact = lambda x: torch.sin(PI * x[:, :1]) * torch.sin(PI * x[:, 1:])  # noqa: E731

    def residual(d):
        return d.laplacian() + 2 * PI**2 * exact(d.x)

    side = torch.linspace(-1, 1, 51, dtype=F64)
    one = torch.ones_like(side)
    edges = [torch.stack(p, 1) for p in ((side, -one), (side, one), (-one, side), (one, side))]
    points = box.interior(mesh * mesh, "mesh")
    return box, residual, points, torch.cat(edges), exact, 101


def heat(mesh: int):
    box = Box([-1, 0], [1, 1], names=("x", "t"))
    kappa = 0.1
    exact = lambda x: torch.exp(-kappa * PI**2 * x[:, 1:]) * torch.sin(PI * x[:, :1])  # noqa: E731

    def residual(d):
        return d("t") - kappa * d("x", "x")

    points = box.interior(mesh * mesh, "mesh")
    return box, residual, points, box.boundary(4 * 51, "mesh", exclude=[("t", "high")]), exact, 51


def poisson3d(mesh: int):
    box = Box([-1, -1, -1], [1, 1, 1], names=("x", "y", "z"))
    exact = lambda x: torch.exp(-x.square().sum(1, keepdim=True) / 2)  # noqa: E731

    def residual(d):
        r2 = d.x.square().sum(1, keepdim=True)
        return d.laplacian() - (r2 - 3) * exact(d.x)

    n = max(8, round(mesh ** (2 / 3)))
    points = box.interior(n**3, "mesh")
    return box, residual, points, box.boundary(6 * 11 * 11, "mesh"), exact, 21


PROBLEMS = {"poisson": poisson, "heat": heat, "poisson3d": poisson3d}
MODELS = {
    "poisson": [("KAN [2,10,1]", [2, 10, 1]), ("KAN [2,2,1]", [2, 2, 1])],
    "heat": [("KAN [2,5,1]", [2, 5, 1])],
    "poisson3d": [("KAN [3,3,1]", [3, 3, 1])],
}
MLPS = {
    "poisson": [2, 100, 100, 100, 1],
    "heat": [2, 100, 100, 100, 1],
    "poisson3d": [3, 100, 100, 100, 1],
}


# --- evaluation -------------------------------------------------------------------------------


def test_points(box: Box, per_axis: int) -> torch.Tensor:
    axis = [torch.linspace(float(a), float(b), per_axis, dtype=F64) for a, b in zip(box.lo, box.hi)]
    grids = torch.meshgrid(*axis, indexing="ij")
    return torch.stack([g.flatten() for g in grids], 1)


def errors(model: nn.Module, exact, x: torch.Tensor) -> tuple[float, float]:
    """Test MSE and H1 error ``sqrt(mean e^2 + mean |grad e|^2)``."""
    d = Derivatives(model, x)
    xr = x.clone().requires_grad_(True)
    ue = exact(xr)
    (ge,) = torch.autograd.grad(ue.sum(), xr)
    with torch.no_grad():
        e = d.u - ue.detach()
        ge_model = d.gradient()[:, 0, :]
        mse = float(e.square().mean())
        h1 = math.sqrt(mse + float((ge_model - ge).square().sum(1).mean()))
    return mse, h1


def run_kan(width, grids, steps, problem, weight, seed=0, update=False):
    box, residual, points, edge, exact, per_axis = problem
    model = MultKAN(width, grid=grids[0], k=3, dtype=F64, seed=seed)
    xt = test_points(box, per_axis)
    cond = Condition(edge, value=exact, weight=weight)
    stages = [Stage("lbfgs", steps, grid=g, update_grid=update) for g in grids]
    res = solve(model, residual, box, [cond], points=points, stages=stages, test=(xt, exact(xt)))
    rows = []
    for s in res.stages:
        rows.append({"grid": s["grid"], "params": s["params"], "mse": s["test_mse"],
                     "seconds": s["seconds"]})  # fmt: skip
    mse, h1 = errors(res.model, exact, xt)
    return rows, mse, h1, res.seconds


def run_mlp(widths, seconds, problem, weight, seed=0):
    box, residual, points, edge, exact, per_axis = problem
    model = mlp(widths, seed)
    xt = test_points(box, per_axis)
    cond = Condition(edge, value=exact, weight=weight)
    res = solve(model, residual, box, [cond], points=points, stages=[Stage("lbfgs", 100000)],
                time_limit=seconds)  # fmt: skip
    mse, h1 = errors(res.model, exact, xt)
    return n_params(model), mse, h1, res.seconds, len(res.history)


def run_pykan(steps: int, seed: int = 1):
    """pykan's tutorial recipe, its closure and settings, float32 (its default)."""
    from kan import KAN, LBFGS  # pykan 0.2.8

    def batch_jacobian(func, x, create_graph=False):
        def _func_sum(x):
            return func(x).sum(dim=0)

        return torch.autograd.functional.jacobian(_func_sum, x, create_graph=create_graph).permute(
            1, 0, 2
        )

    sol_fun = lambda x: torch.sin(PI * x[:, [0]]) * torch.sin(PI * x[:, [1]])  # noqa: E731
    source_fun = lambda x: -2 * PI**2 * sol_fun(x)  # noqa: E731
    mesh = torch.linspace(-1, 1, steps=51)
    gx, gy = torch.meshgrid(mesh, mesh, indexing="ij")
    x_i = torch.stack([gx.reshape(-1), gy.reshape(-1)]).permute(1, 0)
    helper = lambda a, b: torch.stack([a.reshape(-1), b.reshape(-1)]).permute(1, 0)  # noqa: E731
    x_b = torch.cat([helper(gx[0], gy[0]), helper(gx[-1], gy[0]), helper(gx[:, 0], gy[:, 0]),
                     helper(gx[:, 0], gy[:, -1])])  # fmt: skip
    alpha, start, rows = 0.01, time.perf_counter(), []
    xt = test_points(Box([-1, -1], [1, 1]), 101).float()
    model = None
    for grid in (5, 10, 20):
        if model is None:
            model = KAN(width=[2, 2, 1], grid=grid, k=3, seed=seed, auto_save=False).speed()
        else:
            model.save_act = True
            model.get_act(x_i)
            try:
                model = model.refine(grid).speed()
            except Exception as err:  # noqa: BLE001 - report pykan's failure, keep the run
                rows.append({"grid": grid, "params": 6 * (grid + 5), "mse": math.nan,
                             "seconds": time.perf_counter() - start,
                             "error": f"refine failed: {type(err).__name__}"})  # fmt: skip
                break
        opt = LBFGS(model.parameters(), lr=1, history_size=10, line_search_fn="strong_wolfe",
                    tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)  # fmt: skip
        for step in range(steps):

            def closure(model=model, opt=opt):
                opt.zero_grad()
                d1 = lambda x: batch_jacobian(model, x, create_graph=True)[:, 0, :]  # noqa: E731
                d2 = batch_jacobian(d1, x_i, create_graph=True)
                lap = torch.sum(torch.diagonal(d2, dim1=1, dim2=2), dim=1, keepdim=True)
                pde = torch.mean((lap - source_fun(x_i)) ** 2)
                bc = torch.mean((model(x_b) - sol_fun(x_b)) ** 2)
                loss = alpha * pde + bc
                loss.backward()
                return loss

            if step % 5 == 0 and step < 20:
                model.update_grid_from_samples(x_i)
            loss = opt.step(closure)
            if not math.isfinite(float(loss)):
                break
        with torch.no_grad():
            mse = float((model(xt) - sol_fun(xt)).square().mean())
            mse_mesh = float((model(x_i) - sol_fun(x_i)).square().mean())  # its notebook's l2
        rows.append({"grid": grid, "params": 2 * 2 * (grid + 5) + 2 * (grid + 5), "mse": mse,
                     "mse_mesh": mse_mesh, "seconds": time.perf_counter() - start})  # fmt: skip
    return rows


# --- derivative engines -------------------------------------------------------------------------


def time_engines(n: int = 2500) -> list[tuple[str, float, float]]:
    x = Box([-1, -1], [1, 1]).interior(n, "uniform", torch.Generator().manual_seed(0))
    models = [("KAN [2,10,1] G=20", MultKAN([2, 10, 1], grid=20, dtype=F64)),
              ("MLP [2,100,100,100,1]", mlp([2, 100, 100, 100, 1], 0))]  # fmt: skip
    rows = []
    for name, model in models:
        times: dict[str, list[float]] = {"taylor": [], "autograd": []}
        for _ in range(5):
            for method in times:  # round-robin: both see the same machine load
                start = time.perf_counter()
                d = Derivatives(model, x, method=method)
                d.laplacian().square().mean().backward()
                times[method].append(time.perf_counter() - start)
        rows.append(
            (name, statistics.median(times["taylor"]), statistics.median(times["autograd"]))
        )
    return rows


# --- report -------------------------------------------------------------------------------------


def table(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}\n")
    print("| model | params | test MSE | H1 error | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2e} | {r[3]} | {r[4]:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--problems", default="poisson,heat,poisson3d")
    ap.add_argument("--steps", type=int, default=50, help="LBFGS steps per grid")
    ap.add_argument("--mesh", type=int, default=40, help="interior points per axis (2-D)")
    ap.add_argument("--weight", type=float, default=1000.0, help="boundary/initial weight")
    ap.add_argument("--pykan-steps", type=int, default=50, help="0 skips pykan")
    ap.add_argument("--pykan-only", action="store_true", help="only pykan's recipe")
    ap.add_argument("--kan-only", default=None, help="only this KAN width, e.g. 2,2,1 (no MLP)")
    ap.add_argument("--update-grid", action="store_true", help="KAN knots follow activations")
    ap.add_argument("--no-engines", action="store_true", help="skip the derivative timing")
    ap.add_argument("--plot", default=None, help="write the loglog figure here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.steps, args.mesh, args.pykan_steps = 3, 12, 1
    print(f"# {platform.platform()}, torch {torch.__version__}, 1 thread, float64, "
          f"steps/grid {args.steps}, mesh {args.mesh}, boundary weight {args.weight}")  # fmt: skip
    grids = (5, 10, 20)
    curves = {}
    for name in args.problems.split(","):
        problem = PROBLEMS[name](args.mesh)
        rows, budget = [], None
        models = [] if args.pykan_only else MODELS[name]
        if args.kan_only:
            width = [int(v) for v in args.kan_only.split(",")]
            models = [(f"KAN {width}".replace(" ", ""), width)]
        for label, width in models:
            stages, mse, h1, secs = run_kan(
                width, grids, args.steps, problem, args.weight, update=args.update_grid
            )
            budget = budget or secs
            curves[label] = stages
            for s in stages[:-1]:
                rows.append((f"{label} G={s['grid']}", s["params"], s["mse"], "", s["seconds"]))
            rows.append((f"{label} G={stages[-1]['grid']}", stages[-1]["params"], mse,
                         f"{h1:.2e}", secs))  # fmt: skip
        if not (args.pykan_only or args.kan_only):
            widths = MLPS[name]
            params, mse, h1, secs, steps = run_mlp(widths, budget, problem, args.weight)
            curves[f"MLP {widths}"] = [{"params": params, "mse": mse}]
            label = f"MLP {widths} tanh, {steps} LBFGS steps"
            rows.append((label, params, mse, f"{h1:.2e}", secs))
        if name == "poisson" and args.pykan_steps > 0 and not args.kan_only:
            for s in run_pykan(args.pykan_steps):
                note = f" ({s['error']})" if "error" in s else ""
                mesh = f" (on its mesh: {s['mse_mesh']:.2e})" if "mse_mesh" in s else ""
                rows.append((f"pykan [2,2,1] tutorial G={s['grid']}{note}{mesh}", s["params"],
                             s["mse"], "", s["seconds"]))  # fmt: skip
                curves.setdefault("pykan [2,2,1] tutorial", []).append(s)
        table(f"## {name}", rows)
    if not args.no_engines:
        print("\n## Laplacian + backward, N = 2500, median of 5 (seconds)\n")
        print("| model | Taylor mode | nested reverse | reverse / Taylor |\n|---|---|---|---|")
        for name, t_taylor, t_rev in time_engines():
            print(f"| {name} | {t_taylor:.3f} | {t_rev:.3f} | {t_rev / t_taylor:.2f} |")
    if args.plot:
        plot(curves, args.plot)
    points = {k: [{"params": p["params"], "mse": p["mse"]} for p in v] for k, v in curves.items()}
    print(json.dumps(points))  # the figure's data, to merge runs


def plot(curves: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, pts in curves.items():
        ax.loglog([p["params"] for p in pts], [p["mse"] for p in pts], "o-", label=label)
    ax.set_xlabel("parameters")
    ax.set_ylabel("test MSE")
    ax.set_title("Poisson 2-D: error against parameters")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
