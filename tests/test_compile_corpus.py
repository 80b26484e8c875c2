"""Every real-valued formula of the shared corpus compiles exactly (float64, 256 points).

The reference is SymPy's own reading of the corpus text (``tests/corpus.py``), not kanpiler's.
Points where the formula is real only through complex intermediates (``cos(sqrt(x))`` at
``x < 0``: real arithmetic gives NaN there) are outside the language's real semantics and are
counted separately. The tolerance is ``1e-9 * (1 + |ref|)`` plus the reference's own
sensitivity to a few-ulp change of the inputs (ill-conditioned rows such as ``cos(big)``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy
import torch
from corpus import real_rows

import kanpiler


def _real_arithmetic(row, X: np.ndarray) -> np.ndarray:
    """SymPy's expression evaluated in float64 real arithmetic (NaN on complex intermediates)."""
    syms = [sympy.Symbol(v) for v in row.variables]
    f = sympy.lambdify(syms, row.sympy_expr, modules="numpy")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = f(*[X[:, i] for i in range(X.shape[1])])
    return np.broadcast_to(np.asarray(out, dtype=np.float64), (X.shape[0],))


def _tolerance(row, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    bumped = row.reference(X * (1 + 8 * np.finfo(float).eps)).real
    return 1e-9 * (1 + np.abs(y)) + 16 * np.abs(bumped - y)


def test_corpus_compiles_exactly_in_float64(capsys):
    kept, skipped = real_rows(n=256, seed=1)
    checked, complex_only, wrong = 0, [], []
    for row, X, y in kept:
        model = kanpiler.compile(row.formula, list(row.variables), dtype=torch.float64, check=False)
        assert model.variables == list(row.variables)
        real_ok = np.isfinite(_real_arithmetic(row, X))
        if not real_ok.all():
            complex_only.append(row.id)
        with torch.no_grad():
            got = model(torch.from_numpy(X)).numpy()[:, 0]
        err = np.abs(got - y)
        tol = _tolerance(row, X, y)
        if np.any(err[real_ok] > tol[real_ok]):
            wrong.append((row.id, row.formula, float(np.max(err[real_ok] / tol[real_ok]))))
        checked += 1
    with capsys.disabled():
        print(
            f"\ncorpus: {checked} real rows compiled and checked, {len(wrong)} wrong; "
            f"{len(skipped)} rows skipped (reference not real on the box); "
            f"{len(complex_only)} rows real only through complex intermediates on some points "
            f"(those points skipped): {complex_only}"
        )
    assert not wrong, wrong
    assert checked >= 190


@pytest.mark.parametrize("dtype", [torch.float32])
def test_corpus_float32_within_float32_rounding(dtype):
    kept, _ = real_rows(n=64, seed=2)
    eps = torch.finfo(dtype).eps
    for row, X, y in kept[::5]:
        model = kanpiler.compile(row.formula, list(row.variables), dtype=dtype)
        real_ok = np.isfinite(_real_arithmetic(row, X))
        with torch.no_grad():
            got = model(torch.from_numpy(X).to(dtype)).double().numpy()[:, 0]
        # error budget: float32 inputs and every operation rounded, amplified by conditioning
        bumped = row.reference(X * (1 + 64 * eps)).real
        tol = 1e3 * eps * (1 + np.abs(y)) + 4 * np.abs(bumped - y)
        assert np.all(np.abs(got - y)[real_ok] <= tol[real_ok]), row.id
