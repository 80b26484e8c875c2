"""Speed and memory of one KAN layer / a small MultKAN: kanpiler against a floor and other KANs.

Method: for each shape, ``forward + backward`` (loss = sum of the outputs, gradients w.r.t. the
inputs and all parameters), ``--warmup`` rounds, then ``--repeats`` rounds (more at small
shapes: the ``rounds`` factor of each shape). Each method runs in its own Python process
(threads one library leaves behind, e.g. torch.compile's OpenMP pool, must not slow another),
round-robin with a floor measured in the same process: every round times one step of the floor
and one of the method, so a change of machine load hits both alike. Reported: the median wall
time and its interquartile range (IQR), the median over rounds of the per-round ratio method /
floor and its IQR, and with one thread on CPU the same ratio of ``time.thread_time`` (CPU time
of the calling thread, which with one thread does all the work: little affected by other jobs
on the machine). The *floor* is the same dense matrix product a KAN layer needs,
``[silu(x) | B(x)] @ W`` with shapes ``(N, in*(G+k+1)) @ (in*(G+k+1), out)``, forward and
backward, on a precomputed basis ``B`` that requires grad: no KAN can be faster while
materialising its basis. Memory: on CPU, the bytes of the distinct tensors autograd saves for
backward plus the output (what a training step must hold); on CUDA,
``torch.cuda.max_memory_allocated`` over the step.

Methods: ``kanpiler`` is the default path (on CPU the native kernels of
``kanpiler.runtime.native`` when a C compiler exists, on CUDA the Triton kernels of
``kanpiler.runtime.triton_spline``; the ``path`` column says which ran); ``kanpiler-torch``
(CPU) is the same layer with the native kernels switched off (``KANPILER_NATIVE=0``);
``kanpiler-triton`` (CPU, ``--smoke`` only) runs the Triton kernels in Triton's interpreter
(``TRITON_INTERPRET=1``): a correctness check of the GPU path, not a speed figure.
``efficient-kan`` (Blealtan/efficient-kan) eager and ``efficient-kan compiled``
(``torch.compile`` of the same model), ``FastKAN`` (ZiyaoLi/fast-kan: Gaussian radial bases,
``G + k`` of them per input on [-1, 1], layer norm off so that it computes the same kind of
layer), ``inkan`` (default mode) and ``pykan 0.2.8``. The reference KANs are imported when
installed, else from a git-ignored ``ref/`` folder of the repository (``ref/efficient-kan``,
``ref/fast-kan``: the repositories as cloned; ``ref/inkan``: the unpacked wheel,
``pip download --no-deps inkan``); a missing one prints "not installed" and the run goes on.

Run: ``OMP_NUM_THREADS=2 python bench/bench_layer.py [--device cuda] [--threads 2]
[--dtype float64] [--methods kanpiler,inkan] [--json out.json]``. On CUDA the shapes include
1024->1024, G=10, batch 65536 (sized to fill an H200). ``--smoke`` runs every method on small
versions of every shape for two rounds and exits non-zero if any method fails: a check that the
whole GPU run will work, runnable on CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from kanpiler.runtime import KANLayer, MultKAN

# (name, batch, width, grid, rounds factor): more rounds where a step is short
SHAPES = [
    ("layer 64->64 G=5", 4096, [64, 64], 5, 3),
    ("layer 256->256 G=10", 1024, [256, 256], 10, 1),
    ("MultKAN [2,5,1] G=5", 1024, [2, 5, 1], 5, 5),
]
GPU_SHAPES = SHAPES + [("layer 1024->1024 G=10", 65536, [1024, 1024], 10, 1)]
SMOKE_SHAPES = [  # the same kinds of shape, small enough for a CPU in seconds
    ("layer 16->16 G=5", 128, [16, 16], 5, 1),
    ("layer 32->32 G=10", 128, [32, 32], 10, 1),
    ("MultKAN [2,5,1] G=5", 128, [2, 5, 1], 5, 1),
    ("layer 24->24 G=10", 128, [24, 24], 10, 1),
]
K = 3
REF = Path(__file__).resolve().parents[1] / "ref"
REF_PATHS = [REF / "efficient-kan" / "src", REF / "fast-kan", REF / "inkan"]


def shapes(args: argparse.Namespace) -> list[tuple]:
    """The shapes of the run; ``--shapes`` keeps those whose name contains one of its
    ``;``-separated parts."""
    if args.smoke:
        return SMOKE_SHAPES
    every = GPU_SHAPES if args.device == "cuda" else SHAPES
    wanted = [w for w in args.shapes.split(";") if w]
    return [s for s in every if not wanted or any(w in s[0] for w in wanted)]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def saved_bytes(forward: Callable[[], torch.Tensor], device: str) -> int:
    """Bytes a training step holds: saved tensors (distinct storages) + the output."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward().sum().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    seen[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
    return sum(seen.values())


