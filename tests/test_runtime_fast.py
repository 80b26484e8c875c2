"""The uniform-grid fast path of KANLayer against the plain autograd path and SciPy."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanpiler.runtime import KANLayer, native
from kanpiler.runtime import fused as layer_module
from kanpiler.runtime.layer import interleave_weight, reference_forward

F64 = torch.float64


def _inside(n: int, n_in: int, seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=g, dtype=F64).mul(1.9).sub(0.95).to(dtype)


@pytest.fixture(autouse=True)
def _torch_path(monkeypatch):
    """These tests check the torch fast path: the native kernels (tested in
    ``test_runtime_native.py``) are switched off."""
    monkeypatch.setattr(native, "kernels", lambda: None)


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the calls of the fused product that took the fast path."""
    taken = []
    original = layer_module._fast_position

    def spy(x, basis):
        out = original(x, basis)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(layer_module, "_fast_position", spy)
    return taken


def _plain_grads(layer: KANLayer, x: torch.Tensor):
    """Output and gradients through plain autograd (dense basis, no fused function)."""
    x = x.detach().clone().requires_grad_()
    out = reference_forward(x, layer.weight(), layer.basis)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype)
    params = [x, layer.coef, layer.scale_base, layer.scale_sp]
    return out, torch.autograd.grad((out * weights).sum(), params), weights


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_fast_path_matches_plain_autograd(k: int, fast_calls) -> None:
    layer = KANLayer(5, 4, grid=7, k=k, dtype=F64, seed=k)
    x = _inside(300, 5, seed=k)
    want, want_grads, weights = _plain_grads(layer, x)
    xr = x.clone().requires_grad_()
    out = layer(xr)
    params = [xr, layer.coef, layer.scale_base, layer.scale_sp]
    grads = torch.autograd.grad((out * weights).sum(), params)
    assert fast_calls == [True]
    torch.testing.assert_close(out, want, atol=1e-13, rtol=0)
    for got, ref in zip(grads, want_grads):
        torch.testing.assert_close(got, ref, atol=1e-11, rtol=1e-11)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fast_path_gradcheck(k: int, fast_calls) -> None:
    layer = KANLayer(3, 2, grid=4, k=k, dtype=F64, seed=k)
    x = _inside(7, 3, seed=10 + k).requires_grad_()
    weight = layer.block_weight().detach().requires_grad_()
    fused = layer_module.FusedSpline.apply
    assert torch.autograd.gradcheck(lambda a, w: fused(a, w, layer.basis), (x, weight))
    assert torch.autograd.gradgradcheck(lambda a, w: fused(a, w, layer.basis), (x, weight))
    assert fast_calls and all(fast_calls)


def test_fast_and_general_paths_agree(fast_calls) -> None:
    """The same uniform grid evaluated by the general (non-uniform) code gives the same."""
    layer = KANLayer(4, 3, grid=6, k=3, dtype=F64, seed=2)
    x = _inside(200, 4, seed=3).requires_grad_()
    fast = layer(x)
    (gx_fast,) = torch.autograd.grad(fast.sum(), x)
    layer.basis.uniform = False  # same knots, general path
    general = layer(x)
    (gx_general,) = torch.autograd.grad(general.sum(), x)
    assert fast_calls == [True, False]
    torch.testing.assert_close(fast, general, atol=1e-13, rtol=0)
    torch.testing.assert_close(gx_fast, gx_general, atol=1e-12, rtol=0)


def test_points_on_knots_and_outside_take_the_right_path(fast_calls) -> None:
    layer = KANLayer(2, 2, grid=5, k=3, dtype=F64, seed=1)
    inner = layer.knots[0, 4:-4]  # the knots strictly inside the grid proper (-1, 1)
    on_knots = torch.stack([inner, inner.flip(0)], dim=1)
    outside = torch.tensor([[-1.5, 0.2], [0.3, 1.0]], dtype=F64)  # x = 1 is outside too
    for x in (on_knots, outside):
        torch.testing.assert_close(
            layer(x), reference_forward(x, layer.weight(), layer.basis), atol=1e-13, rtol=0
        )
    assert fast_calls == [True, False]


