"""The native whole-model kernel (outputs, losses, gradients) and the native BFGS iteration
against autograd and the tensor code, and the silent fallback without a compiler."""

from __future__ import annotations

import pytest
import torch

from kanpiler.runtime import MultKAN, native, native_model
from kanpiler.runtime.objective import Objective, Penalty, mse_per_member
from kanpiler.runtime.optimizers import BatchedBFGS
from kanpiler.runtime.stack import Stack

F64 = torch.float64
needs_cc = pytest.mark.skipif(native.compiler() is None, reason="no C compiler on this machine")
TOL = {torch.float64: 1e-12, torch.float32: 2e-5}


@pytest.fixture
def isolated(monkeypatch):
    """The kernel probed and built afresh, and forgotten again after the test (the other
    tests share one build: compiling takes seconds)."""
    monkeypatch.delenv("KANPILER_NATIVE", raising=False)
    native_model.reset()
    yield
    native_model.reset()


def _data(n: int, n_in: int, n_out: int, seed: int, dtype, spread: float = 1.3):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, n_in, generator=g, dtype=F64) * 2 - 1) * spread  # some outside the grid
    y = torch.rand(n, n_out, generator=g, dtype=F64)
    return x.to(dtype), y.to(dtype)


def _autograd(model: MultKAN, x, y):
    params = [p for li in range(model.depth) for p in
              (model.layers[li].coef, model.layers[li].scale_base, model.layers[li].scale_sp)]  # fmt: skip
    out = model(x)
    loss = ((out - y) ** 2).mean()
    return out.detach(), loss.detach(), torch.autograd.grad(loss, params), params


def _native(model: MultKAN, x, y):
    params = [p for li in range(model.depth) for p in
              (model.layers[li].coef, model.layers[li].scale_base, model.layers[li].scale_sp)]  # fmt: skip
    grads = {id(p): torch.full_like(p, float("nan")) for p in params}  # must be overwritten
    kern = native_model.Model(model, grads)
    cols = torch.arange(y.shape[1]).unsqueeze(0)
    out, loss = kern.run(x, y, cols, backward=True)
    assert loss is not None
    return out.clone(), loss, [grads[id(p)] for p in params]


def _close(a: torch.Tensor, b: torch.Tensor, dtype) -> None:
    scale = max(float(b.abs().max()), 1e-3)
    assert float((a.double() - b.double()).abs().max()) <= TOL[dtype] * scale


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("width", "k", "grid"), [([2, 5, 1], 3, 5), ([3, 4, 2, 2], 2, 4),
                                                  ([2, 3, 1], 1, 3), ([1, 2], 5, 6)])  # fmt: skip
def test_values_and_gradients_match_autograd(dtype, width, k, grid):
    model = MultKAN(width, grid=grid, k=k, seed=1, dtype=dtype)
    x, y = _data(97, width[0], width[-1], 2, dtype)
    with torch.no_grad():
        model.layers[0].mask[0, 1] = 0.0  # an edge switched off is skipped
    for adapt in (False, True):  # uniform knots, then non-uniform ones after a grid update
        if adapt:
            model.update_grid(_data(200, width[0], 1, 3, dtype, spread=1.0)[0])
            assert not model.layers[0].basis.uniform
        assert native_model.applies(model)
        out, loss, grads, _ = _autograd(model, x, y)
        n_out, n_loss, n_grads = _native(model, x, y)
        _close(n_out, out, dtype)
        assert abs(float(n_loss[0]) - float(loss)) <= TOL[dtype] * float(loss)
        for got, want in zip(n_grads, grads):
            _close(got, want, dtype)


@needs_cc
def test_gradient_matches_finite_differences():
    model = MultKAN([2, 3, 1], grid=4, k=3, seed=4, dtype=F64)
    x, y = _data(50, 2, 1, 5, F64)
    model.update_grid(x)
    _, _, grads = _native(model, x, y)
    kern = native_model.Model(model)
    cols = torch.zeros(1, 1, dtype=torch.long)
    for p, g, idx in ((model.layers[0].coef, grads[0], (1, 2, 3)),
                      (model.layers[1].scale_sp, grads[5], (2, 0)),
                      (model.layers[0].scale_base, grads[1], (0, 1))):  # fmt: skip
        with torch.no_grad():
            old = float(p[idx])
            p[idx] = old + 1e-6
            up = float(kern.run(x, y, cols)[1][0])
            p[idx] = old - 1e-6
            down = float(kern.run(x, y, cols)[1][0])
            p[idx] = old
        assert abs((up - down) / 2e-6 - float(g[idx])) < 1e-7


@needs_cc
def test_stacked_restarts_give_every_member_its_loss_and_gradient():
    members = [MultKAN([2, 3, 1], grid=4, seed=s, dtype=F64) for s in range(3)]
    x, y = _data(64, 2, 1, 6, F64)
    stack = Stack(members)
    stack.model.update_grid(stack.inputs(x))
    fast = Objective(stack, Penalty(), None)
    assert fast.native is not None
    fast.set_batch(x, y)
    theta = stack.theta()
    loss, grad = fast(theta)
    slow = Objective(stack, Penalty(), None)
    slow.native = None
    slow.set_batch(x, y)
    want_loss, want_grad = slow(theta)
    assert torch.allclose(loss, want_loss, rtol=1e-12, atol=0)
    assert torch.allclose(grad, want_grad, rtol=1e-10, atol=1e-14)
    with torch.no_grad():
        assert torch.allclose(mse_per_member(fast.predict(x), y), want_loss, rtol=1e-12)


