"""Data-parallel training throughput on CPU: 1 process against N processes (gloo, torchrun).

Method: each configuration is started with ``python -m torch.distributed.run --nproc_per_node
P`` (P = 1 also goes through torchrun and the gloo group, so the difference is the
parallelism, not the launcher). Every process uses one torch thread, trains a MultKAN on its
shard of the data with Adam and :mod:`kanpiler.runtime.distributed` (one ``all_reduce`` of the
gradients per step, as ``fit`` does under torchrun), and times ``--steps`` steps after
``--warmup``; rank 0 reports the median step time. Throughput = samples of the global batch
per second. Two scalings: *strong* (the global batch is fixed and split across processes) and
*weak* (every process keeps the same batch, the global batch grows with P).

Run: ``python bench/bench_ddp.py [--procs 1,2] [--batch 8192] [--width 4,64,64,1]``.
On a machine with fewer free cores than processes the processes share cores, and the
all-reduce waits for the slowest: read the machine line (CPU count, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist

from kanpiler.runtime import MultKAN, distributed


def _worker(args: argparse.Namespace) -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    width = [int(w) for w in args.width.split(",")]
    world = distributed.world_size()
    total = args.batch if args.scaling == "strong" else args.batch * world
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(total, width[0], generator=gen) * 2 - 1
    y = torch.sin(x.sum(dim=1, keepdim=True))
    xs, ys = distributed.shard(x, y)
    model = MultKAN(width, grid=args.grid, k=3, seed=0)
    distributed.broadcast_module(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.mean((model(xs) - ys) ** 2)
        loss.backward()
        distributed.average_gradients(params, xs.shape[0])
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    # the slowest rank sets the pace: report the largest median
    med = torch.tensor([statistics.median(times)], dtype=torch.float64)
    dist.all_reduce(med, op=dist.ReduceOp.MAX)
    if distributed.is_main():
        print(json.dumps({"procs": world, "global_batch": total, "step_s": float(med)}))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(procs: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), __file__,
           "--worker", "--scaling", args.scaling, "--batch", str(args.batch),
           "--width", args.width, "--grid", str(args.grid), "--steps", str(args.steps),
           "--warmup", str(args.warmup)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--batch", type=int, default=8192, help="global (strong) / per process")
    parser.add_argument("--width", default="4,64,64,1")
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--scaling", default="both", choices=["strong", "weak", "both"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_layer import cpu_name

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print("kanpiler bench_ddp: Adam steps of MultKAN", args.width, f"G={args.grid}, gloo, 1 thread")
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs (load average {load}); "
          f"torch {torch.__version__}")  # fmt: skip
    scalings = ["strong", "weak"] if args.scaling == "both" else [args.scaling]
    for scaling in scalings:
        args.scaling = scaling
        print(f"\n{scaling} scaling ({'global' if scaling == 'strong' else 'per-process'} "
              f"batch {args.batch})")  # fmt: skip
        print(
            f"  {'procs':>5} {'global batch':>12} {'step ms':>9} {'samples/s':>11} {'speed-up':>9}"
        )
        base = None
        for procs in [int(p) for p in args.procs.split(",")]:
            row = _launch(procs, args)
            rate = row["global_batch"] / row["step_s"]
            base = base or rate
            print(f"  {procs:>5} {row['global_batch']:>12} {row['step_s'] * 1e3:>9.2f} "
                  f"{rate:>11.0f} {rate / base:>8.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
