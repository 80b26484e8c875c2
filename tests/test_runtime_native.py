"""The native (compiled on first use) cubic kernels against the torch path and the reference,
and the silent fallback when no compiler exists or the build fails."""

from __future__ import annotations

import subprocess

import pytest
import torch

from kanpiler.runtime import KANLayer, fused, native
from kanpiler.runtime.layer import reference_forward

F64 = torch.float64
HAVE_CC = native.compiler() is not None


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """Every test probes and builds afresh, and leaves no state behind."""
    monkeypatch.delenv("KANPILER_NATIVE", raising=False)
    native.reset()
    yield
    native.reset()


@pytest.fixture
def native_calls(monkeypatch):
    """Counts the forward calls that the native kernels handled."""
    taken = []
    original = fused._native_forward

    def spy(ctx, x, weight, basis):
        out = original(ctx, x, weight, basis)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(fused, "_native_forward", spy)
    return taken


def _points(n: int, n_in: int, seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, n_in, generator=g, dtype=F64) * 2 - 1
    x[0], x[1] = 1.0, -1.0  # the ends of the grid proper are inside
    return x.to(dtype)


def _grads(layer: KANLayer, x: torch.Tensor, plain: bool = False):
    xr = x.clone().requires_grad_()
    out = reference_forward(xr, layer.weight(), layer.basis) if plain else layer(xr)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    w = w.to(out.dtype)
    params = [xr, layer.coef, layer.scale_base, layer.scale_sp]
    return [out, *torch.autograd.grad((out * w).sum(), params)]


needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine")


@needs_cc
@pytest.mark.parametrize("shape", [(300, 5, 4, 7), (70, 300, 3, 5)])  # 300 inputs: 2 blocks
def test_native_matches_reference_float64(shape, native_calls) -> None:
    n, n_in, n_out, grid = shape
    layer = KANLayer(n_in, n_out, grid=grid, k=3, dtype=F64, seed=1)
    x = _points(n, n_in, seed=2)
    got, want = _grads(layer, x), _grads(layer, x, plain=True)
    assert native_calls == [True]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@needs_cc
def test_native_float32_close_to_float64(native_calls) -> None:
    wide = KANLayer(6, 5, grid=5, k=3, dtype=F64, seed=4)
    narrow = KANLayer(6, 5, grid=5, k=3, dtype=torch.float32, seed=4)
    x = _points(500, 6, seed=5)
    for a, b in zip(_grads(narrow, x.float()), _grads(wide, x)):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4)
    assert native_calls == [True, True]


@needs_cc
def test_rows_split_across_threads_give_the_same(monkeypatch) -> None:
    layer = KANLayer(8, 3, grid=5, k=3, dtype=F64, seed=3)
    x = _points(999, 8, seed=6)
    one = _grads(layer, x)
    monkeypatch.setattr(native, "WORK_PER_THREAD", 64)
    old = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert len(native._chunks(999, 8 * 9)) == 3
        split = _grads(layer, x)
        monkeypatch.setattr(native, "ROW_WISE", 4)  # the row-wise variant, same values
        rows = _grads(layer, x)
    finally:
        torch.set_num_threads(old)
    for a, b, c in zip(one, split, rows):  # BLAS may sum in another order with 3 threads
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)
        torch.testing.assert_close(a, c, atol=1e-13, rtol=0)


