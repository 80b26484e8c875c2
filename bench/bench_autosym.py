"""Symbolic fitting time: kanpiler.auto_symbolic against pykan 0.2.8's auto_symbolic.

Same task for both: a [2, 5, 1] KAN (15 spline edges, grid 5, k 3, float32) evaluated on 1000
samples of [-1, 1]^2, every edge fitted against the library with its affine wrapper.

pykan's auto_symbolic calls suggest_symbolic on each edge, which fits every library function
by a 101 x 101 grid search over (a, b) on the whole batch; that takes minutes on CPU. By
default this script times pykan on ``--pykan-edges`` edges (suggest_symbolic, the per-edge
work of auto_symbolic) and extrapolates to 15 edges, saying so; ``--full`` times pykan's whole
auto_symbolic instead. kanpiler is timed over whole runs (median of ``--repeat``).

    python bench/bench_autosym.py [--threads 2] [--repeat 3] [--pykan-edges 2] [--full]

Nothing is written to disk (pykan's checkpoints are switched off). Never gates CI on a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def bench_kanpiler(x: torch.Tensor, repeat: int) -> tuple[float, int]:
    from kanpiler.convert import auto_symbolic
    from kanpiler.runtime import MultKAN

    times = []
    for _ in range(repeat):
        model = MultKAN([2, 5, 1], grid=5, k=3, seed=0)
        start = time.perf_counter()
        report = auto_symbolic(model, x=x, progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times), report.n_functions


def bench_pykan(x: torch.Tensor, edges: int, full: bool) -> tuple[float, str, int] | None:
    try:
        from kan import MultKAN as PykanKAN
        from kan.utils import SYMBOLIC_LIB
    except ImportError:
        return None
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:  # pykan may still create folders: keep them out
        os.chdir(tmp)
        try:
            model = PykanKAN(width=[2, 5, 1], grid=5, k=3, seed=0, auto_save=False)
            model(x)  # caches the activations auto_symbolic fits
            start = time.perf_counter()
            if full:
                model.auto_symbolic(verbose=0)
                return (
                    time.perf_counter() - start,
                    "measured (full auto_symbolic)",
                    len(SYMBOLIC_LIB),
                )
            pairs = [(0, i, j) for i in range(2) for j in range(5)][:edges]
            for li, i, j in pairs:
                model.suggest_symbolic(li, i, j, verbose=False)
            per_edge = (time.perf_counter() - start) / len(pairs)
            return per_edge * 15, f"extrapolated from {len(pairs)} edge(s) x 15", len(SYMBOLIC_LIB)
        finally:
            os.chdir(cwd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pykan-edges", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="time pykan's whole auto_symbolic")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 2, generator=gen) * 2 - 1
    print(f"machine: {machine()}")
    print("task: [2, 5, 1] KAN, 15 spline edges, 1000 samples, float32")
    ours, n_fns = bench_kanpiler(x, args.repeat)
    print(f"kanpiler auto_symbolic: {ours:8.2f} s  (median of {args.repeat}, {n_fns} functions)")
    pykan = bench_pykan(x, args.pykan_edges, args.full)
    if pykan is None:
        print("pykan auto_symbolic:    not installed (pip install --no-deps pykan==0.2.8)")
        return
    theirs, how, n_lib = pykan
    print(f"pykan 0.2.8 auto_symbolic: {theirs:8.2f} s  ({how}, {n_lib} functions)")
    print(f"ratio pykan / kanpiler: {theirs / ours:.0f}x")


if __name__ == "__main__":
    main()
