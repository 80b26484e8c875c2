"""Least squares, grid updates and grid extension (the function is kept)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kanpiler.errors import FitError
from kanpiler.numerics import lstsq, normal_equations
from kanpiler.runtime import MultKAN
from kanpiler.runtime.grid import curve_to_coef

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return name


def _rank_deficient(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=(3, 40, 6))
    a[:, :, 4] = a[:, :, 1] + a[:, :, 2]  # dependent column
    a[:, :, 5] = 0.0  # an empty basis function (no samples in its support)
    return a, rng.normal(size=(3, 40, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_lstsq_rank_deficient_matches_pinv(device: str) -> None:
    dev = _device(device)
    a, b = _rank_deficient(np.random.default_rng(0))
    want = np.linalg.pinv(a) @ b
    got = lstsq(torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)).cpu().numpy()
    # same residual as the minimum-norm solution, and finite
    np.testing.assert_allclose(a @ got - b, a @ want - b, atol=1e-8)
    assert np.isfinite(got).all()


def test_normal_equation_path_on_rank_deficient_data() -> None:
    a, b = _rank_deficient(np.random.default_rng(1))
    got = normal_equations(torch.from_numpy(a), torch.from_numpy(b), 0.0).numpy()
    want = np.linalg.pinv(a) @ b
    np.testing.assert_allclose(a @ got - b, a @ want - b, atol=1e-6)


def test_lstsq_refuses_non_finite_input() -> None:
    a = torch.ones(4, 2, dtype=torch.float64)
    b = torch.tensor([[1.0], [float("nan")], [0.0], [0.0]], dtype=torch.float64)
    with pytest.raises(FitError, match="NaN"):
        lstsq(a, b)


@pytest.mark.parametrize("g1, g2", [(3, 9), (5, 10), (5, 20)])
def test_grid_extension_keeps_the_function(g1: int, g2: int) -> None:
    m = MultKAN([2, [3, 1], 1], grid=g1, dtype=torch.float64, seed=1, noise_scale=1.0)
    x = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    m.update_grid(x)  # non-uniform grids first: extension must keep those too
    assert not m.layers[0].basis.uniform
    finer = m.refine(g2, x)
    assert finer.layers[0].basis.n_intervals == g2 and m.layers[0].basis.n_intervals == g1
    before, after = m(x), finer(x)
    rel = (after - before).abs().max() / before.abs().max()
    assert rel < 1e-6


def test_grid_update_follows_the_data_and_keeps_the_curves() -> None:
    m = MultKAN([1, 2], grid=10, dtype=torch.float64, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 1, generator=g, dtype=torch.float64) ** 2 * 1.4 - 0.6
    with torch.no_grad():  # smooth curves: sin(3x) and x^2 as splines
        xs = torch.linspace(-1, 1, 200, dtype=torch.float64).reshape(-1, 1)
        target = torch.stack([torch.sin(3 * xs), xs**2], dim=-1)
        m.layers[0].coef.copy_(curve_to_coef(xs, target, m.layers[0].basis))
    y0 = m(x)
    m.update_grid(x)
    inner = m.layers[0].basis.inner[0]
    lo, hi = float(x.min()), float(x.max())
    assert abs(float(inner[0]) - lo) < 1e-12 and abs(float(inner[-1]) - hi) < 0.02 * (hi - lo)
    # knots follow the sample quantiles (2% uniform blend)
    q = torch.quantile(x[:, 0], torch.linspace(0, 1, 11, dtype=torch.float64)[1:-1])
    assert (inner[1:-1] - q).abs().max() < 0.03
    # a finer grid where the data are: the curves are kept to the spline accuracy
    assert (m(x) - y0).abs().max() < 3e-3 * y0.abs().max()


def test_grid_update_with_constant_input_stays_finite() -> None:
    m = MultKAN([2, 1], grid=5, dtype=torch.float64)
    x = torch.zeros(50, 2, dtype=torch.float64)
    x[:, 1] = torch.linspace(-1, 1, 50, dtype=torch.float64)
    m.update_grid(x)
    assert torch.isfinite(m.layers[0].knots).all() and torch.isfinite(m(x)).all()
