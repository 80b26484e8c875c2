"""pykan's tutorials ported to kanpiler (examples/pykan/) run at a small size and print the
quantities of pykan's notebooks, with clean formulas."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import sympy
import torch

from kanpiler.errors import DomainError

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


# ---- the tutorials whose main() returns its results, checked against float64 maths ---------


def load(name: str) -> ModuleType:
    """Import ``examples/pykan/<name>.py`` (its folder on the path for ``_notebook``)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"pykan_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


def lines(text: str) -> dict[str, str]:
    pairs = [line.split(":", 1) for line in text.splitlines() if ":" in line]
    return {k.strip(): v.strip() for k, v in pairs}


def fresh(n_var: int, n: int, lo: float, hi: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, n_var))


def rmse_vs(model, x: np.ndarray, truth: np.ndarray) -> float:
    with torch.no_grad():
        pred = model(torch.tensor(x, dtype=model.dtype)).numpy()[:, 0]
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def test_hellokan_prunes_to_three_edges_and_finds_the_formula(capsys) -> None:
    res = load("hellokan").main(small=True)
    out = lines(capsys.readouterr().out)
    x1, x2 = sympy.symbols("x1 x2")
    truth = sympy.exp(sympy.sin(sympy.pi * x1) + x2**2)
    assert res["formula"] == truth  # exact: pi and integer powers, no floats
    assert out["formula"] == "exp(x2**2 + sin(pi*x1))"
    assert out["pruned"] == "width [[2, 0], [1, 0], [1, 0]]"
    coarse = float(out["retrained"].split()[2])
    fine = float(out["grid 10"].split()[2])
    assert fine < coarse / 10  # grid 3 -> 10 lowers the error by more than ten
    x = fresh(2, 500, -1, 1, seed=5)
    assert rmse_vs(res["model"], x, np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)) < 1e-10


def test_example_4_classifies_the_moons_and_its_formulas_keep_the_accuracy(capsys) -> None:
    res = load("example_4_classification").main(small=True)
    out = lines(capsys.readouterr().out)
    x1, x2 = sympy.symbols("x1 x2")
    formula, data = res["_regression"]
    f = sympy.lambdify((x1, x2), formula, "numpy")
    for split in ("train", "test"):
        x, y = data[f"{split}_input"].numpy(), data[f"{split}_label"].numpy()[:, 0]
        acc = float(np.mean(np.round(f(x[:, 0], x[:, 1])) == y))
        assert acc >= 0.95
    assert out["regression formula acc"] == f"train {acc_of(f, data, 'train'):.3f}, test {acc:.3f}"
    logits, data = res["_classification"]
    g = [sympy.lambdify((x1, x2), e, "numpy") for e in logits]
    x, y = data["test_input"].numpy(), data["test_label"].numpy()
    acc = float(np.mean((g[1](x[:, 0], x[:, 1]) > g[0](x[:, 0], x[:, 1])) == y))
    assert acc >= 0.95
    assert out["classification formula acc"].endswith(f"test {acc:.3f}")
    assert float(out["classification"].split()[5].rstrip(",")) >= 0.95  # the network's test acc


def acc_of(f, data, split: str) -> float:
    x, y = data[f"{split}_input"].numpy(), data[f"{split}_label"].numpy()[:, 0]
    return float(np.mean(np.round(f(x[:, 0], x[:, 1])) == y))


def test_example_7_solves_poisson_and_the_error_falls_with_the_grid(capsys) -> None:
    res = load("example_7_pde").main(small=True)
    out = lines(capsys.readouterr().out)
    l2 = [float(out[f"grid {g}"].split()[-1]) for g in (5, 10)]
    assert l2[1] < l2[0]
    x = fresh(2, 2000, -1, 1, seed=7)
    truth = np.sin(np.pi * x[:, 0]) * np.sin(np.pi * x[:, 1])
    assert rmse_vs(res["model"], x, truth) ** 2 < 3 * l2[1] + 1e-5  # fresh points, not the mesh
    assert rmse_vs(res["model"], x, truth) < 0.05


def test_example_9_reads_back_the_log_formula_and_checks_its_domain(capsys) -> None:
    res = load("example_9_singularity").main(small=True)
    out = lines(capsys.readouterr().out)
    model, formula = res["_log"]
    x1, x2 = sympy.symbols("x1 x2")
    truth = sympy.sin(2 * sympy.log(x1) + 2 * sympy.log(x2))
    x = fresh(2, 500, 0.2, 5, seed=9)
    f = sympy.lambdify((x1, x2), formula, "numpy")
    exact = np.sin(2 * (np.log(x[:, 0]) + np.log(x[:, 1])))
    assert np.max(np.abs(f(x[:, 0], x[:, 1]) - exact)) < 1e-8
    assert sympy.simplify(sympy.expand_log(formula - truth, force=True)) == 0
    assert rmse_vs(model, x, exact) < 1e-8
    with pytest.raises(DomainError):
        model.evaluate(torch.tensor([[-1.0, 2.0]], dtype=torch.float64))
    sqrt_model, _ = res["_sqrt"]
    x = fresh(2, 500, -1, 1, seed=10)
    assert rmse_vs(sqrt_model, x, np.hypot(x[:, 0], x[:, 1])) < 1e-4
    assert float(out["sqrt Adam"].split()[2]) < float(out["sqrt fit"].split()[2])


def test_example_3_prints_errors_that_match_float64_maths(capsys) -> None:
    module = load("example_3_deep_formula")
    res = module.main(small=True)
    out = lines(capsys.readouterr().out)
    x = res["dataset"]["test_input"].numpy()
    r2 = x[:, 0] ** 2 + x[:, 1] ** 2, x[:, 2] ** 2 + x[:, 3] ** 2
    truth = np.exp((np.sin(np.pi * r2[0]) + np.sin(np.pi * r2[1])) / 2)
    printed = float(out["[4,2,1,1] grid 5"].split()[-1])
    assert rmse_vs(res["model"], x, truth) == pytest.approx(printed, rel=6e-3)
    shallow = [float(out[f"[4,9,1] grid {g}"].split()[2]) for g in (3, 5)]
    assert shallow[1] < shallow[0] < 0.1  # the two-layer KAN learns, and more with the grid
