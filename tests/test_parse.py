"""The formula language: grammar cases, name resolution, errors and size limits."""

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import kanpiler
from kanpiler import FormulaSyntaxError, KanpilerError, UnknownFunctionError, parse
from kanpiler.ir import Expr, Op, add, call, const, mul, named, neg, pow_, recip, var
from kanpiler.parser import MAX_DEPTH, grammar_path, is_name

x, y, z = var("x"), var("y"), var("z")


# ---- grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a - b + c", add(var("a"), neg(var("b")), var("c"))),
        ("a / b * c", mul(var("a"), recip(var("b")), var("c"))),
        ("x + y + z", add(x, y, z)),  # n-ary, not nested
        ("x*y*z", mul(x, y, z)),
        ("(x + y) + z", add(add(x, y), z)),  # parentheses keep the grouping
        ("-x**2", neg(pow_(x, 2))),  # power binds tighter than unary minus
        ("-x*y", mul(neg(x), y)),  # unary minus binds tighter than *
        ("2^3^2", pow_(2, pow_(3, 2))),  # right-associative
        ("x**y**z", pow_(x, pow_(y, z))),
        ("x**-2", pow_(x, neg(const(2)))),
        ("x^-y^2", pow_(x, neg(pow_(y, 2)))),
        ("(x**2)**3", pow_(pow_(x, 2), 3)),
        ("+x", x),
        ("--x", neg(neg(x))),
        ("a - -b", add(var("a"), neg(neg(var("b"))))),
        ("a*-b", mul(var("a"), neg(var("b")))),
        ("1/x", mul(const(1), recip(x))),
        ("a/(b*c)", mul(var("a"), recip(mul(var("b"), var("c"))))),
        ("sin(x)*exp(y)", mul(call("sin", x), call("exp", y))),
        ("max(x, y**2)", call("max", x, pow_(y, 2))),
        ("  x\n +\ty ", add(x, y)),
    ],
)
def test_grammar_structure(text, expected):
    assert parse(text) is expected


@pytest.mark.parametrize(
    "text, value",
    [("2", 2), ("2.5", 2.5), (".5", 0.5), ("2.", 2.0), ("1e-3", 1e-3), ("6.02E23", 6.02e23)],
)
def test_numbers(text, value):
    node = parse(text)
    assert node.op is Op.CONST and node.arg == value and type(node.arg) is type(value)


def test_integers_stay_exact():
    big = "123456789012345678901234567890"
    assert parse(big).arg == int(big)
    assert isinstance(parse("1e3").arg, float)


@pytest.mark.parametrize(
    "name", ["x", "x1", "theta_1", "E_n", "m0", "lambd", "Theta", "θ", "_a", "λ2"]
)
def test_identifiers(name):
    assert parse(name) is var(name)
    assert is_name(name)


@pytest.mark.parametrize("name", ["1x", "x-y", "", " x", "sin(x)", "x.y"])
def test_not_identifiers(name):
    assert not is_name(name)


def test_constants_and_declared_variables():
    assert parse("pi") is named("pi")
    assert parse("e") is named("e") and parse("E") is named("e")
    assert parse("e*x", variables=["e", "x"]) is mul(var("e"), x)  # declared wins
    assert parse("E + e", variables="E") is add(var("E"), named("e"))
    assert parse("pi", variables="x, pi") is var("pi")
    for name in ("I", "gamma", "beta", "S", "N"):  # never SymPy's specials
        assert parse(name) is var(name)


def test_aliases_are_canonical():
    assert parse("arcsin(x) + ln(y) + arctan(z)") is add(
        call("asin", x), call("log", y), call("atan", z)
    )


def test_every_library_function_parses():
    for name in kanpiler.library.all_names():
        fn = kanpiler.library.get(name)
        args = ", ".join(["x", "y"][: fn.arity])
        node = parse(f"{name}({args})")
        assert node.op is Op.CALL and node.arg == fn.name and len(node.args) == fn.arity


def test_accepts_expr_sympy_and_numbers():
    e = parse("x + 1")
    assert parse(e) is e
    assert parse(sympy.Symbol("x") * 2) is mul(2, x)
    assert parse(sympy.Rational(3, 4)) is const(Fraction(3, 4))
    assert parse(2.5) is const(2.5)
    assert parse(np.float64(2.5)) is const(2.5) and parse(np.int64(3)) is const(3)
    with pytest.raises(KanpilerError, match="cannot parse a dict"):
        parse({})


def test_grammar_file_is_the_source_tree_one():
    # editable install: the grammar comes from <repo>/grammar/formula.lark
    assert grammar_path().endswith("formula.lark")
    assert "?sum" in Path(grammar_path()).read_text(encoding="utf-8")


# ---- errors -------------------------------------------------------------------------------


def _error(text, cls=FormulaSyntaxError, **kw):
    with pytest.raises(cls) as info:
        parse(text, **kw)
    return info.value


