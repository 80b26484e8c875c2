"""Edge bases (Chebyshev, Fourier, RBF, wavelets, ReLU-KAN, BSRBF, rational): values against
numpy/scipy formulas, domains, derivatives against finite differences, grids and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanpiler.errors import ConfigError, KanpilerError, ShapeError, UnsupportedError
from kanpiler.runtime import KANLayer
from kanpiler.runtime.bases import (
    BSRBF,
    GRKAN,
    RBF,
    Chebyshev,
    Fourier,
    GroupRational,
    Rational,
    ReLUKAN,
    Wavelet,
    fused,
    make_basis,
)
from kanpiler.runtime.bases.fused import reference_dense

F64 = torch.float64
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
SPECS = [
    ("chebyshev", {"degree": 5}),
    ("chebyshev", {"degree": 4, "squash": "scale"}),
    ("fourier", {"frequencies": 3}),
    ("rbf", {"centers": 6}),
    ("mexican_hat", {"centers": 5}),
    ("morlet", {"centers": 5}),
    ("dog", {"centers": 5}),
    ("relu_kan", {"grid": 4, "k": 2}),
    ("bsrbf", {"grid": 4, "k": 3}),
    ("rational", {"groups": 2, "init": "gelu"}),
]
IDS = [f"{n}-{'-'.join(map(str, kw.values()))}" for n, kw in SPECS]


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return name


def _points(n: int = 41, lo: float = -1.6, hi: float = 1.7) -> np.ndarray:
    return np.linspace(lo, hi, n)


def _eval(basis, xs: np.ndarray) -> np.ndarray:
    x = torch.tensor(xs, dtype=F64).reshape(-1, 1)
    return basis(x)[:, 0, :].numpy()


# --- values against independent formulas -------------------------------------------------


def test_chebyshev_matches_numpy_chebvander() -> None:
    xs = _points()
    tanh = Chebyshev(degree=6, in_features=1, dtype=F64)
    np.testing.assert_allclose(_eval(tanh, xs), np.polynomial.chebyshev.chebvander(np.tanh(xs), 6),
                               atol=1e-12)  # fmt: skip
    scale = Chebyshev(degree=6, squash="scale", domain=(-2.0, 1.0), in_features=1, dtype=F64)
    t = np.clip((2 * xs + 1) / 3, -1, 1)  # [-2, 1] -> [-1, 1], clamped beyond
    np.testing.assert_allclose(_eval(scale, xs), np.polynomial.chebyshev.chebvander(t, 6),
                               atol=1e-12)  # fmt: skip


def test_fourier_is_periodic_with_the_stated_period() -> None:
    xs = _points()
    basis = Fourier(frequencies=3, domain=(-1.0, 2.0), in_features=1, dtype=F64)
    w, c = 2 * math.pi / 6.0, 0.5  # period 2 * (hi - lo), centred on the domain
    k = np.arange(1, 4)
    want = np.concatenate([np.ones((len(xs), 1)), np.cos(np.outer(xs - c, k) * w),
                           np.sin(np.outer(xs - c, k) * w)], axis=1)  # fmt: skip
    np.testing.assert_allclose(_eval(basis, xs), want, atol=1e-12)
    np.testing.assert_allclose(_eval(basis, xs + 6.0), want, atol=1e-11)
    own = Fourier(frequencies=2, period=1.5, in_features=1, dtype=F64)
    np.testing.assert_allclose(_eval(own, xs + 1.5), _eval(own, xs), atol=1e-11)


def test_rbf_centres_and_widths() -> None:
    xs = _points()
    # 5 centres, 2 spacings (0.5) beyond each end: -2, -1, 0, 1, 2 (spacing 1)
    basis = RBF(centers=5, width=1.5, domain=(-1.0, 1.0), in_features=1, dtype=F64)
    c, h = np.linspace(-2, 2, 5), 1.5 * 1.0
    np.testing.assert_allclose(_eval(basis, xs), np.exp(-(((xs[:, None] - c) / h) ** 2)),
                               atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("kind", ["mexican_hat", "morlet", "dog"])
def test_wavelets_match_their_formulas(kind: str) -> None:
    xs = _points()
    basis = Wavelet(kind, centers=4, width=0.8, margin=0.5, domain=(-1.0, 2.0), in_features=1,
                    dtype=F64)  # fmt: skip
    t = np.linspace(-1.5, 2.5, 4)  # half a spacing (1.0) beyond each end
    s = 0.8 * (4 / 3) * (2.0 if kind == "morlet" else 1.0)
    u = (xs[:, None] - t) / s
    want = {
        "mexican_hat": 2 / (np.sqrt(3) * np.pi**0.25) * (1 - u**2) * np.exp(-(u**2) / 2),
        "morlet": np.cos(5 * u) * np.exp(-(u**2) / 2),
        "dog": -u * np.exp(-(u**2) / 2),
    }[kind]
    np.testing.assert_allclose(_eval(basis, xs), want, atol=1e-12)


def test_relu_kan_matches_the_reference_definition() -> None:
    # ReLU-KAN on [0, 1]: phase_low = (i - k) / g, phase_height = phase_low + (k + 1) / g,
    # value (relu(x - low) relu(high - x) r)^2 with r = 4 g^2 / (k + 1)^2
    g, k = 5, 3
    xs = _points(lo=-0.5, hi=1.5)
    low = np.arange(-k, g) / g
    high = low + (k + 1) / g
    r = 4 * g * g / (k + 1) ** 2
    want = (np.maximum(xs[:, None] - low, 0) * np.maximum(high - xs[:, None], 0) * r) ** 2
    basis = ReLUKAN(grid=g, k=k, domain=(0.0, 1.0), in_features=1, dtype=F64)
    np.testing.assert_allclose(_eval(basis, xs), want, atol=1e-12)


def test_bsrbf_is_bsplines_plus_gaussians() -> None:
    g, k = 4, 3
    xs = _points(lo=-0.99, hi=0.99)
    h = 2 / g
    knots = np.arange(-k, g + k + 1) * h - 1
    spl = np.stack([BSpline.basis_element(knots[j : j + k + 2], extrapolate=False)(xs)
                    for j in range(g + k)], axis=1)  # fmt: skip
    c = (knots[: g + k] + knots[k + 1 : g + 2 * k + 1]) / 2  # centres of the B-splines
    gauss = np.exp(-(((xs[:, None] - c) / h) ** 2))
    basis = BSRBF(grid=g, k=k, in_features=1, dtype=F64)
    np.testing.assert_allclose(_eval(basis, xs), np.nan_to_num(spl) + gauss, atol=1e-12)


def test_rational_is_p_over_safe_q_and_matches_its_init() -> None:
    a = np.array([0.1, -0.4, 0.3, 0.2])
    b = np.array([-0.5, 0.25])
    act = GroupRational(3, groups=1, order=(3, 2), dtype=F64)
    with torch.no_grad():
        act.numerator.copy_(torch.tensor(a).unsqueeze(0))
        act.denominator.copy_(torch.tensor(b).unsqueeze(0))
    xs = _points()
    want = np.polyval(a[::-1], xs) / (1 + 0.5 * np.abs(xs) + 0.25 * xs**2)
    got = act(torch.tensor(xs).unsqueeze(1).expand(-1, 3))
    np.testing.assert_allclose(got.detach().numpy(), np.stack([want] * 3, 1), atol=1e-12)
    x = torch.linspace(-3, 3, 201, dtype=F64).unsqueeze(1)
    for init, fn, tol in [("identity", lambda t: t, 0.0), ("silu", torch.nn.functional.silu, 1e-4),
                          ("gelu", torch.nn.functional.gelu, 5e-3)]:  # fmt: skip
        err = (GroupRational(1, 1, init=init, dtype=F64)(x) - fn(x)).abs().max()
        assert float(err.detach()) <= tol, (init, float(err.detach()))


def test_rational_groups_share_coefficients() -> None:
    basis = Rational(groups=2, init="identity", in_features=4, dtype=F64)
    assert basis.group_of.tolist() == [0, 0, 1, 1]
    with torch.no_grad():
        basis.numerator[1, 1] = 3.0  # group 1: 3x
    x = torch.full((1, 4), 0.5, dtype=F64)
    assert basis(x).squeeze().tolist() == [0.5, 0.5, 1.5, 1.5]
    layer = GRKAN(4, 2, groups=2, dtype=F64)
    assert torch.allclose(layer(x), layer.linear(x))  # identity init: a plain Linear


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_native_rational_matches_the_torch_formula_and_finite_differences(dtype) -> None:
    from kanpiler.runtime.bases import native
    from kanpiler.runtime.bases.rational import FusedRational, _columns

    if native.rational_kernel() is None:
        pytest.skip("no C compiler")
    g = torch.Generator().manual_seed(3)
    x = torch.rand(37, 5, generator=g, dtype=F64) * 8 - 4
    x[0, :] = 0.0  # |x| and its derivative at 0
    a = torch.rand(6, 5, generator=g, dtype=F64) - 0.5
    bb = torch.rand(4, 5, generator=g, dtype=F64)
    w = torch.rand(37, 5, generator=g, dtype=F64)
    got_in = [t.to(dtype).requires_grad_() for t in (x, a, bb)]
    got = FusedRational.apply(*got_in)
    want_in = [t.clone().requires_grad_() for t in (x, a, bb)]
    want = _columns(*want_in)  # float64 torch formula
    tol = 1e-12 if dtype == F64 else 2e-5
    assert torch.allclose(got.double(), want, rtol=tol, atol=tol)
    g_got = torch.autograd.grad((got * w.to(dtype)).sum(), got_in)
    g_want = torch.autograd.grad((want * w).sum(), want_in)
    for gg, gw in zip(g_got, g_want):
        assert torch.allclose(gg.double(), gw, rtol=50 * tol, atol=50 * tol)
    if dtype == F64:  # first and second derivatives against finite differences
        xs = (x[1:9] + 0.01).requires_grad_()
        args = (xs, a[:, :].clone().requires_grad_(), bb.clone().requires_grad_())
        assert torch.autograd.gradcheck(FusedRational.apply, args)
        assert torch.autograd.gradgradcheck(FusedRational.apply, args)


def test_group_rational_uses_the_kernel_with_shared_group_gradients() -> None:
    act = GroupRational(6, groups=3, order=(3, 2), init="gelu", dtype=F64)
    with torch.no_grad():
        act.denominator.add_(0.1)
    x = torch.linspace(-3, 3, 24, dtype=F64).reshape(2, 2, 6).requires_grad_()
    num, den = act.numerator.detach().clone(), act.denominator.detach().clone()
    xs = x.detach().numpy().reshape(-1, 6)
    gid = act.group_of.numpy()

    def numpy_values(nm, dn):
        p = sum(nm[gid, i] * xs**i for i in range(nm.shape[1]))
        q = 1 + sum(np.abs(dn[gid, j]) * np.abs(xs) ** (j + 1) for j in range(dn.shape[1]))
        return p / q

    y = act(x)
    np.testing.assert_allclose(y.detach().numpy().reshape(-1, 6),
                               numpy_values(num.numpy(), den.numpy()), atol=1e-12)  # fmt: skip
    gn, gd = torch.autograd.grad(y.sum(), [act.numerator, act.denominator])
    eps = 1e-6
    for i in range(num.shape[1]):  # central differences of the sum per shared coefficient
        d = np.zeros(num.shape)
        d[1, i] = eps
        fd = (numpy_values(num.numpy() + d, den.numpy()) - numpy_values(num.numpy() - d,
              den.numpy())).sum() / (2 * eps)  # fmt: skip
        assert abs(float(gn[1, i]) - fd) < 1e-6
    d = np.zeros(den.shape)
    d[2, 1] = eps
    fd = (numpy_values(num.numpy(), den.numpy() + d) - numpy_values(num.numpy(), den.numpy() - d)
          ).sum() / (2 * eps)  # fmt: skip
    assert abs(float(gd[2, 1]) - fd) < 1e-6


# --- layers: fused path, derivatives, dtypes, devices --------------------------------------


@pytest.mark.parametrize(("name", "kw"), SPECS, ids=IDS)
def test_layer_first_and_second_derivatives_match_finite_differences(name: str, kw: dict) -> None:
    layer = KANLayer(3, 2, basis=make_basis(name, 3, dtype=F64, **kw), dtype=F64, seed=1)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(12, 3, generator=g, dtype=F64) * 3 - 1.5).requires_grad_()
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))
    coef = layer.coef
    assert torch.autograd.gradcheck(lambda c: _with_coef(layer, c, x.detach()), (coef,))


def _with_coef(layer: KANLayer, coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(layer, {"coef": coef}, (x,))


@pytest.mark.parametrize(("name", "kw"), [s for s in SPECS if s[0] != "rational"],
                         ids=[i for i, s in zip(IDS, SPECS) if s[0] != "rational"])  # fmt: skip
@pytest.mark.parametrize("native", [True, False], ids=["native", "torch"])
def test_fused_path_equals_plain_autograd(
    name: str, kw: dict, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if native and fused.dense_kernel() is None:
        pytest.skip("no C compiler for the native kernel")
    if not native:
        monkeypatch.setattr(fused, "dense_kernel", lambda: None)
    layer = KANLayer(4, 3, basis=make_basis(name, 4, dtype=F64, **kw), dtype=F64, seed=2)
    x = (torch.linspace(-1.3, 1.3, 40, dtype=F64).reshape(10, 4)).requires_grad_()
    x.data[0, 0], x.data[1, 1] = 1.0, -1.0  # the domain's ends
    out = layer(x)
    ref = reference_dense(x, layer.dense_weight(), layer.basis)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(out.square().sum(), [x, layer.coef, layer.scale_base])
    want = torch.autograd.grad(ref.square().sum(), [x, layer.coef, layer.scale_base])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_native_bsrbf_adds_the_bsplines_of_every_order(k: int) -> None:
    if fused.dense_kernel() is None:
        pytest.skip("no C compiler for the native kernel")
    layer = KANLayer(3, 2, basis="bsrbf", grid=5, k=k, dtype=F64, seed=4)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(30, 3, generator=g, dtype=F64) * 4 - 2).requires_grad_()  # beyond the knots
    out = layer(x)
    ref = reference_dense(x, layer.dense_weight(), layer.basis)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    (gx,) = torch.autograd.grad(out.sum(), [x])
    (want,) = torch.autograd.grad(ref.sum(), [x])
    torch.testing.assert_close(gx, want, rtol=1e-10, atol=1e-12)
    layer.basis.update_grid(x.detach() ** 3)  # a non-uniform grid keeps the torch path
    assert layer.basis.native_args(x) is None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "kw"), SPECS, ids=IDS)
def test_float32_agrees_with_float64(name: str, kw: dict, device: str) -> None:
    device = _device(device)
    x64 = torch.linspace(-1.2, 1.2, 48, dtype=F64).reshape(16, 3)
    out = {}
    for dt in (torch.float32, F64):
        layer = KANLayer(3, 2, basis=make_basis(name, 3, dtype=dt, device=device, **kw),
                         dtype=dt, device=device, seed=3)  # fmt: skip
        x = x64.to(dt).to(device).requires_grad_()
        y = layer(x)
        (gx,) = torch.autograd.grad(y.sum(), [x])
        assert y.dtype == dt and y.device.type == device
        out[dt] = (y.detach().double().cpu(), gx.double().cpu())
    for a, b in zip(out[torch.float32], out[F64]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# --- domains, grids, pruning, errors ------------------------------------------------------


def test_chebyshev_tanh_keeps_every_input_in_range() -> None:
    basis = Chebyshev(degree=7, in_features=1, dtype=F64)
    v = basis(torch.tensor([[-1e6], [1e6], [float("1e300")]], dtype=F64))
    assert bool((v.abs() <= 1).all())


def test_rbf_grid_update_moves_centres_to_the_data_and_refine_adds_centres() -> None:
    basis = RBF(centers=5, margin=0.0, in_features=2, dtype=F64)
    x = torch.stack(
        [torch.linspace(2, 6, 101, dtype=F64), torch.linspace(-3, -1, 101, dtype=F64)], 1
    )
    basis.update_grid(x, grid_eps=1.0)  # equal spacing over the samples
    torch.testing.assert_close(basis.centres[0], torch.linspace(2, 6, 5, dtype=F64))
    torch.testing.assert_close(basis.span(), torch.tensor([[2.0, 6.0], [-3.0, -1.0]], dtype=F64))
    finer = basis.refined(9)
    assert finer.centres.shape == (2, 9) and torch.equal(finer.span(), basis.span())


@pytest.mark.parametrize("name", ["chebyshev", "fourier", "rational"])
def test_grid_update_without_a_grid_is_a_clear_error(name: str) -> None:
    basis = make_basis(name, 2)
    with pytest.raises(UnsupportedError, match="no grid"):
        basis.update_grid(torch.rand(10, 2))


def test_refine_keeps_nested_polynomial_and_fourier_spaces_exactly() -> None:
    x = torch.linspace(-1, 1, 50, dtype=F64).unsqueeze(1)
    for old in (Chebyshev(degree=3, in_features=1, dtype=F64),
                Fourier(frequencies=2, in_features=1, dtype=F64)):  # fmt: skip
        new = old.refined(old.size + 3)
        sol = torch.linalg.lstsq(new(x)[:, 0], old(x)[:, 0]).solution
        torch.testing.assert_close(new(x)[:, 0] @ sol, old(x)[:, 0], atol=1e-10, rtol=0)
    with pytest.raises(UnsupportedError):
        Rational(in_features=1).refined(3)


@pytest.mark.parametrize(("name", "kw"), SPECS, ids=IDS)
def test_select_keeps_the_chosen_inputs(name: str, kw: dict) -> None:
    basis = make_basis(name, 4, dtype=F64, **kw)
    if basis.gridded:
        basis.update_grid(torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=F64))
    x = torch.linspace(-1, 1, 32, dtype=F64).reshape(8, 4)
    rows = torch.tensor([3, 1])
    torch.testing.assert_close(basis.select(rows)(x[:, rows]), basis(x)[:, rows])


def test_names_instances_and_errors() -> None:
    assert make_basis("Mexican-Hat", 2).kind == "mexican_hat"
    spec = RBF(centers=7)
    a, b = make_basis(spec, 3), make_basis(spec, 3)
    assert a is not b and a.centres.shape == (3, 7)
    bound = make_basis("rbf", 3)
    assert make_basis(bound, 3) is bound
    layer = KANLayer(3, 2, basis=RBF(centers=4))
    assert layer.basis.bound and layer(torch.zeros(2, 3)).shape == (2, 2)
    with pytest.raises(ConfigError, match="unknown basis 'cheb'"):
        make_basis("cheb", 2)
    with pytest.raises(ConfigError, match="degree"):
        make_basis("chebyshev", 2, degree=-1)
    with pytest.raises(ConfigError, match="squash"):
        Chebyshev(squash="clip")
    with pytest.raises(ShapeError, match="not bound"):
        RBF()(torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="unexpected keyword"):
        make_basis("fourier", 2, degree=3)
    with pytest.raises(KanpilerError, match="unknown rational init"):
        Rational(init="swishy")