DTYPE = torch.float32


def _input(batch: int, width: list[int], device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, width[0], generator=g, dtype=DTYPE) * 2 - 1
    return x.to(device).requires_grad_()


def floor_step(batch: int, width: list[int], grid: int, device: str):
    """The dense-matmul floor of every layer of ``width`` (precomputed bases, with grads)."""
    mats = []
    for n_in, n_out in zip(width[:-1], width[1:]):
        feats = torch.rand(batch, n_in * (grid + K + 1), device=device, dtype=DTYPE)
        weight = torch.rand(n_in * (grid + K + 1), n_out, device=device, dtype=DTYPE)
        feats.requires_grad_()
        weight.requires_grad_()
        mats.append((feats, weight))

    def forward() -> torch.Tensor:
        return sum((f @ w).sum() for f, w in mats).reshape(1)

    return forward


def kanpiler_step(batch: int, width: list[int], grid: int, device: str):
    x = _input(batch, width, device)
    if len(width) == 2:
        model = KANLayer(width[0], width[1], grid, K, device=device, dtype=DTYPE)
    else:
        model = MultKAN(width, grid=grid, k=K, device=device, dtype=DTYPE)
    step = lambda: model(x)  # noqa: E731
    step.path = _kanpiler_path(model, x)  # type: ignore[attr-defined]
    return step


def _kanpiler_path(model: torch.nn.Module, x: torch.Tensor) -> str:
    """Which kernels kanpiler's layer takes on ``x``: triton, native or torch."""
    from kanpiler.runtime import native, triton_spline

    layer = model if isinstance(model, KANLayer) else model.layers[0]
    if triton_spline.applies(x, layer.basis):
        return "triton-interp" if triton_spline.interpreting() else "triton"
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return "native" if native.kernels() is not None else "torch"
    return "torch"


def pykan_step(batch: int, width: list[int], grid: int, device: str):
    from kan import KAN
    from kan.KANLayer import KANLayer as PykanLayer

    x = _input(batch, width, device)
    if len(width) == 2:
        layer = PykanLayer(width[0], width[1], num=grid, k=K, device=device).to(DTYPE)
        return lambda: layer(x)[0]
    with _in_tempdir():  # pykan may write ./model checkpoints; keep them out of the tree
        model = KAN(width=width, grid=grid, k=K, seed=0, auto_save=False, device=device)
        model.speed()
    model = model.to(DTYPE)
    return lambda: model(x)


def inkan_step(batch: int, width: list[int], grid: int, device: str):
    import inkan

    x = _input(batch, width, device)
    if len(width) == 2:
        model = inkan.KANLayer(width[0], width[1], grid_size=grid, spline_order=K)
    else:
        model = inkan.KANNetwork(width, grid_size=grid, spline_order=K)
    model = model.to(device=device, dtype=DTYPE)
    return lambda: model(x)


def _efficient_kan(batch: int, width: list[int], grid: int, device: str, compiled: bool):
    import efficient_kan

    x = _input(batch, width, device)
    if len(width) == 2:
        model = efficient_kan.KANLinear(width[0], width[1], grid_size=grid, spline_order=K)
    else:
        model = efficient_kan.KAN(width, grid_size=grid, spline_order=K)
    model = model.to(device=device, dtype=DTYPE)
    run = torch.compile(model) if compiled else model
    return lambda: run(x)


def efficient_kan_step(batch: int, width: list[int], grid: int, device: str):
    return _efficient_kan(batch, width, grid, device, compiled=False)


def efficient_kan_compiled_step(batch: int, width: list[int], grid: int, device: str):
    return _efficient_kan(batch, width, grid, device, compiled=True)


def fastkan_step(batch: int, width: list[int], grid: int, device: str):
    from fastkan import FastKAN, FastKANLayer

    x = _input(batch, width, device)
    opts = dict(grid_min=-1.0, grid_max=1.0, num_grids=grid + K)
    if len(width) == 2:
        model = FastKANLayer(width[0], width[1], use_layernorm=False, **opts)
    else:
        model = FastKAN(width, **opts)
        for layer in model.layers:
            layer.layernorm = None
    model = model.to(device=device, dtype=DTYPE)
    return lambda: model(x)


@contextlib.contextmanager
def _in_tempdir():
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


