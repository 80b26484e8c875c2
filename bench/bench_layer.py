"""Speed and memory of one KAN layer / a small MultKAN: kanpiler vs pykan vs inkan vs a floor.

Method: for each shape, the median wall time of ``forward + backward`` (loss = sum of the
outputs, gradients w.r.t. the inputs and all parameters) over ``--repeats`` rounds after
``--warmup`` rounds. Each method runs in its own Python process (threads one library leaves
behind, e.g. torch.compile's OpenMP pool, must not slow another), round-robin with a floor
measured in the same process (one step of each per round, so a change of machine load hits
both alike); ratios are to that floor. The *floor* is the same dense
matrix product a KAN layer needs, ``[silu(x) | B(x)] @ W`` with shapes
``(N, in*(G+k+1)) @ (in*(G+k+1), out)``, forward and backward, on a precomputed basis ``B``
that requires grad: no KAN can be faster while materialising its basis. Memory: on CPU, the
bytes of the distinct tensors autograd saves for backward plus the output (what a training
step must hold); on CUDA, ``torch.cuda.max_memory_allocated`` over the step.

``kanpiler`` is the default path (on CPU the native kernels of ``kanpiler.runtime.native``
when a C compiler exists); ``kanpiler-torch`` is the same layer with them switched off
(``KANPILER_NATIVE=0``): the pure torch path every machine has. ``--dtype float64`` runs every
method (and the floor) in double precision.

Run: ``OMP_NUM_THREADS=2 python bench/bench_layer.py [--device cuda] [--threads 2]
[--dtype float64]``.
pykan 0.2.8 and inkan are optional (``pip install --no-deps pykan==0.2.8 inkan``); a missing
one prints "not installed".
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

import torch

from kanpiler.runtime import KANLayer, MultKAN

SHAPES = [  # (name, batch, width, grid)
    ("layer 64->64 G=5", 4096, [64, 64], 5),
    ("layer 256->256 G=10", 1024, [256, 256], 10),
    ("MultKAN [2,5,1] G=5", 1024, [2, 5, 1], 5),
]
K = 3


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
    x = (torch.rand(batch, width[0], device=device, dtype=DTYPE) * 2 - 1).requires_grad_()
    if len(width) == 2:
        model = KANLayer(width[0], width[1], grid, K, device=device, dtype=DTYPE)
    else:
        model = MultKAN(width, grid=grid, k=K, device=device, dtype=DTYPE)
    return lambda: model(x)


def pykan_step(batch: int, width: list[int], grid: int, device: str):
    from kan import KAN
    from kan.KANLayer import KANLayer as PykanLayer

    x = (torch.rand(batch, width[0], device=device, dtype=DTYPE) * 2 - 1).requires_grad_()
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

    x = (torch.rand(batch, width[0], device=device, dtype=DTYPE) * 2 - 1).requires_grad_()
    if len(width) == 2:
        model = inkan.KANLayer(width[0], width[1], grid_size=grid, spline_order=K)
    else:
        model = inkan.KANNetwork(width, grid_size=grid, spline_order=K)
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
    "pykan 0.2.8": pykan_step,
    "inkan": inkan_step,
}


def measure_all(shape, device: str, warmup: int, repeats: int, methods: list[str]) -> list[dict]:
    """Every method on one shape, timed round-robin (one step of each method per round, so a
    change of machine load hits all methods alike); median per method."""
    _, batch, width, grid = shape
    rows, steps = [], {}
    for name, make in METHODS.items():
        if name not in methods and name != "floor":
            continue
        try:
            with _in_tempdir():
                forward = make(batch, list(width), grid, device)
                steps[name] = forward
                rows.append({"method": name, "bytes": saved_bytes(forward, device)})
        except ImportError:
            rows.append({"method": name, "status": "not installed"})
        except Exception as err:  # an anchor failing on a shape is reported, not fatal
            rows.append({"method": name, "status": f"failed: {type(err).__name__}: {err}"[:70]})
    times: dict[str, list[float]] = {name: [] for name in steps}
    for rnd in range(warmup + repeats):
        for name, forward in steps.items():
            t0 = time.perf_counter()
            forward().sum().backward()
            _sync(device)
            if rnd >= warmup:
                times[name].append(time.perf_counter() - t0)
    for row in rows:
        if row["method"] in times:
            row["seconds"] = statistics.median(times[row["method"]])
    return rows


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
    env = dict(os.environ, KANPILER_NATIVE="0") if name == "kanpiler-torch" else None
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"method": name, "status": f"failed: {tail}"[:70]} for _ in _chosen(args)]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _chosen(args: argparse.Namespace) -> list:
    """The shapes whose name contains one of the ``;``-separated ``--shapes`` (all by default)."""
    wanted = [w for w in args.shapes.split(";") if w]
    return [s for s in SHAPES if not wanted or any(w in s[0] for w in wanted)]


def worker(name: str, args: argparse.Namespace) -> None:
    global DTYPE
    DTYPE = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    results = []
    for shape in _chosen(args):
        rows = measure_all(shape, args.device, args.warmup, args.repeats, [name])
        floor, row = rows[0], rows[-1]
        if "seconds" in row:
            row["ratio"] = row["seconds"] / floor["seconds"]
            row["mem_ratio"] = row["bytes"] / floor["bytes"]
        results.append(row)
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--shapes", default="", help="parts of shape names, separated by ;")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return
    print(f"kanpiler bench_layer: forward+backward, median of {args.repeats} rounds;")
    print("each method runs in its own process, round-robin with a floor measured beside it")
    print("machine:", machine(args.device, args.threads, args.dtype))
    names = [n for n in args.methods.split(",") if n in METHODS]
    table = {name: run_method(name, args) for name in names if name != "floor"}

    for pos, shape in enumerate(_chosen(args)):
        print(f"\n{shape[0]}, batch {shape[1]}")
        head = f"  {'method':<15} {'median ms':>10} {'x floor':>8} {'memory MB':>10} {'x floor':>8}"
        print(head)
        for name, rows in table.items():
            row = rows[pos]
            if "seconds" not in row:
                print(f"  {name:<15} {row.get('status', 'failed')}")
                continue
            floor_ms = row["seconds"] / row["ratio"] * 1e3
            print(
                f"  {name:<15} {row['seconds'] * 1e3:>10.2f} {row['ratio']:>8.2f} "
                f"{row['bytes'] / 2**20:>10.1f} {row['mem_ratio']:>8.2f}   (floor {floor_ms:.2f} ms)"
            )


if __name__ == "__main__":
    main()
