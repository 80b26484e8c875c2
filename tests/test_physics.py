"""Physics-informed training: input derivatives, domains, conditions, the training loop."""

from __future__ import annotations

import math

import pytest
import torch

from kanpiler.errors import ConfigError, FitError, KanpilerError, ShapeError
from kanpiler.physics import Box, Condition, Derivatives, Stage, jets, resample, solve
from kanpiler.runtime import MultKAN

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _kan(dtype=F64, width=(3, [3, 2], 1), grid=7) -> MultKAN:
    model = MultKAN(list(width), grid=grid, k=3, dtype=dtype, seed=1)
    model.set_symbolic(0, 0, 1, "sin")  # one symbolic edge beside the splines
    return model


def _points(n: int, dim: int, dtype=F64, scale: float = 0.95) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return ((torch.rand(n, dim, generator=gen, dtype=F64) * 2 - 1) * scale).to(dtype)


def _central(model, x: torch.Tensor, i: int, j: int, h: float = 2e-5) -> torch.Tensor:
    """Central finite difference of d^2 u / dx_i dx_j in float64."""
    ei = torch.zeros(x.shape[1], dtype=x.dtype)
    ej = torch.zeros(x.shape[1], dtype=x.dtype)
    ei[i], ej[j] = h, h
    with torch.no_grad():
        return (
            model(x + ei + ej) - model(x + ei - ej) - model(x - ei + ej) + model(x - ei - ej)
        ) / (4 * h * h)


PAIRS = [(0, 0), (1, 1), (0, 2), (1, 2)]


@pytest.mark.parametrize("method", ["taylor", "autograd"])
def test_second_derivatives_match_finite_differences(method):
    model = _kan()
    x = _points(40, 3)
    d = Derivatives(model, x, method=method)
    for i, j in PAIRS:
        ref = _central(model, x, i, j)
        assert torch.allclose(d(i, j), ref, atol=1e-6, rtol=0), (method, i, j)


def test_taylor_equals_reverse_mode_to_rounding():
    model = _kan()
    x = _points(30, 3, scale=1.2)  # some points outside the grid: general basis path
    t, a = Derivatives(model, x), Derivatives(model, x, method="autograd")
    for key in [(), (0,), (2,), (0, 0), (1, 2), (0, 1, 2), (2, 2, 2)]:
        assert torch.allclose(t(*key), a(*key), atol=1e-12, rtol=1e-10), key


def test_fused_path_second_derivative_in_float32_and_float64():
    """Double backward through the fused spline layer equals the float64 general path."""
    ref_model = MultKAN([2, 4, 1], grid=6, k=3, dtype=F64, seed=2)
    x64 = _points(64, 2)
    ref = Derivatives(ref_model, x64)  # Taylor mode: dense basis, no fused kernel
    for dtype, tol in [(F64, 1e-11), (torch.float32, 2e-4)]:
        model = MultKAN([2, 4, 1], grid=6, k=3, dtype=dtype, seed=2)
        model.load_state_dict({k: v.to(dtype) for k, v in ref_model.state_dict().items()})
        x = x64.to(dtype).requires_grad_(True)
        u = model(x)
        assert "Fused" in type(model.layers[0](x).grad_fn).__name__  # the fast path ran
        (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        for i in range(2):
            (gg,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=True)
            scale = ref(i, i).abs().max()
            err = (gg[:, i : i + 1].double() - ref(i, i)).abs().max()
            assert err <= tol * max(1.0, float(scale)), (dtype, i, float(err))


def test_parameter_gradients_agree_between_engines():
    model = _kan()
    x = _points(25, 3)
    grads = []
    for method in ("taylor", "autograd"):
        model.zero_grad()
        d = Derivatives(model, x, method=method)
        loss = d(0, 0).square().sum() + d(1, 2).square().sum() + d.u.square().sum()
        loss.backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    assert torch.allclose(grads[0], grads[1], atol=1e-11, rtol=1e-9)


def test_mlp_jets_match_closed_form():
    """One tanh unit: u = tanh(a x + b y); u_xx = -2 a^2 t (1 - t^2)."""
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Tanh()).double()
    with torch.no_grad():
        mlp[0].weight.copy_(torch.tensor([[0.7, -1.3]]))
        mlp[0].bias.fill_(0.2)
    x = _points(20, 2)
    t = torch.tanh(0.7 * x[:, :1] - 1.3 * x[:, 1:] + 0.2)
    u, d1, d2 = jets(mlp, x, torch.eye(2, dtype=F64))
    assert torch.allclose(d1[0], 0.7 * (1 - t * t))
    assert torch.allclose(d2[1], -2 * 1.3**2 * t * (1 - t * t))
    d = Derivatives(mlp, x, names=("x", "y"))
    assert torch.allclose(d("x", "y"), -2 * 0.7 * -1.3 * t * (1 - t * t))
    assert torch.allclose(d.laplacian(), -2 * (0.7**2 + 1.3**2) * t * (1 - t * t))


