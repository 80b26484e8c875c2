"""pykan's tutorials ported to kanpiler (examples/pykan/) run at a small size and print the
quantities of pykan's notebooks, with clean formulas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "pykan"


def run(name: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line.split(":", 1) for line in done.stdout.splitlines() if ":" in line]
    return {k.strip(): v.strip() for k, v in lines}


def test_interp_1_multkan_finds_x1_times_x2() -> None:
    out = run("interp_1_multkan.py")
    assert out["formula"] == out["rounded"] == "x1*x2"  # no 1.0000001*, no 1e-17 terms
    assert float(out["symbolic"].split()[-1]) < 1e-8
    assert out["pruned"] == "width [[2, 0], [0, 1], [1, 0]]"


def test_example_5_registers_j0_and_finds_the_bessel_formula() -> None:
    out = run("example_5_special_functions.py")
    assert float(out["grid 30"].split()[-1]) < float(out["grid 3"].split()[-1])
    assert out["formula"] in ("exp(x2**2 + J0(20*x1))", "exp(x2**2 + J0(-20*x1))")
    assert float(out["symbolic"].split()[-1]) < 1e-8


def test_example_1_grid_extension_lowers_the_error_and_reads_back_the_formula() -> None:
    out = run("example_1_grid_extension.py")
    rmse = [float(out[f"grid {g:3d}"].split()[2]) for g in (3, 5, 10)]
    assert rmse[0] > rmse[1] > rmse[2]
    assert out["formula"] == "exp(x2**2 + sin(pi*x1))"