@pytest.mark.parametrize(
    "text, reason, column",
    [
        ("(x + 1", "unbalanced parenthesis: '(' is never closed", 1),
        ("x + (y*(z)", "unbalanced parenthesis: '(' is never closed", 5),
        ("x + 1)", "unbalanced parenthesis: ')' has no matching '('", 6),
        ("x +", "missing operand at the end of the formula", 4),
        ("x * * y", "missing operand before '*'", 5),
        ("*x", "missing operand before '*'", 1),
        ("()", "missing operand before ')'", 2),
        ("sin(x,)", "missing operand before ')'", 7),
        ("x $ y", "unexpected character '$'", 3),
        ("x, y", "unexpected ','", 2),
        ("2x", "implicit multiplication is not supported", 2),
        ("x y", "implicit multiplication is not supported", 3),
        ("(x)(y)", "implicit multiplication is not supported", 4),
        ("1e999", "number 1e999 is out of range", 1),
        ("", "empty formula", 1),
        ("   ", "empty formula", 1),
        ("sin(x, y)", "'sin' takes 1 argument, got 2", 1),
        ("max(x)", "'max' takes 2 arguments, got 1", 1),
        ("x + pi(2)", "'pi' is a constant, not a function", 5),
    ],
)
def test_error_messages(text, reason, column):
    err = _error(text)
    assert err.reason == reason
    assert (err.line, err.column) == (1, column)
    assert isinstance(err, ValueError) and isinstance(err, KanpilerError)
    caret_line = str(err).splitlines()[2]
    assert caret_line.index("^") - 2 == column - 1  # the caret sits under the column


def test_unknown_function_suggests():
    err = _error("2*sinn(x)", UnknownFunctionError)
    assert err.reason == "unknown function 'sinn'; did you mean 'sin'?"
    assert err.column == 3 and err.hint is None
    err = _error("frobnicate(x)", UnknownFunctionError)
    assert err.reason == "unknown function 'frobnicate'" and "sin, cos" in err.hint


def test_hints():
    assert _error("2x").hint == "write '2*x'"
    assert _error("sin x").hint == "call a function with parentheses: sin(...)"
    assert (
        _error("f(x)", variables=["f", "x"]).reason == "'f' is a declared variable, not a function"
    )
    assert "ASCII minus" in _error("x − y").hint
    assert "without '='" in _error("y = x").hint


def test_multiline_position():
    err = _error("x +\n  y +\n  * z")
    assert (err.line, err.column) == (3, 3)
    assert "  * z" in str(err)


def test_invalid_variable_names():
    assert _error("x", variables=["x y"]).reason == "invalid variable name 'x y'"
    assert _error("x", variables=["2x"]).reason == "invalid variable name '2x'"


def test_code_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    for text in (
        f"__import__('os').system('touch {marker}')",
        "__import__(os).system(touch)",
        "exec(x)",
        "eval(x)",
        "lambda: x",
        "x.__class__",
        "[x for x in y]",
    ):
        with pytest.raises(FormulaSyntaxError):
            parse(text)
    assert not marker.exists()


# ---- size and depth limits ----------------------------------------------------------------


def test_deep_parentheses_are_fine():
    n = 10_000
    assert parse("(" * n + "x" + ")" * n) is x


@pytest.mark.parametrize(
    "text",
    [
        "-" * 10_000 + "x",
        "sin(" * 10_000 + "x" + ")" * 10_000,
        "x**" * 10_000 + "x",
        "(" * 10_000 + "x" + "+1)" * 10_000,
        "(" * 10_000 + "x",
    ],
    ids=["minus", "calls", "powers", "sums", "unclosed"],
)
def test_deep_nesting_gives_a_clear_error(text):
    start = time.perf_counter()
    with pytest.raises(FormulaSyntaxError) as info:
        parse(text)
    assert time.perf_counter() - start < 10
    assert "nests too deeply" in info.value.reason or "never closed" in info.value.reason


def test_depth_limit_is_exact():
    ok = "-" * (MAX_DEPTH - 1) + "x"
    assert parse(ok).depth == MAX_DEPTH
    with pytest.raises(FormulaSyntaxError, match="nests too deeply"):
        parse("-" + ok)


def test_long_flat_sum_is_one_node():
    n = 20_000
    node = parse("+".join(["x"] * n))
    assert node.op is Op.ADD and len(node.args) == n and node.depth == 2


@pytest.mark.slow
def test_megabyte_formula():
    text = "+".join(f"x{i % 10}*y" for i in range(210_000))  # about 1 MB
    assert len(text) > 1_000_000
    start = time.perf_counter()
    node = parse(text)
    assert time.perf_counter() - start < 60
    assert node.op is Op.ADD and len(node.args) == 210_000


# ---- properties ---------------------------------------------------------------------------

_ALPHABET = "xy12.e+-*/^(),sin ()_θ$'\n"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=30), st.text(alphabet=_ALPHABET, max_size=30)))
def test_random_text_parses_or_raises_syntax_error(text):
    try:
        result = parse(text)
    except FormulaSyntaxError as err:
        assert err.line >= 1 and err.column >= 1
        str(err)
    else:
        assert isinstance(result, Expr)