def test_other_modules_use_reverse_mode():
    class Square(torch.nn.Module):
        def forward(self, x):
            return (x**2).sum(1, keepdim=True)

    x = _points(5, 2)
    d = Derivatives(Square(), x)
    assert not d.use_taylor
    assert torch.allclose(d("x1", "x1"), torch.full((5, 1), 2.0, dtype=F64))
    assert torch.allclose(d("x1", "x2"), torch.zeros(5, 1, dtype=F64))
    with pytest.raises(ConfigError, match="autograd"):
        Derivatives(Square(), x, method="taylor")


def test_unknown_input_is_a_clear_error():
    d = Derivatives(_kan(), _points(4, 3))
    with pytest.raises(ShapeError, match="no model input 'z'.*x1"):
        d("z")
    with pytest.raises(ShapeError, match="no model input 5"):
        d(5)
    with pytest.raises(ConfigError, match="method"):
        Derivatives(_kan(), _points(4, 3), method="magic")


def test_box_sampling_and_checks():
    box = Box([-1, 0], [1, 2], names=("x", "t"))
    gen = torch.Generator().manual_seed(0)
    for method in ("uniform", "mesh", "sobol"):
        pts = box.interior(49, method, gen)
        assert pts.shape == (49, 2) and bool(box.contains(pts).all())
    mesh = box.interior(49, "mesh")
    assert len(torch.unique(mesh[:, 0])) == 7 and float(mesh[:, 0].min()) == pytest.approx(-0.75)
    edge = box.boundary(40, exclude=[("t", "high")])
    on_face = (edge[:, 0].abs() == 1) | (edge[:, 1] == 0)
    assert bool(on_face.all()) and not bool((edge[:, 1] == 2).any())
    with pytest.raises(ShapeError, match="point 1 = \\[0.0, 3.0\\] lies outside"):
        box.check(torch.tensor([[0.0, 1.0], [0.0, 3.0]], dtype=F64), "test points")
    with pytest.raises(ShapeError, match="lo < hi"):
        Box([0, 1], [1, 1])
    with pytest.raises(ConfigError, match="sampling"):
        box.interior(4, "grid")


def test_resampling_concentrates_on_large_residuals():
    pool = torch.linspace(0, 1, 1000, dtype=F64).reshape(-1, 1)
    score = torch.where(pool[:, 0] > 0.9, 10.0, 0.1)
    picked = resample(pool, score, 200, torch.Generator().manual_seed(0))
    # weights about 11 (top tenth) against 1: the top tenth is mostly drawn
    assert float((picked > 0.9).double().mean()) > 0.3  # uniform draws: 0.1
    assert len(torch.unique(picked)) == 200


def _poisson_1d():
    box = Box([-1.0], [1.0], names=("x",))
    ends = Condition(box.boundary(2), value=0.0, weight=100.0)

    def residual(d):  # u'' = -pi^2 sin(pi x)
        return d("x", "x") + math.pi**2 * torch.sin(math.pi * d.input("x"))

    return box, ends, residual


def test_solve_poisson_1d_with_grid_refinement():
    box, ends, residual = _poisson_1d()
    model = MultKAN([1, 1], grid=5, k=3, dtype=F64, seed=0)
    xt = torch.linspace(-1, 1, 101, dtype=F64).reshape(-1, 1)
    res = solve(
        model, residual, box, [ends], n_points=40, sampling="mesh",
        stages=[Stage("lbfgs", 4), Stage("lbfgs", 4, grid=10), Stage("lbfgs", 2, resample=True)],
        test=(xt, torch.sin(math.pi * xt)),
    )  # fmt: skip
    assert res.model is not model and res.model.grid == 10
    errors = [s["test_mse"] for s in res.stages]
    assert errors[-1] < 5e-5 and errors[1] < errors[0]
    assert [s["params"] for s in res.stages] == [10, 15, 15]  # n_basis + 2 per edge
    assert {"residual", "boundary", "loss"} <= set(res.history[-1])


def test_solve_trains_a_plain_mlp_with_adam_then_lbfgs():
    box, ends, residual = _poisson_1d()
    gen = torch.Generator().manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    mlp = mlp.double()
    res = solve(
        mlp,
        residual,
        box,
        [ends],
        n_points=32,
        stages=[Stage("adam", 20, lr=1e-2), Stage("lbfgs", 5)],
    )
    losses = [h["loss"] for h in res.history]
    assert res.model is mlp and losses[-1] < 0.01 * losses[0]
    with pytest.raises(ConfigError, match="grid options need a MultKAN"):
        solve(mlp, residual, box, [ends], n_points=8, stages=[Stage("lbfgs", 1, grid=10)])