@needs_cc
def test_points_outside_and_nan_fall_back(native_calls) -> None:
    layer = KANLayer(2, 2, grid=5, k=3, dtype=F64, seed=1)
    outside = torch.tensor([[-1.5, 0.2], [0.3, 0.9]], dtype=F64)
    for a, b in zip(_grads(layer, outside), _grads(layer, outside, plain=True)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    nan = torch.tensor([[float("nan"), 0.2], [0.3, 0.9]], dtype=F64)
    out = layer(nan)
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()
    assert native_calls == [False, False]


@needs_cc
def test_native_gradcheck_and_double_backward(native_calls) -> None:
    layer = KANLayer(3, 2, grid=4, k=3, dtype=F64, seed=3)
    x = (_points(9, 3, seed=4) * 0.95).requires_grad_()
    weight = layer.block_weight().detach().requires_grad_()
    apply = fused.FusedSpline.apply
    assert torch.autograd.gradcheck(lambda a, w: apply(a, w, layer.basis), (x, weight))
    assert torch.autograd.gradgradcheck(lambda a, w: apply(a, w, layer.basis), (x, weight))
    assert native_calls and all(native_calls)


def _forbid_build(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("no build may be attempted")

    monkeypatch.setattr(subprocess, "run", refuse)


def test_no_compiler_falls_back_without_building(monkeypatch, native_calls) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", "")
    _forbid_build(monkeypatch)
    assert native.compiler() is None
    assert native.kernels() is None
    layer = KANLayer(4, 3, grid=5, k=3, dtype=F64, seed=0)
    x = _points(50, 4, seed=1)
    for a, b in zip(_grads(layer, x), _grads(layer, x, plain=True)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert native_calls == [False]


def test_switched_off_by_environment(monkeypatch) -> None:
    monkeypatch.setenv("KANPILER_NATIVE", "0")
    _forbid_build(monkeypatch)
    assert native.kernels() is None


def test_failed_build_falls_back(monkeypatch, tmp_path) -> None:
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    assert native.compiler() == str(broken)
    assert native.kernels() is None
    layer = KANLayer(3, 2, grid=5, k=3, dtype=F64, seed=0)
    x = _points(20, 3, seed=2)
    torch.testing.assert_close(layer(x), reference_forward(x, layer.weight(), layer.basis))


@pytest.mark.parametrize("use_native", [True, False])
def test_fused_layer_gradients_reach_the_parameters(use_native, monkeypatch) -> None:
    """FusedLayer builds the block weight itself and takes its gradient back to coef,
    scale_base and scale_sp by hand; first and second derivatives match autograd."""
    if not use_native:
        monkeypatch.setattr(native, "kernels", lambda: None)
    elif not HAVE_CC:
        pytest.skip("no C compiler on this machine")
    layer = KANLayer(3, 2, grid=4, k=3, dtype=F64, seed=5)
    layer.mask[1, 0] = 0.0
    x = (_points(8, 3, seed=6) * 0.9).requires_grad_()
    params = [t.detach().clone().requires_grad_() for t in (layer.coef, layer.scale_base,
                                                             layer.scale_sp)]  # fmt: skip

    def f(a, coef, base, sp):
        return fused.FusedLayer.apply(a, coef, base, sp, layer.mask, layer.basis)

    assert torch.autograd.gradcheck(f, (x, *params))
    assert torch.autograd.gradgradcheck(f, (x, *params))


def test_trainable_mask_gets_its_gradient() -> None:
    layer = KANLayer(3, 2, grid=4, k=3, dtype=F64, seed=5)
    layer.mask.requires_grad_(True)
    x = _points(20, 3, seed=7)
    (got,) = torch.autograd.grad(layer(x).sum(), layer.mask)
    (want,) = torch.autograd.grad(
        reference_forward(x, layer.weight(), layer.basis).sum(), layer.mask
    )
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def _run_two_jobs() -> list:
    return native._run([lambda: 1, lambda: 2])


def test_worker_threads_are_made_again_in_a_forked_child() -> None:
    """A forked process (e.g. a DataLoader worker) gets threads of its own, not a hang on the
    parent's, which do not exist there."""
    import multiprocessing

    assert _run_two_jobs() == [1, 2]  # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_run_two_jobs).get(timeout=120) == [1, 2]


def test_loading_the_kernels_keeps_subnormal_numbers() -> None:
    """A library linked with -ffast-math would switch the process to flush-to-zero, after
    which 5e-324 reads as 0.0 everywhere (parsing, hypothesis, SymPy)."""
    from kanpiler.runtime.bases.native import dense_kernel

    native.kernels()
    dense_kernel()
    tiny = float("5e-324")
    assert tiny > 0.0 and tiny / 2 == 0.0
    assert float(torch.tensor([tiny], dtype=torch.float64) * 1.0) == tiny
