"""Every edge basis against the dense-matmul floor and against its own reference code.

Method. *Speed*: forward + backward (loss = sum of outputs; gradients for the input and all
parameters) of one layer at 64->64 (batch 4096) and 256->256 (batch 1024), median of
``--repeats`` rounds after 3 warm-up rounds, timed round-robin in one process (one step of
each method per round, so a change of machine load hits all alike). The *floor* of a basis
is the dense product its layer needs, ``(N, in*(nb+1)) @ (in*(nb+1), out)`` with ``nb`` its
number of basis functions (plus the base column), forward and backward on a precomputed
feature matrix that requires grad; ratios are to it. The reference layers are the variants'
own code, copied into ``ref/<name>/`` (git-ignored; see ``bench/README.md``), skipped when
absent. *Accuracy*: test RMSE on the KAN paper's functions (1000 train / 1000 test points,
inputs uniform in [-1, 1]) after the same L-BFGS schedule for every model, median over
``--seeds`` seeds, with the number of trainable parameters of each model.

Run: ``OMP_NUM_THREADS=2 python bench/bases.py [--part speed|accuracy|all] [--plot out.png]``.
Nothing is written unless ``--plot`` is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import platform
import re
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from kanpiler.runtime import KANLayer, MultKAN
from kanpiler.runtime.bases import GRKAN

REF = Path(__file__).resolve().parent.parent / "ref"

#: name -> (kanpiler basis name, options); sizes give about 8 functions per edge
BASES: dict[str, tuple[str, dict]] = {
    "bspline": ("bspline", {}),
    "chebyshev": ("chebyshev", {"degree": 7}),
    "fourier": ("fourier", {"frequencies": 4}),
    "rbf": ("rbf", {"centers": 8}),
    "mexican_hat": ("mexican_hat", {"centers": 8}),
    "morlet": ("morlet", {"centers": 8}),
    "dog": ("dog", {"centers": 8}),
    "relu_kan": ("relu_kan", {"grid": 5, "k": 3}),
    "bsrbf": ("bsrbf", {"grid": 5, "k": 3}),
    "rational": ("rational", {"groups": 8}),
}


def load_ref(folder: str, filename: str) -> types.ModuleType | None:
    """Import ``ref/<folder>/<filename>`` (missing optional imports are stubbed)."""
    path = REF / folder / filename
    if not path.is_file():
        return None
    for name in ("torchvision", "torchvision.transforms", "tqdm", "pandas"):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.tqdm = lambda x, **kw: x  # type: ignore[attr-defined]
            sys.modules[name] = stub
    spec = importlib.util.spec_from_file_location(f"ref_{folder}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Scaled(nn.Module):
    """A reference layer fed ``(x + 1) / 2`` (ReLU-KAN's grid covers [0, 1])."""

    def __init__(self, inner: nn.Module, unsqueeze: bool = False) -> None:
        super().__init__()
        self.inner, self.unsqueeze = inner, unsqueeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(((x + 1) / 2).unsqueeze(-1) if self.unsqueeze else (x + 1) / 2)
        return y.reshape(x.shape[0], -1)


class _KatRef(nn.Module):
    """KAT's torch group-rational (reference) followed by a linear map."""

    def __init__(self, mod: types.ModuleType, n_in: int, n_out: int) -> None:
        super().__init__()
        groups = max(g for g in range(1, 9) if n_in % g == 0)  # it needs equal groups
        self.act = mod.KAT_Group_Torch(num_groups=groups, mode="identity")
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.act(x.unsqueeze(0)).squeeze(0))


def ref_layer(name: str, n_in: int, n_out: int, match: bool = False) -> nn.Module | None:
    """The reference implementation's layer, or None when its code is absent. Sizes give
    about 8 functions per edge; with ``match``, each reference's size is raised so that its
    parameters per edge equal kanpiler's (8 coefficients + ``w_b`` + ``w_s`` = 10)."""
    if name == "chebyshev" and (m := load_ref("chebykan", "ChebyKANLayer.py")):
        return m.ChebyKANLayer(n_in, n_out, 9 if match else 7)
    if name == "fourier" and (m := load_ref("fourierkan", "fftKAN.py")):
        return m.NaiveFourierKANLayer(n_in, n_out, 5 if match else 4)
    if name == "rbf" and (m := load_ref("fastkan", "fastkan.py")):
        return m.FastKANLayer(n_in, n_out, num_grids=9 if match else 8, use_layernorm=False)
    if name in ("mexican_hat", "morlet", "dog") and (m := load_ref("wavkan", "KAN.py")):
        return m.KANLinear(n_in, n_out, wavelet_type=name)  # 4 per edge; no size to raise
    if name == "relu_kan" and (m := load_ref("relu_kan", "torch_relu_kan.py")):
        return _Scaled(m.ReLUKANLayer(n_in, 7 if match else 5, 3, n_out), unsqueeze=True)
    if name == "bsrbf" and (m := load_ref("bsrbf_kan", "bsrbf_kan.py")):
        layer = m.BSRBF_KANLayer(n_in, n_out, grid_size=6 if match else 5, spline_order=3)
        layer.layernorm = nn.Identity()  # regression inputs are already in range
        return layer
    if name == "rational" and (m := load_ref("rational_kat", "kat_1dgroup_torch.py")):
        return _KatRef(m, n_in, n_out)
    return None


