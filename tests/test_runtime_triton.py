"""The fused Triton B-spline kernels, run on CPU in Triton's interpreter (and on CUDA when
there is a GPU), against the plain autograd path.

Triton's interpreter must be chosen before Triton is imported, and with it set every CPU layer
in the process would take the (slow) interpreted kernels. So in an ordinary test run, one test
starts this file again in a fresh process with ``TRITON_INTERPRET=1``, where the kernel cases
run; they are skipped in the outer process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from kanpiler.runtime import KANLayer, fused, triton_spline
from kanpiler.runtime.layer import reference_forward

pytest.importorskip("triton")

F64 = torch.float64
INNER = os.environ.get("TRITON_INTERPRET") == "1"
inner = pytest.mark.skipif(not INNER, reason="runs in the TRITON_INTERPRET=1 subprocess")


@pytest.mark.skipif(INNER, reason="this is the subprocess")
def test_kernels_in_triton_interpreter() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _points(n: int, n_in: int, seed: int, dtype=F64, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, n_in, generator=g, dtype=F64) * 2.4 - 1.2  # some outside the grid
    x[0], x[1] = 1.0, -1.0
    return x.to(dtype=dtype, device=device)


def _grads(layer: KANLayer, x: torch.Tensor, plain: bool):
    xr = x.clone().requires_grad_()
    out = reference_forward(xr, layer.weight(), layer.basis) if plain else layer(xr)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    params = [xr, layer.coef, layer.scale_base, layer.scale_sp]
    return [out, *torch.autograd.grad((out * w.to(out)).sum(), params)]


@inner
@pytest.mark.parametrize(("dtype", "tol"), [(F64, 1e-12), (torch.float32, 2e-5)])
def test_layer_through_triton_matches_reference(interpret, monkeypatch, dtype, tol) -> None:
    taken = []
    monkeypatch.setattr(fused.triton_spline, "forward", _spy(triton_spline.forward, taken))
    layer = KANLayer(5, 40, grid=6, k=3, dtype=dtype, seed=1)  # 35 features, 40 outputs
    x = _points(70, 5, seed=2, dtype=dtype)  # three row tiles
    for got, want in zip(_grads(layer, x, False), _grads(layer, x, True)):
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    assert taken == [True]


def _spy(fn, taken):
    def wrapped(*args):
        taken.append(True)
        return fn(*args)

    return wrapped


@inner
def test_features_equal_the_dense_basis(interpret) -> None:
    layer = KANLayer(3, 2, grid=5, k=3, dtype=F64, seed=0)
    x = _points(40, 3, seed=4)
    dense = torch.cat([torch.nn.functional.silu(x), layer.basis(x).reshape(40, -1)], dim=1)
    torch.testing.assert_close(triton_spline.features(x, layer.basis), dense, atol=1e-14, rtol=0)


@inner
def test_double_backward_goes_through_the_reference(interpret) -> None:
    layer = KANLayer(2, 2, grid=4, k=3, dtype=F64, seed=3)
    x = (_points(6, 2, seed=5) * 0.9).requires_grad_()
    weight = layer.block_weight().detach().requires_grad_()
    apply = fused.FusedSpline.apply
    assert torch.autograd.gradgradcheck(lambda a, w: apply(a, w, layer.basis), (x, weight))


def test_not_used_without_interpreter_or_gpu(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    layer = KANLayer(2, 2, grid=4, k=3, dtype=F64)
    assert not triton_spline.applies(torch.zeros(3, 2, dtype=F64), layer.basis)
    assert not triton_spline.available(torch.zeros(3, 2, dtype=torch.int64))
    layer.basis.uniform = False
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not triton_spline.applies(torch.zeros(3, 2, dtype=F64), layer.basis)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_kernels_match_reference() -> None:
    layer = KANLayer(64, 48, grid=10, k=3, dtype=torch.float32, device="cuda", seed=0)
    x = _points(1000, 64, seed=6, dtype=torch.float32, device="cuda")
    with torch.backends.cuda.matmul.flags(allow_tf32=False):
        for got, want in zip(_grads(layer, x, False), _grads(layer, x, True)):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
