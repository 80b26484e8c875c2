"""Bad input gets a clear KanpilerError, never a raw traceback or a silently wrong value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

import kanpiler
from kanpiler.cli import main
from kanpiler.errors import (
    CompileError,
    DomainError,
    FormulaSyntaxError,
    KanpilerError,
    ShapeError,
    UnsupportedError,
)
from kanpiler.runtime import MultKAN
from kanpiler.runtime.domain import domain, evaluate, in_domain

# ---- float32 constants ---------------------------------------------------------------------


FLOAT64_ONLY = [
    ("1e300*sin(x)", lambda v: 1e300 * math.sin(v)),
    ("sin(1e40*x)", lambda v: math.sin(1e40 * v)),
    ("1e-50*x + 1", lambda v: 1e-50 * v + 1),
    ("x + 1e39", lambda v: v + 1e39),
]


@pytest.mark.parametrize(("text", "ref"), FLOAT64_ONLY)
def test_float32_refuses_constants_it_cannot_hold(text: str, ref) -> None:
    with pytest.raises(CompileError, match="float64"):
        kanpiler.compile(text)
    model = kanpiler.compile(text, dtype=torch.float64)  # float64 holds them
    with torch.no_grad():
        got = float(model(torch.tensor([[0.25]], dtype=torch.float64)))
    assert math.isclose(got, ref(0.25), rel_tol=1e-9)


def test_float32_keeps_ordinary_constants() -> None:
    model = kanpiler.compile("1e30*x + 1e-30")
    assert model.dtype == torch.float32


def test_numbers_that_underflow_float64_are_syntax_errors() -> None:
    with pytest.raises(FormulaSyntaxError, match="too small"):
        kanpiler.parse("1e-400*x")
    assert kanpiler.parse("0e-400 + x") is not None  # a true zero is fine
    assert kanpiler.parse("1e-300*x") is not None


# ---- compile arguments -----------------------------------------------------------------------


def test_undefined_sympy_function_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedError, match="f"):
        kanpiler.compile(sympy.Function("f")(sympy.Symbol("x")))


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_missing_cuda_device_is_a_clear_error() -> None:
    with pytest.raises(CompileError, match="cuda:7"):
        kanpiler.compile("x", device="cuda:7")


def test_deep_sympy_input_is_capped_like_text() -> None:
    x = sympy.Symbol("x")
    e = x
    for _ in range(300):
        e = sympy.sin(e, evaluate=False)
    with pytest.raises(UnsupportedError, match="deep"):
        kanpiler.compile(e)
    with pytest.raises(FormulaSyntaxError, match="deep"):
        kanpiler.compile("sin(" * 300 + "x" + ")" * 300)


def test_deep_model_to_sympy_is_a_clear_error() -> None:
    model = MultKAN([1] * 121, numeric=False, variables=["x"])
    for li in range(120):
        model.set_symbolic(li, 0, 0, "sin", 1.0, 0.0, 1.0, 0.0)
    with pytest.raises(UnsupportedError, match="too deep"):
        kanpiler.formula(model)


# ---- input domain --------------------------------------------------------------------------


def test_domain_of_a_compiled_model() -> None:
    model = kanpiler.compile("log(x) + 1/y + x**y", dtype=torch.float64)
    conds = domain(model)
    assert any(c.startswith("log(x)") for c in conds) and any("!= 0" in c for c in conds)
    x = torch.tensor([[2.0, 1.0], [-2.0, 1.0], [1.0, 0.0], [0.5, -3.0]], dtype=torch.float64)
    assert in_domain(model, x).tolist() == [True, False, False, True]


@pytest.mark.parametrize(
    ("text", "point"), [("log(x)", [-2.0]), ("1/x", [0.0]), ("sqrt(x)", [-1.0]), ("asin(x)", [2.0])]
)
def test_checked_evaluation_flags_points_outside_the_domain(text: str, point: list) -> None:
    model = kanpiler.compile(text, dtype=torch.float64)
    x = torch.tensor([[0.5], point], dtype=torch.float64)
    with pytest.raises(DomainError, match="1 of 2 points"):
        evaluate(model, x)
    with pytest.warns(RuntimeWarning, match="outside"):
        evaluate(model, x, outside="warn")
    y = evaluate(model, x, outside="nan")
    assert math.isfinite(float(y[0])) and math.isnan(float(y[1]))


def test_model_methods_check_the_domain_like_the_runtime_functions() -> None:
    model = kanpiler.compile("log(x)", dtype=torch.float64)
    assert model.domain() == domain(model) == ["log(x): x > 0"]
    with pytest.raises(DomainError, match="outside the model's domain"):
        model.evaluate(torch.tensor([[-2.0]], dtype=torch.float64))
    pts = np.array([0.25, 1.0, 3.0, 40.0])
    y = model.evaluate(torch.tensor(pts[:, None], dtype=torch.float64))
    np.testing.assert_allclose(y[:, 0].numpy(), np.log(pts), rtol=1e-12, atol=1e-14)
    x = torch.tensor([[2.0], [-1.0], [0.0]], dtype=torch.float64)
    assert model.in_domain(x).tolist() == [True, False, False]
    out = model.evaluate(x, outside="nan")
    assert out[0, 0] == pytest.approx(np.log(2.0), rel=1e-12) and torch.isnan(out[1:]).all()
    trained = MultKAN([1, 1], dtype=torch.float64, numeric=False)
    trained.set_symbolic(0, 0, 0, "log", a=2.0, b=-5.8e-17)  # a shift of rounding size
    assert trained.domain() == ["log(2*x1): 2*x1 > 0"]
    trained.set_symbolic(0, 0, 0, "log", a=2.0, b=-0.5)
    assert trained.domain() == ["log(2*x1 - 0.5): 2*x1 - 0.5 > 0"]


# ---- tree, prune and the CLI on bad data ---------------------------------------------------


def test_tree_and_prune_reject_non_finite_data() -> None:
    model = kanpiler.compile("sin(x)*exp(y)", dtype=torch.float64)
    x = torch.rand(32, 2, dtype=torch.float64)
    x[3, 1] = float("inf")
    with pytest.raises(ShapeError, match="row 3, column 1"):
        kanpiler.tree(model, x)
    spline = MultKAN([2, 3, 1], seed=0, dtype=torch.float64)
    x[3, 1] = float("nan")
    with pytest.raises(ShapeError, match="NaN"):
        spline.prune(x)
    with pytest.raises(ShapeError, match="NaN"):
        spline.attribute(x)


@pytest.fixture
def saved(tmp_path):
    kanpiler.compile("sin(x)*exp(y)", dtype=torch.float64).save(tmp_path / "m")
    return tmp_path


BAD_DATA = {
    "empty.csv": b"",
    "header_only.csv": b"x,y\n",
    "words.csv": b"x,y\n1,abc\n",
    "inf.csv": b"x,y\n0.1,0.2\ninf,0.3\n",
    "ragged.csv": b"0.1,0.2\n0.3\n",
    "latin1.csv": b"x,y\n\xe9,1\n",
    "three.csv": b"1,2,3\n4,5,6\n",
    "garbage.npy": b"\x93NUMPY garbage",
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_cli_tree_bad_data_files_exit_2_with_a_message(saved, capsys, name) -> None:
    path = saved / name
    path.write_bytes(BAD_DATA[name])
    code = main(["tree", str(saved / "m"), "--data", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("kanpiler tree: error:") and "Traceback" not in err


def test_cli_tree_object_npy_and_nan_npy(saved, capsys) -> None:
    np.save(saved / "obj.npy", np.array([{"a": 1}, None], dtype=object))
    np.save(saved / "nan.npy", np.array([[0.1, np.nan]]))
    for name in ("obj.npy", "nan.npy"):
        assert main(["tree", str(saved / "m"), "--data", str(saved / name)]) == 2
    assert "NaN" in capsys.readouterr().err


def test_cli_tree_out_of_domain_points(tmp_path, capsys) -> None:
    kanpiler.compile("log(x)*y", dtype=torch.float64).save(tmp_path / "m")
    (tmp_path / "d.csv").write_text("x,y\n0.5,1\n-2,1\n")
    assert main(["tree", str(tmp_path / "m"), "--data", str(tmp_path / "d.csv")]) == 2
    assert "outside the model's domain" in capsys.readouterr().err


@pytest.mark.parametrize("variables", [",,,", " ", ","])
def test_cli_empty_variable_list_is_a_usage_error(capsys, variables) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compile", "x", "--variables", variables])
    assert info.value.code == 2 and "--variables" in capsys.readouterr().err


def test_every_error_here_is_a_kanpiler_error() -> None:
    for cls in (CompileError, DomainError, FormulaSyntaxError, ShapeError, UnsupportedError):
        assert issubclass(cls, KanpilerError)