def our_layer(name: str, n_in: int, n_out: int) -> nn.Module:
    basis, opts = BASES[name]
    if name == "rational":
        return GRKAN(n_in, n_out, groups=8)
    return KANLayer(n_in, n_out, basis=basis, **opts)


def n_features(layer: nn.Module) -> int:
    """Features per input of the layer's matrix product (basis functions + base column)."""
    if isinstance(layer, GRKAN):
        return 1
    return layer.basis.n_basis + 1


# --- speed -------------------------------------------------------------------------------


def timed_round_robin(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(repeats + 3):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            if r >= 3:
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _step(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).sum().backward()

    return step


def speed(repeats: int, names: list[str] | None = None) -> list[tuple]:
    rows = []
    for n_in, n_out, batch in [(64, 64, 4096), (256, 256, 1024)]:
        for name in names or BASES:
            ours = our_layer(name, n_in, n_out)
            nf = n_features(ours)
            feats = torch.rand(batch, n_in * nf, requires_grad=True)
            weight = torch.rand(n_in * nf, n_out, requires_grad=True)
            x = (torch.rand(batch, n_in) * 2 - 1).requires_grad_()

            def floor(feats=feats, weight=weight) -> None:
                feats.grad = weight.grad = None
                (feats @ weight).sum().backward()

            steps = {"floor": floor, "kanpiler": _step(ours, x)}
            ref = ref_layer(name, n_in, n_out) if name != "bspline" else None
            if ref is not None:
                steps["reference"] = _step(ref, x)
            t = timed_round_robin(steps, repeats)
            rows.append((f"{n_in}->{n_out}", name, t["floor"], t["kanpiler"] / t["floor"],
                         t["reference"] / t["floor"] if "reference" in t else None))  # fmt: skip
            print(f"  {n_in}->{n_out} {name:12s} floor {t['floor'] * 1e3:7.2f} ms  "
                  f"kanpiler {t['kanpiler'] / t['floor']:.2f}x"
                  + (f"  reference {t['reference'] / t['floor']:.2f}x" if ref else ""),
                  flush=True)  # fmt: skip
    return rows


# --- accuracy ----------------------------------------------------------------------------


def _j0(x: torch.Tensor) -> torch.Tensor:
    return torch.special.bessel_j0(20 * x[:, :1])


FUNCTIONS: dict[str, tuple[int, list[int], Callable[[torch.Tensor], torch.Tensor]]] = {
    "exp(sin(pi x)+y^2)": (2, [2, 5, 1],
                           lambda x: torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2)),
    "x*y": (2, [2, 5, 1], lambda x: x[:, :1] * x[:, 1:2]),
    "4-D exp(sin+sin)": (4, [4, 4, 2, 1], lambda x: torch.exp(0.5 * (
        torch.sin(math.pi * (x[:, :1] ** 2 + x[:, 1:2] ** 2))
        + torch.sin(math.pi * (x[:, 2:3] ** 2 + x[:, 3:4] ** 2))))),
    "100-D exp(mean sin^2)": (100, [100, 1, 1], lambda x: torch.exp(
        torch.sin(math.pi * x / 2).pow(2).mean(1, keepdim=True))),
    "J0(20x)": (1, [1, 1], _j0),
}  # fmt: skip