def test_bad_residuals_are_reported_and_the_best_model_is_kept():
    box, ends, residual = _poisson_1d()
    model = MultKAN([1, 1], grid=5, k=3, dtype=F64, seed=0)
    with pytest.raises(ShapeError, match="returned \\(3,\\) for 4 points"):
        solve(model, lambda d: d.u[:3, 0], box, [ends], n_points=4)
    good = solve(model, residual, box, [ends], n_points=16, stages=[Stage("lbfgs", 2)]).model
    kept = {k: v.clone() for k, v in good.state_dict().items()}
    calls = {"n": 0}

    def flaky(d):  # finite for the shape probe, then NaN at one point
        calls["n"] += 1
        r = residual(d)
        return r if calls["n"] == 1 else torch.where(d.input("x") > 0.5, math.nan, r)

    with pytest.raises(FitError, match="residual term is \\[nan\\] at point \\d+ = \\[0\\.[5-9]"):
        solve(good, flaky, box, [ends], n_points=16, stages=[Stage("adam", 3)])
    assert all(torch.equal(kept[k], v) for k, v in good.state_dict().items())


def test_bad_conditions_and_options():
    box, ends, residual = _poisson_1d()
    model = MultKAN([1, 1], grid=5, dtype=F64)
    outside = Condition(torch.tensor([[1.5]], dtype=F64), value=0.0, name="far")
    with pytest.raises(ShapeError, match="condition 'far'.*outside the domain"):
        solve(model, residual, box, [outside])
    with pytest.raises(ConfigError, match="unknown optimizer 'sgd'"):
        Stage("sgd")
    with pytest.raises(ConfigError, match="weight"):
        Condition(torch.zeros(1, 1), weight=-1.0)
    wrong = Condition(box.boundary(2), value=torch.zeros(3, 1))
    with pytest.raises(ShapeError, match="value has shape"):
        solve(model, residual, box, [wrong], n_points=4)
    assert issubclass(ConfigError, KanpilerError)


