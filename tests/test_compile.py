"""The compiler on each construct of the language, against numpy float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

import kanpiler
from kanpiler import CompileError, KanpilerError, ir, library
from kanpiler.layout import evaluate_layout as evaluate
from kanpiler.layout import verify
from kanpiler.lowering import lower_canonical

F64 = torch.float64


def run(model, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(X, dtype=model.dtype)).double().numpy()


def box(n_vars: int, lo: float, hi: float, n: int = 256, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, (n, n_vars))


def assert_exact(formula, ref, lo=-2.0, hi=2.0, variables=None, n_vars=None, tol=1e-9):
    model = kanpiler.compile(formula, variables, dtype=F64)
    X = box(n_vars or len(model.variables), lo, hi)
    y = np.asarray(ref(*X.T), dtype=np.float64).reshape(len(X), -1)
    got = run(model, X)
    assert got.shape == y.shape
    np.testing.assert_allclose(got, y, rtol=tol, atol=tol)
    np.testing.assert_allclose(evaluate(model.layout, X), y, rtol=tol, atol=tol)
    verify(model.layout)
    return model


# ---- several functions of one variable in one sum (pykan's edge collision) -----------------


@pytest.mark.parametrize(
    "formula, ref",
    [
        ("sin(x) + x**2", lambda x: np.sin(x) + x**2),
        ("sin(x) + cos(x)", lambda x: np.sin(x) + np.cos(x)),
        ("x + x**2", lambda x: x + x**2),
        (
            "sin(x) + cos(x) + exp(x) + x**3 + x",
            lambda x: np.sin(x) + np.cos(x) + np.exp(x) + x**3 + x,
        ),
        ("sin(x) + sin(2*x) + 3*sin(x)", lambda x: 4 * np.sin(x) + np.sin(2 * x)),
        ("sin(x) + x + exp(sin(x))", lambda x: np.sin(x) + x + np.exp(np.sin(x))),
    ],
)
def test_functions_of_one_variable_in_one_sum(formula, ref):
    assert_exact(formula, ref)


# ---- powers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [2, 3, 7, 12, 25, -1, -2, -3, -7])
def test_integer_powers_any_size_and_sign(p):
    # away from 0 for negative powers; negative bases exercise odd/even signs
    assert_exact(f"(x + 3)**({p})", lambda x: (x + 3.0) ** p, lo=-2.5, hi=0.5)
    assert_exact(f"x**({p})", lambda x: x ** float(p), lo=0.5, hi=1.5)
    assert_exact(f"x**({p})", lambda x: x ** float(p), lo=-1.5, hi=-0.5)


@pytest.mark.parametrize(
    "formula, ref",
    [
        ("x**1.5", lambda x: x**1.5),
        ("x**0.5", np.sqrt),
        ("x**(1/3)", np.cbrt),
        ("x**(-1/2)", lambda x: x**-0.5),
        ("(2*x + 1)**(2/3)", lambda x: (2 * x + 1) ** (2 / 3)),
        ("x**2.25 + x**-0.75", lambda x: x**2.25 + x**-0.75),
    ],
)
def test_float_and_rational_exponents(formula, ref):
    assert_exact(formula, ref, lo=0.1, hi=3.0)


def test_variable_exponents_on_positive_bases():
    assert_exact("x**y", lambda x, y: x**y, lo=0.1, hi=3.0)
    assert_exact("(x + 1)**(2*y - 1)", lambda x, y: (x + 1) ** (2 * y - 1), lo=0.1, hi=2.0)
    assert_exact("2**x + pi**(x*y)", lambda x, y: 2**x + np.pi ** (x * y), lo=-2.0, hi=2.0)
    assert_exact("e**x", np.exp)


# ---- affine, bare, constant --------------------------------------------------------------


def test_bare_variable_and_affine_formulas_are_one_edge():
    m = assert_exact("x", lambda x: x)
    assert m.layout.depth == 1 and m.layout.n_edges == 1
    m = assert_exact("2*x + 3", lambda x: 2 * x + 3)
    assert m.layout.depth == 1 and m.layout.n_edges == 1
    m = assert_exact("-(x - 3*y)/4 + 1", lambda x, y: -(x - 3 * y) / 4 + 1)
    assert m.layout.depth == 1 and m.layout.n_edges == 2


def test_constant_formulas():
    m = assert_exact("2*pi + 1", lambda x: np.full_like(x, 2 * np.pi + 1), variables=["x"])
    assert m.layout.n_edges == 0
    m = assert_exact("x - x + 5", lambda x: np.full_like(x, 5.0))
    assert m.layout.n_edges == 0


def test_constant_formula_without_variables():
    model = kanpiler.compile("sin(1) + 2", dtype=F64)
    assert model.variables == []
    out = run(model, np.zeros((3, 0)))
    np.testing.assert_allclose(out, np.full((3, 1), np.sin(1) + 2), rtol=1e-15)


# ---- every library function --------------------------------------------------------------

_DOMAIN = {
    "asin": (-0.9, 0.9), "acos": (-0.9, 0.9), "atanh": (-0.9, 0.9), "acosh": (1.1, 3.0),
    "log": (0.1, 3.0), "log10": (0.1, 3.0), "log2": (0.1, 3.0), "sqrt": (0.1, 3.0),
    "cbrt": (0.1, 3.0), "tan": (-1.2, 1.2), "cot": (0.2, 2.9), "csc": (0.2, 2.9),
    "sec": (-1.2, 1.2), "sign": (0.05, 2.0),
}  # fmt: skip


@pytest.mark.parametrize("name", library.names(1))
def test_every_library_function(name):
    lo, hi = _DOMAIN.get(name, (-2.0, 2.0))
    x = sympy.Symbol("x")
    ref = sympy.lambdify(x, 2 * library.get(name).sympy_fn(x) - 1, ["scipy", "numpy"])
    assert_exact(f"2*{name}(x) - 1", lambda v: ref(v) + 0 * v, lo=lo, hi=hi)
    # the argument's affine map rides on the same edge
    inner = sympy.lambdify(x, library.get(name).sympy_fn((x - 1) / 2 + 0.5), ["scipy", "numpy"])
    m = assert_exact(f"{name}((x - 1)/2 + 0.5)", lambda v: inner(v) + 0 * v, lo=2 * lo, hi=2 * hi)
    assert m.layout.n_edges == 1


def test_two_argument_min_max_are_exact():
    assert_exact(
        "max(x, y) + min(sin(x), y**2)", lambda x, y: np.maximum(x, y) + np.minimum(np.sin(x), y**2)
    )


def test_sign_and_abs_through_zero():
    assert_exact("abs(x - 0.5) * sign(y)", lambda x, y: np.abs(x - 0.5) * np.sign(y))


# ---- nesting, sharing, several outputs -----------------------------------------------------


def test_deep_nesting():
    text, ref = "x", lambda x: x
    for k in range(12):
        fn = ("sin", "cos", "tanh")[k % 3]
        text = f"{fn}(0.9*{text} + 0.1)"
        ref = (lambda f, g: lambda x: getattr(np, f)(0.9 * g(x) + 0.1))(fn, ref)
    m = assert_exact(text, ref)
    assert m.layout.depth == 12 and m.layout.n_edges == 12


def test_deep_ir_without_recursion():
    x = ir.var("x")
    e = x
    for _ in range(3000):
        e = ir.call("sin", e)
    lay = kanpiler.lower(e)
    assert lay.depth == 3000
    X = np.array([[0.3]])
    v = 0.3
    for _ in range(3000):
        v = np.sin(v)
    np.testing.assert_allclose(evaluate(lay, X)[0, 0], v, rtol=1e-12)


def test_repeated_subexpression_computed_once():
    m = assert_exact(
        "exp(sin(x*y)) + cos(sin(x*y)) + sin(x*y)**2",
        lambda x, y: np.exp(np.sin(x * y)) + np.cos(np.sin(x * y)) + np.sin(x * y) ** 2,
    )
    fns = [e.fn for es in m.layout.edges for e in es]
    assert fns.count("sin") == 1
    assert sum(n.kind == "mult" for layer in m.layout.nodes for n in layer) == 1


def test_several_outputs_in_order():
    formulas = ["x*y", "sin(x) + y", "2*x*y + 1", "3", "x"]
    refs = [
        lambda x, y: x * y, lambda x, y: np.sin(x) + y, lambda x, y: 2 * x * y + 1,
        lambda x, y: 3 + 0 * x, lambda x, y: x,
    ]  # fmt: skip
    model = kanpiler.compile(formulas, dtype=F64)
    X = box(2, -2, 2)
    want = np.stack([r(*X.T) for r in refs], 1)
    np.testing.assert_allclose(run(model, X), want, rtol=1e-12, atol=1e-12)
    assert model.source_formulas == formulas


def test_variables_order_and_unused_inputs():
    model = kanpiler.compile("y*sin(x)", ["x", "y", "z"], dtype=F64)
    assert model.variables == ["x", "y", "z"]
    X = box(3, -1, 1)
    np.testing.assert_allclose(run(model, X)[:, 0], X[:, 1] * np.sin(X[:, 0]), rtol=1e-12)
    assert kanpiler.compile(["y + x", "z*x"]).variables == ["y", "x", "z"]


def test_sympy_and_ir_inputs():
    x, y = sympy.symbols("x y")
    m = kanpiler.compile(sympy.sin(x) * sympy.exp(y) + x**2, dtype=F64)
    X = box(2, -1, 1)
    want = np.sin(X[:, 0]) * np.exp(X[:, 1]) + X[:, 0] ** 2
    np.testing.assert_allclose(run(m, X)[:, 0], want, rtol=1e-12)
    e = ir.call("exp", ir.var("a")) - ir.var("b") ** 3
    m = kanpiler.compile(e, dtype=F64)
    np.testing.assert_allclose(run(m, X)[:, 0], np.exp(X[:, 0]) - X[:, 1] ** 3, rtol=1e-12)


# ---- compactness -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, depth, edges",
    [
        ("sin(x)*exp(y)", 1, 2),
        ("sin(x) + x**2", 2, 4),
        ("2*x + 3", 1, 1),
        ("x*y*z", 1, 3),
        ("sin(x)*y + z", 2, 5),
        ("exp(sin(x) + cos(y))", 2, 3),
        ("(x + y)*(x - y)", 1, 4),
        ("(x + y)**2", 1, 4),
        ("exp((x + y)**2)", 2, 5),
        ("sqrt((a - b)**2 + (c - d)**2)", 3, 7),
        ("30*x*z/((x - 10)*y**2)", 1, 4),
        ("y/sqrt(x**2 + y**2 + z**2)", 2, 6),
        ("1/exp(x) + sqrt(x)**-3", 2, 4),
    ],
)
def test_compact_layouts(formula, depth, edges):
    lay = kanpiler.lower(formula)
    assert (lay.depth, lay.n_edges) == (depth, edges), str(lay)


@pytest.mark.parametrize(
    "formula, ref",
    [
        ("exp((x + y)**2/4)", lambda x, y: np.exp((x + y) ** 2 / 4)),
        ("x*(x - y)**3", lambda x, y: x * (x - y) ** 3),
        ("30*x/((x - 10)*y**2)", lambda x, y: 30 * x / ((x - 10) * y**2)),
        ("y/sqrt(x**2 + y**2)", lambda x, y: y / np.sqrt(x**2 + y**2)),
        ("1/exp(x) + sqrt(x*y)**-3", lambda x, y: np.exp(-x) + (x * y) ** -1.5),
        ("(x*y)**-2 - (x - y)**2*x", lambda x, y: (x * y) ** -2.0 - (x - y) ** 2 * x),
    ],
)
def test_flattened_products_and_powers_stay_exact(formula, ref):
    assert_exact(formula, ref, lo=0.2, hi=2.0, variables=["x", "y"])


def test_layer_count_follows_the_chain_of_non_affine_operations():
    # exp . (mult) . sin: three non-affine steps, affine glue in between costs nothing
    lay = kanpiler.lower("2*exp(3*(sin(x) + 1)*(y - 2) + 4) - 1")
    assert lay.depth == 2  # sin and y-2 feed the product directly; exp is the second layer


# ---- dtype, device, trace -------------------------------------------------------------------


def test_float32_to_float32_rounding():
    model = kanpiler.compile("exp(sin(x))*y**3 + log(x)", dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    X = box(2, 0.2, 2.0)
    want = np.exp(np.sin(X[:, 0])) * X[:, 1] ** 3 + np.log(X[:, 0])
    got = run(model, X.astype(np.float32))[:, 0]
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


def test_trace_keeps_every_stage():
    model = kanpiler.compile("sin(x)*exp(y)", trace=True)
    names = [step for step, _ in model.compile_trace]
    assert names[0] == "parse" and names[-2:] == ["lower", "build"]


# ---- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, words",
    [
        ("(-2)**x", "base must be > 0|positive base"),
        ("log(-1) + x", "log\\(-1\\).* not a finite real number"),
        ("x + sqrt(-4)", "sqrt\\(-4\\).* not a finite real number"),
        ("0**(-1) + x", "not a finite real number"),
    ],
)
def test_refusals_name_the_construct(formula, words):
    with pytest.raises(KanpilerError, match=words):
        kanpiler.compile(formula)


@pytest.mark.parametrize(
    "expr, words",
    [
        (ir.const(-2) ** ir.var("x"), "positive base"),
        (ir.call("log", ir.const(-1)) + ir.var("x"), "not a finite real number"),
        (ir.var("x") + ir.const(0) ** ir.const(-1), "not a finite real number"),
        (ir.call("sqrt", ir.call("sin", ir.const(0)) - 1) * ir.var("x"), "not a finite real"),
    ],
)
def test_lowering_refuses_raw_ir_it_cannot_compile(expr, words):
    with pytest.raises(KanpilerError, match=words):
        kanpiler.lower(expr)


def test_lowering_takes_only_what_the_passes_leave():
    x = ir.var("x")
    for raw in (-x, 1 / x, ir.call("max", x, x * 2), x ** ir.var("y"), ir.named("pi") * x):
        with pytest.raises(CompileError, match="the passes"):
            lower_canonical(raw)


def test_lowering_raw_ir_matches_the_passes():
    # the one lower runs the passes on raw IR (NEG, RECIP, min/max, x**y): exact values
    x, y = ir.var("x"), ir.var("y")
    exprs = [x**y, -(x * y) / (x + 1), ir.call("max", x, y * 2), 2 ** (x - y), (x * y) * (x * y)]
    lay = kanpiler.lower(exprs)
    X = box(2, 0.2, 2.0)
    a, b = X.T
    want = np.stack([a**b, -(a * b) / (a + 1), np.maximum(a, 2 * b), 2 ** (a - b), (a * b) ** 2], 1)
    np.testing.assert_allclose(evaluate(lay, X), want, rtol=1e-12)
    assert kanpiler.lower(x**y).depth == 2


def test_missing_variable_is_named():
    with pytest.raises(CompileError, match="'y'"):
        kanpiler.compile("x*y", ["x"])


def test_errors_are_kanpiler_errors():
    with pytest.raises(KanpilerError):
        kanpiler.compile("sin(")
    with pytest.raises(KanpilerError):
        kanpiler.compile([])


# ---- build checks ----------------------------------------------------------------------------


def test_check_build_catches_a_module_that_differs_from_its_layout():
    from kanpiler.compiler import build_model as build
    from kanpiler.compiler import check_build, self_check

    lay = kanpiler.lower("sin(x)*exp(y) + 2")
    model = build(lay, F64)
    check_build(model, lay)
    self_check(model, lay)
    with torch.no_grad():
        model.symbolic[0].affine[0, 0, 0] += 1e-3
    with pytest.raises(kanpiler.VerifyError, match="build"):
        check_build(model, lay)
    with pytest.raises(KanpilerError, match="disagrees"):
        self_check(model, lay)
    model = build(lay, F64)
    model.unfix_symbolic(0, 0, 0)
    with pytest.raises(kanpiler.VerifyError):
        check_build(model, lay)


def test_variables_as_a_string():
    model = kanpiler.compile("x*y", "y, x", dtype=F64)
    assert model.variables == ["y", "x"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_model_on_cuda(dtype):
    formula = ["sin(x)*exp(y) + x**2", "x**y + sqrt(x*y)"]
    cpu = kanpiler.compile(formula, dtype=dtype)
    gpu = kanpiler.compile(formula, dtype=dtype, device="cuda")
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    x = torch.rand(64, 2, dtype=dtype) + 0.1
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"dtype": torch.int32}, "floating torch dtype"),
        ({"device": "nope"}, "not a torch device"),
        ({"variables": 5}, "variables must be"),
        ({"variables": ["x", "x"]}, "distinct"),
    ],
)
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(CompileError, match=words):
        kanpiler.compile("x", **kwargs)
    assert kanpiler.compile("x", dtype="float64").dtype == F64