METHODS = {
    "floor": floor_step,
    "kanpiler": kanpiler_step,
    "kanpiler-torch": kanpiler_step,
    "kanpiler-triton": kanpiler_step,
    "efficient-kan": efficient_kan_step,
    "efficient-kan compiled": efficient_kan_compiled_step,
    "FastKAN": fastkan_step,
    "inkan": inkan_step,
    "pykan 0.2.8": pykan_step,
}
ENV = {  # environment of a method's worker process
    "kanpiler-torch": {"KANPILER_NATIVE": "0"},
    "kanpiler-triton": {"TRITON_INTERPRET": "1"},
}
SOURCES = {  # where a missing reference KAN comes from
    "efficient-kan": "github.com/Blealtan/efficient-kan in ref/efficient-kan",
    "efficient-kan compiled": "github.com/Blealtan/efficient-kan in ref/efficient-kan",
    "FastKAN": "github.com/ZiyaoLi/fast-kan in ref/fast-kan",
    "inkan": "pip install --no-deps inkan (or the unpacked wheel in ref/inkan)",
    "pykan 0.2.8": "pip install --no-deps pykan==0.2.8",
}


def default_methods(args: argparse.Namespace) -> list[str]:
    """Every method that means something on the device: on CUDA ``kanpiler`` is the Triton
    path and the CPU-only variants are left out; ``kanpiler-triton`` only checks (--smoke)."""
    names = list(METHODS)
    if args.device == "cuda":
        names = [n for n in names if n not in ("kanpiler-torch", "kanpiler-triton")]
    elif not args.smoke:
        names.remove("kanpiler-triton")
    return names


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Median and the first and third quartiles (the median alone for fewer than 4 values)."""
    med = statistics.median(values)
    if len(values) < 4:
        return med, med, med
    q = statistics.quantiles(values, n=4, method="inclusive")
    return med, q[0], q[2]


def measure(shape, device: str, warmup: int, repeats: int, name: str, cpu_time: bool) -> dict:
    """One method and the floor on one shape, timed round-robin: every round times one step of
    each, so a change of machine load hits both alike. Per round: wall time, the ratio method /
    floor, and (``cpu_time``) the ratio of thread CPU times."""
    _, batch, width, grid, factor = shape
    rounds = repeats * factor
    steps, row = {}, {"method": name}
    for method in ("floor", name):
        try:
            with _in_tempdir():
                forward = METHODS[method](batch, list(width), grid, device)
                out = forward()
                if not bool(torch.isfinite(out).all()):
                    raise FloatingPointError("non-finite output")
                steps[method] = forward
                row["path" if method == name else "floor_path"] = getattr(forward, "path", "")
                row["bytes" if method == name else "floor_bytes"] = saved_bytes(forward, device)
        except ImportError as err:
            source = SOURCES.get(method, "")
            return {"method": name, "status": f"not installed ({source or err})"}
        except Exception as err:  # a method failing on a shape is reported, not fatal
            return {"method": name, "status": f"failed: {type(err).__name__}: {err}"[:160]}
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
    wall: dict[str, list[float]] = {m: [] for m in steps}
    cpu: dict[str, list[float]] = {m: [] for m in steps}
    for rnd in range(warmup + rounds):
        for method, forward in steps.items():
            _sync(device)
            t0, c0 = time.perf_counter(), time.thread_time()
            forward().sum().backward()
            _sync(device)
            t1, c1 = time.perf_counter(), time.thread_time()
            if rnd >= warmup:
                wall[method].append(t1 - t0)
                cpu[method].append(c1 - c0)
    ratios = [a / b for a, b in zip(wall[name], wall["floor"])]
    row["seconds"], row["q1"], row["q3"] = quartiles(wall[name])
    row["floor_seconds"] = statistics.median(wall["floor"])
    row["ratio"], row["ratio_q1"], row["ratio_q3"] = quartiles(ratios)
    if cpu_time:
        cpu_ratios = [a / b for a, b in zip(cpu[name], cpu["floor"]) if b > 0]
        if cpu_ratios:
            row["cpu_ratio"] = statistics.median(cpu_ratios)
    row["mem_ratio"] = row["bytes"] / row["floor_bytes"]
    row["rounds"] = rounds
    return row


def cpu_name() -> str:
    """The CPU model as ``lscpu`` names it (``/proc/cpuinfo`` or the platform if it is absent)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        name = fields.get("Model name", "").strip()
        flags = fields.get("Flags", "").split()
        simd = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "")
        if name:
            return f"{name} ({fields.get('Vendor ID', '').strip()}{', ' + simd if simd else ''})"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: str, threads: int, dtype: str) -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{cpu_name()}{gpu}, {os.cpu_count()} CPUs (load average {load}); torch "
        f"{torch.__version__}; {threads} thread(s); {dtype}; device {device}"
    )


