"""Custom library functions, suggest_symbolic and fix_symbolic's refusal of poor fits."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

import kanpiler
from kanpiler import library
from kanpiler.convert import auto_symbolic
from kanpiler.errors import FitError, KanpilerError
from kanpiler.runtime import MultKAN

X = torch.linspace(-2, 2, 201, dtype=torch.float64)[:, None]


@pytest.fixture
def j0():
    record = library.register("J0", torch.special.bessel_j0)  # no autograd support
    yield record
    library.unregister("J0")


def _spline_of(fn: str, a: float = 1.0) -> MultKAN:
    """A one-edge spline model holding the curve fn(a*x) on [-2, 2]."""
    model = MultKAN([1, 1], grid=30, dtype=torch.float64, numeric=False)
    model.set_symbolic(0, 0, 0, fn, a=a)
    model.symbolic_to_spline(ranges=[(-2.0, 2.0)])
    return model


def _formula(model):
    read = getattr(kanpiler, "formula", None) or kanpiler.to_sympy
    (expr,) = read(model)
    return expr


def test_registered_function_compiles_and_prints(j0) -> None:
    model = kanpiler.compile("J0(3*x) + sin(y)", dtype=torch.float64)
    x = torch.rand(20, 2, dtype=torch.float64)
    want = torch.special.bessel_j0(3 * x[:, :1]) + torch.sin(x[:, 1:])
    torch.testing.assert_close(model(x).detach(), want, rtol=1e-12, atol=1e-12)
    x_, y_ = sympy.symbols("x y")
    assert _formula(model) == sympy.Function("J0")(3 * x_) + sympy.sin(y_)


def test_registered_function_in_checkpoints(j0, tmp_path) -> None:
    model = kanpiler.compile("J0(x)", dtype=torch.float64)
    model.save(tmp_path / "m")
    assert torch.equal(kanpiler.load(tmp_path / "m")(X), model(X))
    library.unregister("J0")
    with pytest.raises(KanpilerError, match="J0"):
        kanpiler.load(tmp_path / "m")
    library.register("J0", torch.special.bessel_j0)


def test_auto_symbolic_finds_a_registered_function(j0) -> None:
    model = _spline_of("J0", 3.0)
    report = auto_symbolic(model, x=X, progress=False)
    assert report.edges[0].fn == "J0" and report.edges[0].r2 > 0.999999
    got = model(X).detach()
    torch.testing.assert_close(got, torch.special.bessel_j0(3 * X), atol=1e-5, rtol=0)


def test_auto_symbolic_extra_function_record_is_registered_for_the_edge() -> None:
    J1 = library.Function(
        "J1x",
        sympy.Function("J1x"),
        torch.special.bessel_j1,
        torch.special.bessel_j1,
        lambda t: torch.isfinite(t),
    )
    try:
        model = _spline_of("sin", 2.0)
        auto_symbolic(model, x=X, extra=[J1], progress=False)
        assert library.get("J1x").name == "J1x"
    finally:
        library.unregister("J1x")


def test_suggest_symbolic_ranks_candidates(j0) -> None:
    model = _spline_of("J0", 3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    top = model.suggest_symbolic(0, 0, 0, topk=3, x=X)
    assert len(top) == 3 and top[0][0] == "J0" and top[0][1] > 0.999999
    assert all(top[k][1] <= 1.0 for k in range(3))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert _spline_of("exp").suggest_symbolic(0, 0, 0, topk=1, x=X)[0][0] == "exp"


def test_fix_symbolic_refuses_poor_fits_unless_forced() -> None:
    model = _spline_of("sin", 3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FitError, match="r2"):
        model.fix_symbolic(0, 0, 0, "sqrt", x=X)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    r2 = model.fix_symbolic(0, 0, 0, "x^2", x=X, force=True)
    assert r2 < 0.9 and model.symbolic[0].function(0, 0) == "x^2"
    assert math.isclose(_spline_of("sin", 3.0).fix_symbolic(0, 0, 0, "sin", x=X), 1.0,
                        abs_tol=1e-6)  # fmt: skip


def test_register_rejects_bad_names_and_functions() -> None:
    for name in ("sin", "pi", "2x", "a b", ""):
        with pytest.raises(KanpilerError):
            library.register(name, torch.sin)
    with pytest.raises(KanpilerError, match="shape"):
        library.register("bad", lambda t: t.sum())
    with pytest.raises(KanpilerError, match="callable"):
        library.register("bad", 3)
    with pytest.raises(KanpilerError, match="built-in"):
        library.unregister("sin")


def test_auto_symbolic_on_nan_weights_is_a_fit_error() -> None:
    model = _spline_of("sin", 2.0)
    with torch.no_grad():
        model.layers[0].coef.fill_(float("nan"))
    with pytest.raises(FitError, match="NaN"):
        auto_symbolic(model, x=X, progress=False)
