"""The physics examples recover the formulas their data were built on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import sympy
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _coefficients(expr: sympy.Expr) -> dict[str, float]:
    """Coefficients of the polynomial terms after expansion (tiny shifts dropped)."""
    poly = sympy.Poly(sympy.expand(expr), *sorted(expr.free_symbols, key=str))
    return {
        str(sympy.Mul(*[g**e for g, e in zip(poly.gens, m)])): float(c) for m, c in poly.terms()
    }


def test_conserved_quantity_is_the_energy():
    _, formula, _ = load("physics_conserved").learn(steps=8)
    c = _coefficients(formula)
    assert c["q**2"] == pytest.approx(1.0, abs=2e-3)
    assert c["p**2"] == pytest.approx(0.5, abs=2e-3)
    others = {k: v for k, v in c.items() if k not in ("q**2", "p**2")}
    assert all(abs(v) < 1e-3 for v in others.values()), others


def test_lagrangian_of_the_pendulum():
    _, formula, _ = load("physics_lagrangian").learn(steps=12)
    q, v = sympy.symbols("q v")
    expected = v**2 / 2 + sympy.cos(q) - 1
    f = sympy.lambdify((q, v), formula - expected)
    grid = [(a / 4, b / 4) for a in range(-4, 5) for b in range(-4, 5)]
    assert max(abs(f(a, b)) for a, b in grid) < 2e-3
    assert formula.has(sympy.cos)


def test_prior_correction_is_read_back():
    _, correction, _ = load("physics_prior").learn()
    x = sympy.Symbol("x")
    assert sympy.simplify(correction - (-(x**3) / 2)) == 0
