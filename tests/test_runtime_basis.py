"""B-spline basis and KANLayer: values against independent references, and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanpiler.errors import ShapeError
from kanpiler.runtime import KANLayer
from kanpiler.runtime.basis import Basis, BSplineBasis
from kanpiler.runtime.layer import reference_forward

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return name


def cox_de_boor(x: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """Plain float64 Cox-de Boor recursion: (N, len(t) - k - 1) basis values."""
    n = len(t) - 1
    b = np.array([[1.0 if t[j] <= xi < t[j + 1] else 0.0 for j in range(n)] for xi in x])
    for p in range(1, k + 1):
        nxt = np.zeros((len(x), n - p))
        for j in range(n - p):
            left = (x - t[j]) / (t[j + p] - t[j]) * b[:, j] if t[j + p] > t[j] else 0.0
            right = (
                (t[j + p + 1] - x) / (t[j + p + 1] - t[j + 1]) * b[:, j + 1]
                if t[j + p + 1] > t[j + 1]
                else 0.0
            )
            nxt[:, j] = left + right
        b = nxt
    return b


def _basis(k: int, uniform: bool, grid: int = 5) -> BSplineBasis:
    basis = BSplineBasis(3, grid=grid, k=k, grid_range=(-1.0, 2.0), dtype=torch.float64)
    if not uniform:
        g = torch.Generator().manual_seed(k)
        knots = basis.knots + 0.08 * torch.rand(basis.knots.shape, generator=g, dtype=torch.float64)
        basis.set_grid(knots)
        assert not basis.uniform
    return basis


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("uniform", [True, False])
def test_basis_matches_cox_de_boor_and_scipy(k: int, uniform: bool) -> None:
    basis = _basis(k, uniform)
    x = torch.linspace(-3.0, 4.0, 301, dtype=torch.float64).reshape(-1, 1).repeat(1, 3)
    x[:, 1] = x[:, 1] * 0.9 + 0.05  # a different point set per input
    values = basis(x).numpy()
    for i in range(3):
        t = basis.knots[i].numpy()
        xi = x[:, i].numpy()
        np.testing.assert_allclose(values[:, i], cox_de_boor(xi, t, k), atol=1e-13)
        if k > 0:  # scipy's elements are closed on the right: compare away from the knots
            away = np.min(np.abs(xi[:, None] - t[None, :]), axis=1) > 1e-9
            ref = np.stack(
                [
                    BSpline.basis_element(t[j : j + k + 2], extrapolate=False)(xi)
                    for j in range(len(t) - k - 1)
                ],
                axis=-1,
            )
            np.testing.assert_allclose(values[away, i], np.nan_to_num(ref)[away], atol=1e-13)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("uniform", [True, False])
def test_partition_of_unity_inside_the_grid(k: int, uniform: bool) -> None:
    basis = _basis(k, uniform, grid=7)
    inner = basis.inner
    t = torch.linspace(0, 1, 513, dtype=torch.float64)[:-1].reshape(-1, 1)
    x = inner[:, 0] + (inner[:, -1] - inner[:, 0]) * t
    sums = basis(x).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-14, rtol=0)
    assert (basis(x) >= -1e-15).all()


def test_basis_zero_outside_knots() -> None:
    basis = _basis(3, True)
    far = torch.tensor([[-50.0, 60.0, 1e6]], dtype=torch.float64)
    assert basis(far).abs().max() == 0


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("uniform", [True, False])
def test_layer_gradcheck(k: int, uniform: bool) -> None:
    layer = KANLayer(3, 2, grid=4, k=k, dtype=torch.float64, seed=k)
    if not uniform:
        layer.basis.set_grid(_basis(k, False, grid=4).knots.clone())
    g = torch.Generator().manual_seed(1)
    # points inside the grid and some outside it (the clipped path)
    x = (torch.rand(9, 3, generator=g, dtype=torch.float64) * 4 - 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,))
    inside = (torch.rand(9, 3, generator=g, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (inside,))
    params = (layer.coef, layer.scale_base, layer.scale_sp)
    assert torch.autograd.gradcheck(lambda *p: _with_params(layer, p, inside), params)


def _with_params(layer: KANLayer, params, x):
    base, spline = params[1] * layer.mask, params[2] * layer.mask
    w_spline = (params[0] * spline.unsqueeze(-1)).transpose(1, 2).reshape(-1, layer.out_features)
    from kanpiler.runtime.fused import FusedSpline

    return FusedSpline.apply(x, torch.cat([base, w_spline]), layer.basis)


def test_layer_double_backward() -> None:
    layer = KANLayer(2, 2, grid=5, k=3, dtype=torch.float64, seed=3)
    x = (torch.rand(6, 2, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda inp: layer(inp), (x,))


def test_fused_equals_reference_and_plain_formula() -> None:
    layer = KANLayer(4, 3, grid=6, k=3, dtype=torch.float64, seed=5)
    x = torch.rand(50, 4, dtype=torch.float64) * 2.6 - 1.3
    fused = layer(x)
    ref = reference_forward(x, layer.weight(), layer.basis)
    torch.testing.assert_close(fused, ref, atol=1e-13, rtol=0)
    # the edge formula, written plainly: sum_i w_b*silu(x_i) + w_s*sum_b c_b B_b(x_i)
    basis = np.stack([cox_de_boor(x[:, i].numpy(), layer.knots[i].numpy(), 3) for i in range(4)], 1)
    silu = (x / (1 + torch.exp(-x))).numpy()
    wb, ws, c = (t.detach().numpy() for t in (layer.scale_base, layer.scale_sp, layer.coef))
    plain = np.einsum("ni,io->no", silu, wb) + np.einsum("nib,iob,io->no", basis, c, ws)
    np.testing.assert_allclose(fused.detach().numpy(), plain, atol=1e-13)


def test_layer_rejects_bad_input() -> None:
    layer = KANLayer(3, 2)
    with pytest.raises(ShapeError, match=r"\(N, 3\)"):
        layer(torch.zeros(4, 2))
    with pytest.raises(ShapeError, match="base_fun"):
        KANLayer(2, 2, base_fun="nope")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_device_and_dtype(device: str, dtype: torch.dtype) -> None:
    dev = _device(device)
    layer = KANLayer(3, 2, dtype=dtype, device=dev, seed=0)
    x = torch.rand(8, 3, dtype=dtype, device=dev) * 2 - 1
    y = layer(x)
    assert y.dtype == dtype and y.device.type == dev
    cpu = KANLayer(3, 2, dtype=torch.float64, seed=0)
    torch.testing.assert_close(y.double().cpu(), cpu(x.double().cpu()), atol=1e-5, rtol=1e-5)


class _GaussianRBF(Basis):
    """A basis written outside the package: Gaussian bumps at fixed centres."""

    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("centres", centres)

    @property
    def n_basis(self) -> int:
        return self.centres.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((x.unsqueeze(-1) - self.centres) ** 2) * 4.0)


def test_a_custom_basis_plugs_into_the_layer() -> None:
    centres = torch.linspace(-1, 1, 6, dtype=torch.float64)
    layer = KANLayer(3, 2, basis=_GaussianRBF(centres), dtype=torch.float64, seed=2)
    assert layer.coef.shape == (3, 2, 6)
    x = (torch.rand(20, 3, dtype=torch.float64) * 2 - 1).requires_grad_()
    rbf = np.exp(-((x.detach().numpy()[..., None] - centres.numpy()) ** 2) * 4.0)
    silu = (x / (1 + torch.exp(-x))).detach().numpy()
    wb, ws, c = (t.detach().numpy() for t in (layer.scale_base, layer.scale_sp, layer.coef))
    want = np.einsum("ni,io->no", silu, wb) + np.einsum("nib,iob,io->no", rbf, c, ws)
    np.testing.assert_allclose(layer(x).detach().numpy(), want, atol=1e-13)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,))