def test_neumann_condition_through_derivatives():
    """u'' = 0 on [0, 1], u(0) = 1, u'(1) = 2: u = 1 + 2x."""
    box = Box([0.0], [1.0])
    left = Condition(box.face(0, "low", 1), value=1.0, weight=10.0, name="dirichlet")
    right = Condition(box.face(0, "high", 1), residual=lambda d: d(0) - 2.0, name="neumann")
    model = MultKAN([1, 1], grid=3, k=3, dtype=F64, seed=0)
    res = solve(model, lambda d: d(0, 0), box, [left, right], n_points=20, sampling="mesh",
                stages=[Stage("lbfgs", 10)])  # fmt: skip
    xs = torch.tensor([[0.0], [0.5], [1.0]], dtype=F64)
    with torch.no_grad():
        assert torch.allclose(res.model(xs), 1 + 2 * xs, atol=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_derivatives_and_training_on_cuda_match_cpu():
    import copy

    model = _kan()
    x = _points(50, 3)
    ref = Derivatives(model, x)
    gpu = copy.deepcopy(model).cuda()
    d = Derivatives(gpu, x.cuda())
    for key in [(0,), (0, 0), (1, 2)]:
        assert torch.allclose(d(*key).cpu(), ref(*key), atol=1e-12), key
    box, ends, residual = _poisson_1d()
    kan = MultKAN([1, 1], grid=5, dtype=F64, device="cuda")
    res = solve(kan, residual, box, [ends], n_points=16, stages=[Stage("lbfgs", 2, grid=10)])
    assert res.model.device.type == "cuda" and res.history[-1]["loss"] < res.history[0]["loss"]


def _basis_names() -> list[str]:
    try:
        from kanpiler.runtime.bases import BASES
    except ImportError:  # a runtime without alternative bases
        return []
    return list(BASES)


@pytest.mark.parametrize("name", _basis_names())
def test_taylor_mode_through_every_basis(name):
    model = MultKAN([2, 3, 1], grid=5, dtype=F64, basis=name)
    x = _points(20, 2, scale=0.9)
    t, a = Derivatives(model, x), Derivatives(model, x, method="autograd")
    for key in [(0,), (0, 0), (0, 1), (1, 1)]:
        assert torch.allclose(t(*key), a(*key), atol=1e-12, rtol=1e-9), (name, key)


def test_progress_bar_shows_every_term(capsys):
    box, ends, residual = _poisson_1d()
    model = MultKAN([1, 1], grid=3, dtype=F64)
    solve(model, residual, box, [ends], n_points=8, stages=[Stage("adam", 2)], progress=True)
    err = capsys.readouterr().err
    assert "stage 0 adam" in err and "residual=" in err and "boundary=" in err


# --- Levenberg-Marquardt least squares ----------------------------------------------------------


def test_least_squares_jacobian_matches_reverse_mode_rows():
    from kanpiler.physics.lsq import _blocks, _jacobian

    model = MultKAN([2, 3, 2], grid=4, k=3, dtype=torch.float64, seed=1)
    model.layers[0].mask[1, 2] = 0.0
    x = torch.rand(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    jac, r = _jacobian(model, _blocks(model), x, torch.zeros(12, 2, dtype=torch.float64))
    l0, l1 = model.layers
    keep = l0.mask.reshape(-1) != 0
    u = model(x).reshape(-1)
    rows = []
    for i in range(len(u)):  # one backward per output: the reference, row by row
        g = torch.autograd.grad(u[i], [l0.coef, l0.scale_base, l1.coef, l1.scale_base],
                                retain_graph=True)  # fmt: skip
        rows.append(torch.cat([g[0].reshape(6, -1)[keep].reshape(-1), g[1].reshape(-1)[keep],
                               g[2].reshape(-1), g[3].reshape(-1)]))  # fmt: skip
    expected = torch.stack(rows)
    assert jac.shape == expected.shape == (24, 5 * 7 + 5 + 3 * 7 * 2 + 6)
    assert torch.allclose(jac, expected, atol=1e-13)
    assert torch.allclose(r, u.detach(), rtol=0, atol=1e-13)


def test_least_squares_fits_a_spline_space_exactly_and_tracks_test_error():
    from kanpiler.physics import least_squares

    x = torch.linspace(-1, 1, 101, dtype=torch.float64).reshape(-1, 1)
    xt = torch.linspace(-0.99, 0.99, 37, dtype=torch.float64).reshape(-1, 1)
    cubic = lambda t: 0.5 * t**3 - t + 0.25  # noqa: E731 - in the cubic spline space
    model = MultKAN([1, 1], grid=6, k=3, dtype=torch.float64, seed=0)
    res = least_squares(model, x, cubic(x), steps=6, test=(xt, cubic(xt)))
    assert res.train_rmse[0] > 0.1 and res.train_rmse[-1] < 1e-12
    assert res.test_rmse[-1] < 1e-12
    with torch.no_grad():
        assert float((model(xt) - cubic(xt)).abs().max()) < 1e-11
    assert all(b <= a for a, b in zip(res.train_rmse, res.train_rmse[1:]))


def test_least_squares_refines_a_composed_fit_better_than_lbfgs_and_never_worsens():
    from kanpiler.physics import least_squares
    from kanpiler.physics.grids import update_grid

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, dtype=torch.float64, generator=gen) * 2 - 1
    f = lambda t: torch.exp(torch.sin(math.pi * t[:, :1]) + t[:, 1:] ** 2)  # noqa: E731
    box = Box([-1, -1], [1, 1])
    model = MultKAN([2, 1, 1], grid=5, k=3, grid_eps=1.0, dtype=torch.float64, seed=0)
    stages = [Stage("adam", 100, lr=1e-2), Stage("lbfgs", 5, update_grid=True)]
    model = solve(model, lambda d: d.u - f(d.x), box, points=x, stages=stages).model
    update_grid(model, x)
    model = model.refine(20, x)
    other = model.refine(20, x)  # the same function on the same knots
    res = least_squares(model, x, f(x), steps=3)
    lbfgs = solve(other, lambda d: d.u - f(d.x), box, points=x, stages=[Stage("lbfgs", 3)])
    assert all(b <= a for a, b in zip(res.train_rmse, res.train_rmse[1:]))
    assert res.train_rmse[-1] < 0.1 * res.train_rmse[0]
    assert res.train_rmse[-1] < 0.8 * math.sqrt(lbfgs.stages[-1]["residual"])
    with torch.no_grad():
        assert abs(float((model(x) - f(x)).square().mean().sqrt()) - res.train_rmse[-1]) < 1e-15


def test_least_squares_bad_input():
    from kanpiler.physics import least_squares

    x = torch.zeros(5, 2, dtype=torch.float64)
    model = MultKAN([2, 1], grid=3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="MultKAN"):
        least_squares(torch.nn.Linear(2, 1), x, torch.zeros(5, 1))
    with pytest.raises(ShapeError, match="columns"):
        least_squares(model, x, torch.zeros(5, 3))
    with pytest.raises(ConfigError, match="steps"):
        least_squares(model, x, torch.zeros(5, 1), steps=-1)
    model.layers[0].mask.zero_()
    with pytest.raises(ConfigError, match="no active spline edges"):
        least_squares(model, x, torch.zeros(5, 1))
