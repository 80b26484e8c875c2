"""Compile time, exactness and layout size: kanpiler vs pykan 0.2.8's kanpiler on the corpus.

Method: every formula of ``tests/data/*.csv`` whose SymPy reference is real and finite on 64
random points of its box. Each compiler gets the same formula (kanpiler the text and the
variable list, pykan SymPy's reading of it) and compiles it ``--repeat`` times after one warm-up
call; the time per formula is the median of those, and the table shows the median over formulas.
A model is *exact* when it matches the reference to ``1e-4 * (1 + |ref|)`` in its own dtype
(float32 for both) on the points. Sizes: KAN layers, active (symbolic or spline) edges, and the
model's trainable numbers (``numel`` of its parameters).

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

import kanpiler  # noqa: E402
from corpus import real_rows  # noqa: E402


def timed(fn, repeat: int):  # noqa: ANN001, ANN201
    result = fn()  # warm-up (and the result we check)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def exact(model, X: np.ndarray, y: np.ndarray) -> bool:  # noqa: ANN001
    with torch.no_grad():
        got = model(torch.tensor(X, dtype=torch.float32)).double().numpy()[:, 0]
    return bool(np.all(np.abs(got - y) <= 1e-4 * (1 + np.abs(y))))


def n_params(model) -> int:  # noqa: ANN001
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def kanpiler_row(row, X, y, repeat: int) -> dict:  # noqa: ANN001
    def build():  # noqa: ANN202
        return kanpiler.compile(row.formula, list(row.variables))

    model, t = timed(build, repeat)
    lay = model.layout
    return {
        "time": t,
        "exact": exact(model, X, y),
        "layers": lay.depth,
        "edges": lay.n_edges,
        "params": n_params(model),
        "layout_params": lay.n_params,
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
        model, t = timed(build, repeat)
    except Exception as err:  # pykan crashes on many formulas: count them
        return {"crash": type(err).__name__}
    try:
        ok = exact(model, X, y)
    except Exception as err:
        return {"crash": type(err).__name__}
    edges = sum(int((s.mask != 0).sum()) for s in model.symbolic_fun)
    return {"time": t, "exact": ok, "layers": model.depth, "edges": edges, "params": n_params(model)}


def summary(name: str, res: list[dict]) -> str:
    ok = [r for r in res if "crash" not in r]
    med = lambda key: statistics.median(r[key] for r in ok) if ok else float("nan")  # noqa: E731
    return (
        f"{name:9s} exact {sum(r['exact'] for r in ok):3d}/{len(res)}  crashes "
        f"{len(res) - len(ok):3d}  median compile {1e3 * med('time'):6.2f} ms  "
        f"median layers {med('layers'):4.1f}  edges {med('edges'):5.1f}  params {med('params'):7.0f}"
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
            fewer = sum(a["layers"] <= b["layers"] for a, b in both)
            print(f"speed-up (median per-formula ratio pykan/kanpiler): {ratio:.1f}x; "
                  f"kanpiler has <= layers on {fewer}/{len(both)} formulas pykan compiles")  # fmt: skip
            tot = lambda rs, k: sum(r[k] for r in rs)  # noqa: E731
            print(f"totals on those: layers {tot([a for a, _ in both], 'layers')} vs "
                  f"{tot([b for _, b in both], 'layers')}, edges "
                  f"{tot([a for a, _ in both], 'edges')} vs {tot([b for _, b in both], 'edges')}, "
                  f"params {tot([a for a, _ in both], 'params')} vs {tot([b for _, b in both], 'params')}")  # fmt: skip
    slow = max(ours, key=lambda r: r["time"])
    print(f"kanpiler slowest formula: {1e3 * slow['time']:.1f} ms ({slow['edges']} edges)")


if __name__ == "__main__":
    main()
