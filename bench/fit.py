"""Training reliability and speed of small KANs: kanpiler's ``fit`` against pykan's, one run.

Part 1, reliability. The setups of pykan's tutorials (width, grid, function, box, data size,
penalty), each over seeds 0-9 on the same data (``kanpiler.datasets.make``, which draws the
points of pykan's ``create_dataset``). Every fit is the tutorial's first one: 20 LBFGS steps
with grid updates, float32. Compared: pykan 0.2.8 (``KAN(width, grid, k=3, seed)`` then
``model.fit(dataset, opt="LBFGS", steps=20, lamb=...)``), kanpiler with one start
(``restarts=1``) and kanpiler's default ``fit`` (``restarts="auto"``: 8 starts trained as one
batched model for these small, fresh models, the best kept on the test data). Printed per
setup: how many seeds reach the figure pykan's notebook reports, and the median and worst
final train/test RMSE and wall time.

Part 2, speed. ``[2, 5, 1]`` (G=5) on ``exp(sin(pi x) + y^2)``, 1000 points, 50 LBFGS steps
with grid updates, one thread: pykan's ``fit`` against kanpiler's ``fit`` (``restarts=1``,
then ``restarts=8``), median of ``--repeats`` runs each, as ratios.

Run: ``OMP_NUM_THREADS=1 python bench/fit.py [--seeds 10] [--setups kan1,...] [--repeats 3]``
(pykan from PyPI must be importable; it runs in a temporary directory). Results of one run
are in ``docs/runtime.md`` ("Training").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kanpiler.datasets import make
from kanpiler.runtime import MultKAN


@dataclass(frozen=True)
class Setup:
    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    width: list[int]
    grid: int
    n_var: int
    ranges: tuple[float, float]
    n_train: int
    lamb: float
    figure: float  # train RMSE of pykan's notebook after its first fit


PI = math.pi
SETUPS = [
    Setup("kan1", lambda x: torch.exp(torch.sin(PI * x[:, :1]) + x[:, 1:] ** 2),
          [2, 1, 1], 3, 2, (-1.0, 1.0), 1000, 0.0, 4.2e-2),
    Setup("kan4d", lambda x: torch.exp((torch.sin(PI * (x[:, :1] ** 2 + x[:, 1:2] ** 2))
                                        + torch.sin(PI * (x[:, 2:3] ** 2 + x[:, 3:] ** 2))) / 2),
          [4, 2, 1, 1], 3, 4, (-1.0, 1.0), 3000, 2e-3, 1.8e-2),
    Setup("sqrt", lambda x: torch.sqrt(x[:, :1] ** 2 + x[:, 1:] ** 2),
          [2, 1, 1], 5, 2, (-1.0, 1.0), 1000, 0.0, 3.7e-3),
    Setup("sinlog", lambda x: torch.sin(2 * (torch.log(x[:, :1]) + torch.log(x[:, 1:]))),
          [2, 1, 1], 5, 2, (0.2, 5.0), 1000, 0.0, 1.1e-1),
    Setup("kan251", lambda x: torch.exp(torch.sin(PI * x[:, :1]) + x[:, 1:] ** 2),
          [2, 5, 1], 5, 2, (-1.0, 1.0), 1000, 0.0, math.nan),
]  # fmt: skip


def rmse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((pred.detach() - y) ** 2)))


def run_pykan(s: Setup, data: dict, seed: int, steps: int = 20) -> tuple[float, float, float]:
    from kan import KAN

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model = KAN(width=s.width, grid=s.grid, k=3, seed=seed, auto_save=False)
        model.fit(data, opt="LBFGS", steps=steps, lamb=s.lamb)
    wall = time.perf_counter() - start
    with torch.no_grad():
        return (rmse(model(data["train_input"]), data["train_label"]),
                rmse(model(data["test_input"]), data["test_label"]), wall)  # fmt: skip


def run_kanpiler(
    s: Setup, data: dict, seed: int, restarts: int | str, steps: int = 20
) -> tuple[float, float, float]:
    start = time.perf_counter()
    model = MultKAN(s.width, grid=s.grid, k=3, seed=seed, grid_range=s.ranges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, steps=steps, lamb=s.lamb, restarts=restarts, progress=False)
    wall = time.perf_counter() - start
    with torch.no_grad():
        return (rmse(model(data["train_input"]), data["train_label"]),
                rmse(model(data["test_input"]), data["test_label"]), wall)  # fmt: skip


def summary(rows: list[tuple[float, float, float]], figure: float) -> str:
    train, test, wall = zip(*rows)
    hits = sum(t <= figure for t in train) if math.isfinite(figure) else math.nan
    hit = f"{hits}/{len(rows)}" if math.isfinite(figure) else "-"
    return (f"{hit:>6} {statistics.median(train):10.2e} {max(train):10.2e} "
            f"{statistics.median(test):10.2e} {max(test):10.2e} "
            f"{statistics.median(wall):7.2f} {max(wall):7.2f}")  # fmt: skip


def reliability(setups: list[Setup], seeds: int) -> None:
    print("setup   method        reach  train med  train max   test med   test max   s med   s max")
    for s in setups:
        data = make(s.f, s.n_var, s.ranges, s.n_train, s.n_train, seed=0)
        for label, restarts in (("pykan", None), ("restarts=1", 1), ("default", "auto")):
            rows = [
                run_pykan(s, data, seed) if restarts is None
                else run_kanpiler(s, data, seed, restarts)
                for seed in range(seeds)
            ]  # fmt: skip
            print(f"{s.name:7} {label:12} {summary(rows, s.figure)}", flush=True)


def speed(repeats: int) -> None:
    s = SETUPS[-1]
    data = make(s.f, 2, s.ranges, 1000, 1000, seed=0)
    times: dict[str, list[float]] = {"pykan": [], "restarts=1": [], "restarts=8": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    acc: dict[str, list[float]] = {k: [] for k in times}
    # one short fit each first: kanpiler compiles its native kernels once per process
    run_pykan(s, data, 0, steps=1)
    run_kanpiler(s, data, 0, 1, steps=1)
    for _ in range(repeats):  # interleaved, so load changes hit every method alike
        for label in times:
            before = os.times()
            if label == "pykan":
                train, _, wall = run_pykan(s, data, 0, steps=50)
            else:
                train, _, wall = run_kanpiler(s, data, 0, int(label.split("=")[1]), steps=50)
            after = os.times()
            times[label].append(wall)
            cpu[label].append(after.user - before.user + after.system - before.system)
            acc[label].append(train)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\n[2,5,1] G=5, 1000 points, 50 LBFGS steps, grid updates on, 1 thread, "
          f"median of {repeats} (wall and CPU seconds of this process)")  # fmt: skip
    for label in times:
        print(f"  {label:11} {med[label]:7.2f} s wall {med_cpu[label]:7.2f} s CPU   "
              f"train RMSE {statistics.median(acc[label]):.2e}")  # fmt: skip
    for unit, m in (("wall", med), ("CPU", med_cpu)):
        print(
            f"  {unit:4}: kanpiler (restarts=1) over pykan {m['pykan'] / m['restarts=1']:.1f}x "
            f"faster; restarts=8 costs {m['restarts=8'] / m['restarts=1']:.2f}x restarts=1"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--setups", default=",".join(s.name for s in SETUPS[:-1]))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"bench/fit.py on {platform.machine()} {platform.processor() or ''}, torch "
          f"{torch.__version__}, {os.cpu_count()} cpus, 1 thread")  # fmt: skip
    chosen = [s for s in SETUPS if s.name in args.setups.split(",")]
    with tempfile.TemporaryDirectory() as tmp:  # pykan may write files to the working dir
        os.chdir(tmp)
        reliability(chosen, args.seeds)
        if not args.skip_speed:
            speed(args.repeats)


if __name__ == "__main__":
    main()