class RefNet(nn.Module):
    """A stack of reference layers of the given widths."""

    def __init__(self, name: str, width: list[int]) -> None:
        super().__init__()
        layers = [ref_layer(name, a, b, match=True) for a, b in zip(width[:-1], width[1:])]
        self.layers = nn.ModuleList(layers) if all(layers) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def mlp(width: list[int], n_params: int) -> nn.Module:
    """A tanh MLP with the depth of ``width`` and hidden sizes giving about ``n_params``."""
    depth = len(width) - 1
    best = None
    for h in range(1, 400):
        sizes = [width[0]] + [h] * (depth - 1 if depth > 1 else 1) + [width[-1]]
        count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        if best is None or abs(count - n_params) < abs(best[1] - n_params):
            best = (sizes, count)
    sizes = best[0]
    mods: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [nn.Linear(a, b, dtype=torch.float64), nn.Tanh()]
    return nn.Sequential(*mods[:-1])


def trainable(model: nn.Module) -> int:
    """Trainable parameters that shape the function (a MultKAN's numeric edges and bases; its
    symbolic branch is off here)."""
    params = model.layers.parameters() if isinstance(model, MultKAN) else model.parameters()
    return sum(p.numel() for p in params if p.requires_grad)


def train_rmse(model: nn.Module, data, steps: int) -> float:
    """The same L-BFGS schedule for every model; test RMSE (inf if training diverged)."""
    x, y, xt, yt = data
    model = model.double()
    opt = torch.optim.LBFGS([p for p in model.parameters() if p.requires_grad], lr=1,
                            max_iter=10, history_size=10, line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    model.eval()
    with torch.no_grad():
        err = float((model(xt) - yt).pow(2).mean().sqrt())
    return err if math.isfinite(err) else float("inf")


def accuracy(
    seeds: int, steps: int, chosen: list[int] | None = None, names: list[str] | None = None
) -> list[tuple]:
    rows = []
    for index, (fname, (dim, width, fn)) in enumerate(FUNCTIONS.items()):
        if chosen is not None and index not in chosen:
            continue
        for name in names or [*BASES, "mlp"]:
            errs, refs, counts = [], [], [0, 0]
            for seed in range(seeds):
                gen = torch.Generator().manual_seed(seed)
                x, xt = (torch.rand(1000, dim, generator=gen, dtype=torch.float64) * 2 - 1
                         for _ in range(2))  # fmt: skip
                data = (x, fn(x), xt, fn(xt))
                torch.manual_seed(seed)  # the reference layers draw from the global RNG
                if name == "mlp":
                    model = mlp(width, trainable(MultKAN(width, dtype=torch.float64)))
                else:
                    basis, opts = BASES[name]
                    model = MultKAN(width, basis=basis, seed=seed, dtype=torch.float64, **opts)
                counts[0] = trainable(model)
                errs.append(train_rmse(model, data, steps))
                ref = RefNet(name, width) if name not in ("bspline", "mlp") else None
                if ref is not None and ref.layers is not None:
                    counts[1] = trainable(ref)
                    refs.append(train_rmse(ref, data, steps))
            med = statistics.median(errs)
            rmed = statistics.median(refs) if refs else None
            rows.append((fname, name, counts[0], med, counts[1] or None, rmed))
            print(f"  {fname:22s} {name:12s} params {counts[0]:5d} rmse {med:.2e}"
                  + (f"   reference params {counts[1]:5d} rmse {rmed:.2e} ({med / rmed:.2f}x)"
                     if rmed else ""), flush=True)  # fmt: skip
    return rows


def plot(rows: list[tuple], path: str) -> None:
    """Test RMSE against trainable parameters: one panel per function, one line (or point)
    per basis in kanpiler, grey crosses for the reference implementations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fnames = list(dict.fromkeys(r[0] for r in rows))
    names = list(dict.fromkeys(r[1] for r in rows))
    colors = {n: plt.get_cmap("tab20")(i % 20) for i, n in enumerate(names)}
    cols = min(3, len(fnames) + 1)
    n_rows = -(-(len(fnames) + 1) // cols)
    fig, grid = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 3.6 * n_rows), squeeze=False)
    axes = list(grid.flat)
    for ax, fname in zip(axes, fnames):
        for name in names:
            pts = sorted((r[2], r[3]) for r in rows if r[0] == fname and r[1] == name)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="s" if name == "mlp" else "o", color=colors[name],
                        label=name, ms=5)  # fmt: skip
            refs = [(r[4], r[5]) for r in rows if r[0] == fname and r[1] == name and r[5]]
            for rn, rerr in refs:
                ax.scatter(rn, rerr, marker="x", color=colors[name])
        ax.set(xscale="log", yscale="log", title=fname, xlabel="trainable parameters",
               ylabel="test RMSE")  # fmt: skip
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[len(fnames) :]:
        ax.axis("off")
    axes[-1].legend(handles, labels, loc="center", title="o kanpiler, x reference code")
    fig.tight_layout()
    fig.savefig(path)


def sized(name: str, size: int) -> dict:
    """Options giving about ``size`` functions per edge (rational: order ``(size // 2,
    size // 2 - 1)``, its one shared function per group growing instead)."""
    return {
        "rational": {"order": (size // 2, size // 2 - 1)},
        "bspline": {"grid": size - 3},
        "chebyshev": {"degree": size - 1},
        "fourier": {"frequencies": max(1, (size - 1) // 2)},
        "rbf": {"centers": size},
        "mexican_hat": {"centers": size},
        "morlet": {"centers": size},
        "dog": {"centers": size},
        "relu_kan": {"grid": size - 3},
        "bsrbf": {"grid": size - 3},
    }.get(name, {})


def sweep(
    seeds: int, steps: int, sizes: tuple[int, ...] = (4, 6, 10, 16),
    names: list[str] | None = None,
) -> list[tuple]:  # fmt: skip
    """Test RMSE against parameters on the first function, every basis at several sizes."""
    fname, (dim, width, fn) = next(iter(FUNCTIONS.items()))
    rows = []
    for name in names or [*BASES, "mlp"]:
        for size in sizes:
            errs, count = [], 0
            for seed in range(seeds):
                gen = torch.Generator().manual_seed(seed)
                x, xt = (torch.rand(1000, dim, generator=gen, dtype=torch.float64) * 2 - 1
                         for _ in range(2))  # fmt: skip
                if name == "mlp":
                    ref = MultKAN(width, grid=size - 3, dtype=torch.float64)
                    with torch.random.fork_rng():
                        torch.manual_seed(seed)
                        model = mlp(width, trainable(ref))
                else:
                    model = MultKAN(width, basis=BASES[name][0], seed=seed, dtype=torch.float64,
                                    **sized(name, size))  # fmt: skip
                count = trainable(model)
                errs.append(train_rmse(model, (x, fn(x), xt, fn(xt)), steps))
            rows.append((fname, name, count, statistics.median(errs), None, None))
            print(f"  {fname:22s} {name:12s} params {count:5d} rmse {rows[-1][3]:.2e}", flush=True)
    return rows


ROW = re.compile(
    r"^  (?P<f>.+?)\s{2,}(?P<name>\w+)\s+params\s+(?P<n>\d+) rmse (?P<e>\S+)"
    r"(?:\s+reference params\s+(?P<rn>\d+) rmse (?P<re>\S+))?"
)


def read_rows(paths: list[str]) -> list[tuple]:
    """Accuracy rows parsed back from this script's printed output (``--replot``)."""
    rows: dict[tuple[str, str, int], tuple] = {}  # a later log replaces an earlier row
    for path in paths:
        for line in Path(path).read_text().splitlines():
            m = ROW.match(line)
            if m:
                rn, re_ = m["rn"], m["re"]
                key = (m["f"].strip(), m["name"], int(m["n"]))
                rows[key] = (*key, float(m["e"]),
                             int(rn) if rn else None, float(re_) if re_ else None)  # fmt: skip
    return list(rows.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["speed", "accuracy", "sweep", "all"], default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--plot", default=None, help="write the RMSE-vs-parameters plot here")
    ap.add_argument("--functions", default=None, help="comma-separated indices into FUNCTIONS")
    ap.add_argument("--bases", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--replot", nargs="+", default=None, help="plot from saved output logs")
    args = ap.parse_args()
    if args.replot:
        plot(read_rows(args.replot), args.plot or "bases_rmse.png")
        return
    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, references in {REF} "
          f"({'present' if REF.is_dir() else 'absent'})")  # fmt: skip
    if args.part in ("speed", "all"):
        print("## speed (forward+backward, ratio to each basis's dense floor)")
        speed(args.repeats, None if args.bases is None else args.bases.split(","))
    if args.part in ("accuracy", "all"):
        print(f"## accuracy (test RMSE, median of {args.seeds} seeds, {args.steps} L-BFGS steps)")
        chosen = None if args.functions is None else [int(i) for i in args.functions.split(",")]
        names = None if args.bases is None else args.bases.split(",")
        rows = accuracy(args.seeds, args.steps, chosen, names)
        if args.plot:
            plot(rows, args.plot)
    if args.part == "sweep":
        print(f"## sweep (test RMSE vs parameters, median of {args.seeds} seeds)")
        names = None if args.bases is None else args.bases.split(",")
        rows = sweep(args.seeds, args.steps, names=names)
        if args.plot:
            plot(rows, args.plot)


if __name__ == "__main__":
    main()
