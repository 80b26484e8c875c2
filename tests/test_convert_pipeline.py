"""KANs trained from data (not compiled) come back as their formulas through the pipeline."""

from __future__ import annotations

import pytest
import sympy
import torch

from kanpiler.convert import PipelineResult, symbolic_pipeline
from kanpiler.convert.extract import bounded_simplify
from kanpiler.errors import KanpilerError
from kanpiler.runtime import MultKAN

x, y, z = sympy.symbols("x y z")
NAMES = ["x", "y", "z"]


def data(truth: sympy.Expr, n_vars: int, n: int = 1000, seed: int = 0):
    """Samples in [-1, 1]^n and targets from an independent float64 NumPy evaluation."""
    gen = torch.Generator().manual_seed(seed)
    X = 2 * torch.rand(n, n_vars, generator=gen, dtype=torch.float64) - 1
    f = sympy.lambdify(sympy.symbols(NAMES[:n_vars]), truth, modules="numpy")
    Y = torch.as_tensor(f(*[X[:, k].numpy() for k in range(n_vars)]), dtype=torch.float64)
    return X, Y.reshape(-1, 1)


CASES = [
    ("x*y", x * y, [2, [0, 1], 1]),
    ("sin(x) + x**2", sympy.sin(x) + x**2, [1, 1]),
    ("exp(sin(pi*x) + y**2)", sympy.exp(sympy.sin(sympy.pi * x) + y**2), [2, 1, 1]),
    ("x**2 + y**2", x**2 + y**2, [2, 1]),
    ("(x + y)*z", (x + y) * z, [3, [0, 1], 1]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "truth", "width"), CASES, ids=[c[0] for c in CASES])
def test_trained_kan_comes_back_as_its_formula(text: str, truth: sympy.Expr, width: list) -> None:
    n_vars = width[0]
    X, Y = data(truth, n_vars)
    model = MultKAN(width, grid=5, k=3, seed=0, dtype=torch.float64, variables=NAMES[:n_vars])
    history = model.fit(X, Y, steps=50, progress=False)
    assert history["train_rmse"][-1] < 1e-2
    result = symbolic_pipeline(model, X, Y)
    (found,) = result.expression
    # sympy.simplify under a time bound, so a wrong answer fails instead of hanging
    assert bounded_simplify(found - truth, timeout=20.0) == 0, (text, found, str(result.report))
    assert not found.atoms(sympy.Float)
    assert result.rmse < 1e-2 and isinstance(result, PipelineResult)
    assert str(found) in str(result)


def test_pipeline_refuses_when_an_edge_fits_nothing() -> None:
    X, Y = data(sympy.sign(x) * 0.5 + x, 1, n=300)
    model = MultKAN([1, 1], grid=10, seed=0, dtype=torch.float64, variables=["x"])
    model.fit(X, Y, steps=20, progress=False)
    with pytest.raises(KanpilerError, match="fit no library function"):
        symbolic_pipeline(model, X, Y, library=["x", "exp"], r2_threshold=0.9999, prune=False)


@pytest.mark.slow
def test_discover_example_runs(capsys: pytest.CaptureFixture) -> None:
    import runpy
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "discover.py"
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "structure: f = x * y" in out
    assert "formula: exp(y**2 + sin(pi*x))" in out
