"""The example scripts run and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compile_and_inspect():
    out = run("compile_and_inspect.py", "x*y + sin(x)")
    assert "layout: 2 KAN layers" in out
    max_err = float(out.split("max |model - sympy| on 5 points: ")[1].split()[0])
    assert max_err < 1e-12
    assert "refused:" in out


def test_render_writes_only_into_the_given_folder(tmp_path):
    out = run("render.py", str(tmp_path), "x*y + sin(z)")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"expr.gv", "layout.gv", "model.gv"} <= set(names)
    assert "layout.gv" in out
    assert (tmp_path / "layout.gv").read_text().startswith("digraph")


@pytest.mark.slow
def test_finetune():
    out = run("finetune.py")
    line = next(s for s in out.splitlines() if "a=" in s)
    values = dict(kv.split("=") for kv in line.split("with ")[1].split())
    assert abs(float(values["a"]) - 2.8) < 1e-4 and abs(float(values["d"]) - 0.7) < 1e-4
    final = float(out.strip().splitlines()[-1].split("RMSE")[1])
    assert final < 1e-3