def test_models_the_kernel_does_not_cover():
    assert not native_model.applies(MultKAN([2, [1, 1], 1], dtype=F64))  # mult nodes
    sym = MultKAN([2, 2, 1], dtype=F64)
    sym.set_symbolic(0, 0, 0, "sin")
    assert not native_model.applies(sym)
    assert not native_model.applies(MultKAN([2, 2, 1], affine_trainable=True))
    assert not native_model.applies(MultKAN([2, 2, 1], basis="rbf"))
    assert not native_model.applies(MultKAN([2, 2, 1], dtype=torch.float16))


def test_without_a_compiler_fit_takes_the_torch_path(monkeypatch, isolated):
    x, y = _data(80, 2, 1, 7, F64, spread=1.0)
    results = []
    for env in ("0", "1"):
        monkeypatch.setenv("KANPILER_NATIVE", env)
        native_model.reset()
        model = MultKAN([2, 3, 1], grid=4, seed=0, dtype=F64)
        hist = model.fit(x, y, steps=3, restarts=1, warmup=0, progress=False)
        assert (native_model.kernel() is None) == (env == "0" or native.compiler() is None)
        results.append((hist["train_loss"], model(x).detach()))
    (loss0, out0), (loss1, out1) = results
    assert loss0 == pytest.approx(loss1, rel=1e-6)
    assert torch.allclose(out0, out1, rtol=1e-5, atol=1e-7)


def test_failed_build_is_none(monkeypatch, isolated):
    monkeypatch.setattr(native, "compiler", lambda: "/bin/false")
    assert native_model.kernel() is None
    assert not native_model.applies(MultKAN([2, 2, 1], dtype=F64))


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_bfgs_iteration_matches_the_tensor_code(dtype):
    g = torch.Generator().manual_seed(0)
    r, p = 3, 6
    a = torch.randn(r, p, p, generator=g, dtype=F64)
    a = (a @ a.transpose(1, 2) + torch.eye(p, dtype=F64)).to(dtype)
    b = torch.randn(r, p, generator=g, dtype=F64).to(dtype)

    def evaluate(theta):
        value = 0.5 * torch.einsum("rp,rpq,rq->r", theta, a, theta) + (b * theta).sum(1)
        grad = torch.einsum("rpq,rq->rp", a, theta) + b + 4 * theta**3
        return value + (theta**4).sum(1), grad

    fast = BatchedBFGS(r, p, dtype=dtype, native=True)
    slow = BatchedBFGS(r, p, dtype=dtype, native=False)
    t_fast = t_slow = torch.zeros(r, p, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for _ in range(8):
        t_fast, t_slow = fast.iterate(t_fast, evaluate), slow.iterate(t_slow, evaluate)
        assert float((t_fast - t_slow).abs().max()) <= tol
        assert torch.equal(fast.fresh, slow.fresh) and torch.equal(fast.rejected, slow.rejected)
    assert float((fast.h - slow.h).abs().max()) <= tol * 100
    assert fast.evaluations == slow.evaluations == 9


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_model_forward_and_backward_by_the_kernel(dtype):
    model = MultKAN([2, 4, 2], grid=4, k=3, seed=8, dtype=dtype)
    x = _data(90, 2, 1, 9, dtype)[0].requires_grad_()
    model.update_grid(x.detach() * 0.8)
    assert native_model.bound(model) is not None
    params = [x, *native_model._params(model)]
    weight = torch.randn(90, 2, generator=torch.Generator().manual_seed(1), dtype=F64).to(dtype)
    fast = model(x)
    plain = model.run(x)[0]  # the layers' own path
    _close(fast.detach(), plain.detach(), dtype)
    for got, want in zip(torch.autograd.grad((fast * weight).sum(), params),
                         torch.autograd.grad((plain * weight).sum(), params)):  # fmt: skip
        _close(got, want, dtype)
    # a graph of the gradient (as physics-informed losses take) goes through the layers
    gx = torch.autograd.grad(model(x).sum(), x, create_graph=True)[0]
    gx_plain = torch.autograd.grad(model.run(x)[0].sum(), x, create_graph=True)[0]
    _close(gx.detach(), gx_plain.detach(), dtype)
    coef = model.layers[0].coef
    got = torch.autograd.grad(gx.square().sum(), coef)[0]
    want = torch.autograd.grad(gx_plain.square().sum(), coef)[0]
    _close(got, want, dtype)


@needs_cc
def test_model_forward_follows_changes_of_the_model():
    model = MultKAN([2, 3, 1], grid=4, seed=2, dtype=F64)
    x = _data(40, 2, 1, 3, F64)[0]
    assert native_model.bound(model) is not None
    model.set_symbolic(0, 1, 2, "sin")  # a symbolic edge: the kernel no longer applies
    assert native_model.bound(model) is None
    assert torch.allclose(model(x), model.run(x)[0], rtol=0, atol=0)
    model.unfix_symbolic(0, 1, 2)
    assert native_model.bound(model) is not None
    with torch.no_grad():
        model.node_scale[0].fill_(2.0)  # a node scale: the kernel does not apply
    assert native_model.bound(model) is None
    assert torch.allclose(model(x), model.run(x)[0], rtol=0, atol=0)
