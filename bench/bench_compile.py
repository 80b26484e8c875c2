"""Compile time, exactness and layout size: kanpiler vs pykan 0.2.8's kanpiler on the corpus.

Method: every formula of ``tests/data/*.csv`` whose SymPy reference is real and finite on 64
random points of its box. Each compiler gets the same formula (kanpiler the text and the
variable list, pykan SymPy's reading of it) and compiles it ``--repeat`` times after one warm-up
call; the time per formula is the median of those (wall clock, and the process's CPU time,
which a busy shared machine disturbs less), and the table shows the median over formulas.
A model is *exact* when it matches the reference to ``1e-4 * (1 + |ref|)`` in its own dtype
(float32 for both) on the points. Sizes: KAN layers, active (symbolic or spline) edges, and the
edge slots of the dense module (sum of in*out over KAN layers: what every forward pass and
every spline parameter scales with).

    python bench/bench_compile.py            # both compilers (pykan if installed)
    python bench/bench_compile.py --repeat 5 --limit 50

pykan: ``pip install --no-deps pykan==0.2.8 && pip install scikit-learn pandas pyyaml`` (never
let pip resolve pykan's own requirements: it would replace the installed torch).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from corpus import real_rows  # noqa: E402

import kanpiler  # noqa: E402


def timed(fn, repeat: int):  # noqa: ANN001, ANN201
    """``(result, median wall seconds, median CPU seconds)`` over ``repeat`` calls."""
    result = fn()  # warm-up (and the result we check)
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return result, statistics.median(wall), statistics.median(cpu)


def exact(model, X: np.ndarray, y: np.ndarray) -> bool:  # noqa: ANN001
    with torch.no_grad():
        got = model(torch.tensor(X, dtype=torch.float32)).double().numpy()[:, 0]
    return bool(np.all(np.abs(got - y) <= 1e-4 * (1 + np.abs(y))))


def kanpiler_row(row, X, y, repeat: int) -> dict:  # noqa: ANN001
    def build():  # noqa: ANN202
        return kanpiler.compile(row.formula, list(row.variables))

    model, t, cpu = timed(build, repeat)
    lay = model.layout
    return {
        "time": t,
        "cpu": cpu,
        "exact": exact(model, X, y),
        "layers": lay.depth,
        "edges": lay.n_edges,
        "slots": sum(s.mask.numel() for s in model.symbolic),
    }


def pykan_row(row, X, y, repeat: int) -> dict:  # noqa: ANN001
    import sympy
    from kan.compiler import kanpiler as pykan_compile

    syms = [sympy.Symbol(v) for v in row.variables]

    def build():  # noqa: ANN202
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pykan_compile(syms, row.sympy_expr, auto_save=False)

    try:
        model, t, cpu = timed(build, repeat)
    except Exception as err:  # pykan crashes on many formulas: count them
        return {"crash": type(err).__name__}
    try:
        ok = exact(model, X, y)
    except Exception as err:
        return {"crash": type(err).__name__}
    edges = sum(
        (name != "0") * int(s.mask[j, i] != 0)
        for s in model.symbolic_fun
        for j, row in enumerate(s.funs_name)
        for i, name in enumerate(row)
    )
    slots = sum(s.mask.numel() for s in model.symbolic_fun)
    return {
        "time": t, "cpu": cpu, "exact": ok, "layers": model.depth, "edges": edges, "slots": slots
    }  # fmt: skip


def summary(name: str, res: list[dict]) -> str:
    ok = [r for r in res if "crash" not in r]
    med = lambda key: statistics.median(r[key] for r in ok) if ok else float("nan")  # noqa: E731
    return (
        f"{name:9s} exact {sum(r['exact'] for r in ok):3d}/{len(res)}  crashes "
        f"{len(res) - len(ok):3d}  median compile {1e3 * med('time'):6.2f} ms (CPU {1e3 * med('cpu'):5.2f})  "
        f"median layers {med('layers'):4.1f}  edges {med('edges'):5.1f}  slots {med('slots'):5.0f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="only the first N formulas")
    args = ap.parse_args()
    torch.set_num_threads(1)
    kept, skipped = real_rows(64, seed=0)
    if args.limit:
        kept = kept[: args.limit]
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}, 1 thread")  # fmt: skip
    print(f"formulas: {len(kept)} real-valued ({len(skipped)} skipped: reference not real)")
    try:
        import kan  # noqa: F401

        have_pykan = True
    except ImportError:
        have_pykan = False
        print("pykan not installed: kanpiler only")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # pykan writes checkpoints into the working directory
        try:
            for row, X, y in kept:
                ours.append(kanpiler_row(row, X, y, args.repeat))
                if have_pykan:
                    theirs.append(pykan_row(row, X, y, args.repeat))
        finally:
            os.chdir(cwd)
    print(summary("kanpiler", ours))
    if have_pykan:
        print(summary("pykan", theirs))
        both = [(a, b) for a, b in zip(ours, theirs) if "crash" not in b]
        if both:
            ratio = statistics.median(b["time"] / a["time"] for a, b in both)
            mine = statistics.median(a["time"] for a, _ in both)
            theirs_t = statistics.median(b["time"] for _, b in both)
            print(f"on the {len(both)} formulas pykan compiles: median {1e3 * mine:.2f} ms vs "
                  f"{1e3 * theirs_t:.2f} ms; median per-formula speed-up {ratio:.1f}x")  # fmt: skip
        right = [(a, b) for a, b in both if a["exact"] and b["exact"]]
        if right:
            tot = lambda i, k: sum(pair[i][k] for pair in right)  # noqa: E731
            fewer = sum(a["layers"] <= b["layers"] for a, b in right)
            print(f"on the {len(right)} formulas both compile exactly: kanpiler has <= layers on "
                  f"{fewer}; totals kanpiler vs pykan: layers {tot(0, 'layers')} vs "
                  f"{tot(1, 'layers')}, edges {tot(0, 'edges')} vs {tot(1, 'edges')}, "
                  f"edge slots {tot(0, 'slots')} vs {tot(1, 'slots')}")  # fmt: skip
    slow = max(ours, key=lambda r: r["time"])
    print(f"kanpiler slowest formula: {1e3 * slow['time']:.1f} ms ({slow['edges']} edges)")


if __name__ == "__main__":
    main()