def run_method(name: str, args: argparse.Namespace) -> list[dict]:
    """One method (and its own floor) on every shape, in a fresh Python process, so threads
    left behind by one library (e.g. torch.compile's OpenMP pool) never slow another."""
    cmd = [sys.executable, __file__, "--worker", name, "--device", args.device]
    cmd += ["--threads", str(args.threads), "--warmup", str(args.warmup)]
    cmd += ["--repeats", str(args.repeats), "--dtype", args.dtype, "--shapes", args.shapes]
    cmd += ["--smoke"] if args.smoke else []
    env = dict(os.environ, **ENV.get(name, {}))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"method": name, "status": f"failed: {tail}"[:160]} for _ in shapes(args)]
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(name: str, args: argparse.Namespace) -> None:
    global DTYPE
    DTYPE = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    sys.path.extend(str(p) for p in REF_PATHS if p.is_dir())  # installed packages first
    cpu_time = args.device == "cpu" and args.threads == 1
    results = [
        measure(shape, args.device, args.warmup, args.repeats, name, cpu_time)
        for shape in shapes(args)
    ]
    print(json.dumps(results))


def report(table: dict[str, list[dict]], args: argparse.Namespace) -> int:
    """Print one table per shape; the number of methods that failed (not: not installed)."""
    failures = 0
    cpu_col = args.device == "cpu" and args.threads == 1
    for pos, shape in enumerate(shapes(args)):
        print(f"\n{shape[0]}, batch {shape[1]}")
        head = f"  {'method':<23} {'path':<13} {'median ms':>10} {'IQR ms':>15} "
        head += f"{'x floor':>7} {'IQR':>11} " + (f"{'cpu x fl':>8} " if cpu_col else "")
        print(head + f"{'memory MB':>10} {'x floor':>7}")
        floor_ms = []
        for name, rows in table.items():
            row = rows[pos]
            if "seconds" not in row:
                status = row.get("status", "failed")
                failures += not status.startswith("not installed")
                print(f"  {name:<23} {status}")
                continue
            floor_ms.append(row["floor_seconds"] * 1e3)
            cpu = f"{row['cpu_ratio']:>8.2f} " if "cpu_ratio" in row else " " * 9 * cpu_col
            print(
                f"  {name:<23} {row.get('path', '')[:13]:<13} {row['seconds'] * 1e3:>10.3f} "
                f"{row['q1'] * 1e3:>7.3f}-{row['q3'] * 1e3:<7.3f} {row['ratio']:>7.2f} "
                f"{row['ratio_q1']:>5.2f}-{row['ratio_q3']:<5.2f} {cpu}"
                f"{row['bytes'] / 2**20:>10.1f} {row['mem_ratio']:>7.2f}"
            )
        if floor_ms:
            rounds = max(r.get("rounds", 0) for r in (rows[pos] for rows in table.values()))
            print(f"  (floor: median {statistics.median(floor_ms):.3f} ms over the methods' "
                  f"runs; {rounds} rounds)")  # fmt: skip
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="rounds at the largest shapes")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--smoke", action="store_true", help="small shapes, 2 rounds, check only")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--shapes", default="", help="parts of shape names, separated by ;")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and not args.worker:
        args.warmup, args.repeats = 1, 2
    if args.worker:
        worker(args.worker, args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    print(f"kanpiler bench_layer: forward+backward, median of per-round ratios over "
          f"{args.repeats}+ rounds (more at small shapes), IQR = interquartile range;")  # fmt: skip
    print("each method runs in its own process, round-robin with a floor measured beside it")
    print("machine:", machine(args.device, args.threads, args.dtype))
    wanted = [n for n in args.methods.split(",") if n] or default_methods(args)
    unknown = [n for n in wanted if n not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    table = {name: run_method(name, args) for name in wanted if name != "floor"}
    failures = report(table, args)
    if args.json:
        named = [(r, s) for rs in table.values() for r, s in zip(rs, shapes(args))]
        rows = [dict(r, shape=s[0], batch=s[1]) for r, s in named]
        about = machine(args.device, args.threads, args.dtype)
        Path(args.json).write_text(json.dumps({"machine": about, "rows": rows}, indent=1))
    if args.smoke and failures:
        print(f"\nsmoke: {failures} method/shape pair(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