def test_float32_fast_path_close_to_float64() -> None:
    wide = KANLayer(6, 5, grid=5, k=3, dtype=F64, seed=4)
    narrow = KANLayer(6, 5, grid=5, k=3, dtype=torch.float32, seed=4)
    x = _inside(500, 6, seed=5)
    x32 = x.float().requires_grad_()
    x64 = x.clone().requires_grad_()
    (g32,) = torch.autograd.grad(narrow(x32).sum(), x32)
    (g64,) = torch.autograd.grad(wide(x64).sum(), x64)
    torch.testing.assert_close(narrow(x32).double(), wide(x64), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(g32.double(), g64, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_uniform_derivatives_match_scipy(k: int) -> None:
    layer = KANLayer(1, 1, grid=6, k=k, dtype=F64)
    x = torch.linspace(-0.99, 0.99, 157, dtype=F64).reshape(-1, 1)
    t = layer.knots[0].numpy()
    x = x[np.min(np.abs(x.numpy() - t[None, :]), axis=1) > 1e-9]  # k <= 1: kinks at knots
    start, _, dvals = layer.basis.local(x, derivative=True)
    for r in range(k + 1):
        j = (start[:, 0] + r).numpy()
        want = np.array(
            [
                BSpline.basis_element(t[jj : jj + k + 2], extrapolate=False).derivative()(xi)
                if k > 0
                else 0.0
                for jj, xi in zip(j, x[:, 0].numpy())
            ]
        )
        np.testing.assert_allclose(dvals[:, 0, r].numpy(), np.nan_to_num(want), atol=1e-12)


def test_vmap_jacobian_matches_autograd() -> None:
    from torch.func import jacrev, vmap

    layer = KANLayer(3, 2, grid=5, k=3, dtype=F64, seed=0)
    x = torch.cat([_inside(6, 3, seed=1), torch.tensor([[1.7, -2.0, 0.0]], dtype=F64)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no data-dependent branch, no searchsorted warning
        jac = vmap(jacrev(lambda v: layer(v.unsqueeze(0))[0]))(x)
    xr = x.clone().requires_grad_()
    rows = [torch.autograd.grad(layer(xr)[:, o].sum(), xr)[0] for o in range(2)]
    torch.testing.assert_close(jac, torch.stack(rows, dim=1), atol=1e-13, rtol=0)


def test_block_and_interleaved_weights_are_the_same_rows() -> None:
    layer = KANLayer(3, 2, grid=4, k=3, dtype=F64, seed=6)
    block, inter = layer.block_weight(), layer.weight()
    nb = layer.basis.n_basis
    for i in range(3):
        torch.testing.assert_close(inter[i * (nb + 1)], block[i], rtol=0, atol=0)
        rows = inter[i * (nb + 1) + 1 : (i + 1) * (nb + 1)]
        torch.testing.assert_close(rows, block[3 + i * nb : 3 + (i + 1) * nb], rtol=0, atol=0)
        want = layer.coef[i].t() * layer.scale_sp[i]
        torch.testing.assert_close(rows, want, rtol=0, atol=0)
    torch.testing.assert_close(interleave_weight(block, 3), inter, rtol=0, atol=0)


def test_saved_memory_within_twice_the_dense_product() -> None:
    """What autograd keeps for backward: at most twice what ``feats @ W`` keeps."""
    layer = KANLayer(16, 8, grid=5, k=3, seed=0)
    x = _inside(512, 16, seed=2, dtype=torch.float32).requires_grad_()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    feats_bytes = 512 * 16 * (layer.basis.n_basis + 1) * 4
    assert sum(seen.values()) <= 2 * feats_bytes


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_the_ends_of_the_grid_stay_on_the_fast_path(dtype: torch.dtype, fast_calls) -> None:
    """Data scaled to exactly [-1, 1] (both ends included) keeps the fast path, same values."""
    layer = KANLayer(2, 3, grid=5, k=3, dtype=dtype, seed=8)
    x = torch.linspace(-1, 1, 101, dtype=dtype).reshape(-1, 1).repeat(1, 2).requires_grad_()
    out = layer(x)
    (gx,) = torch.autograd.grad(out.sum(), x)
    wide = copy.deepcopy(layer).double()  # the same knots and weights, in float64
    xr = x.detach().double().requires_grad_()
    want = reference_forward(xr, wide.weight(), wide.basis)
    (gx_want,) = torch.autograd.grad(want.sum(), xr)
    assert fast_calls == [True]
    tol = 1e-13 if dtype == F64 else 1e-5
    torch.testing.assert_close(out.double(), want, atol=tol, rtol=0)
    torch.testing.assert_close(gx.double(), gx_want, atol=100 * tol, rtol=0)


def test_live_graphs_retained_graphs_and_inference_mode_keep_their_own_features() -> None:
    """Graphs alive at once, retained graphs and inference mode each keep their own feature
    matrices: every gradient matches plain autograd."""
    layer = KANLayer(64, 8, grid=5, k=3, dtype=F64, seed=3)  # 2048 x 576 float64 features
    xs = [_inside(2048, 64, seed=s).requires_grad_() for s in range(3)]
    outs = [layer(x) for x in xs]  # three graphs alive together
    with torch.inference_mode():
        layer(_inside(2048, 64, seed=9))
    for x, out in zip(xs, outs):
        got = torch.autograd.grad(out.sum(), (x, layer.coef), retain_graph=True)
        again = torch.autograd.grad(out.sum(), (x, layer.coef))  # the retained graph
        xr = x.detach().clone().requires_grad_()
        ref = reference_forward(xr, layer.weight(), layer.basis).sum()
        want = torch.autograd.grad(ref, (xr, layer.coef))
        for a, b, w in zip(got, again, want):
            torch.testing.assert_close(a, w, atol=1e-12, rtol=0)
            torch.testing.assert_close(b, w, atol=1e-12, rtol=0)
    layer(xs[0]).sum().backward()  # a fresh graph after inference mode
