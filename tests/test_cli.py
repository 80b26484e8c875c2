"""The command line: the parse subcommand, help everywhere, error handling and exit codes."""

import subprocess
import sys

import numpy as np
import pytest

from kanpiler import KanpilerError
from kanpiler.cli import _read_data, build_parser, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_prints_canonical_sympy_and_latex(capsys):
    code, out, err = run(capsys, "parse", "sin(x)*exp(y)")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "formula: sin(x)*exp(y)",
        "sympy:   exp(y)*sin(x)",
        r"latex:   e^{y} \sin{\left(x \right)}",
    ]


def test_parse_canonicalizes_and_honours_variables(capsys):
    code, out, _ = run(capsys, "parse", "x + x - e*e", "--variables", "x,e")
    assert code == 0
    assert out.splitlines()[0] == "formula: 2*x - e**2"
    code, out, _ = run(capsys, "parse", "--variables", "x", "--", "-x**2 + e")
    assert code == 0 and out.splitlines()[1] == "sympy:   E - x**2"


@pytest.mark.parametrize(
    "formula, message",
    [
        ("sinn(x)", "unknown function 'sinn'; did you mean 'sin'?"),
        ("(x + 1", "unbalanced parenthesis"),
        ("2x", "hint: write '2*x'"),
        ("sin(x, y)", "'sin' takes 1 argument, got 2"),
    ],
)
def test_bad_formula_exits_2_with_caret(capsys, formula, message):
    code, out, err = run(capsys, "parse", formula)
    assert code == 2 and out == ""
    assert err.startswith("kanpiler parse: error: ") and message in err and "^" in err


def test_bad_variable_name_exits_2(capsys):
    code, _, err = run(capsys, "parse", "x", "--variables", "x,2y")
    assert code == 2 and "invalid variable name '2y'" in err


def test_every_subcommand_has_help(capsys):
    for command in ([], ["parse"], ["compile"], ["convert"], ["tree"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
        assert "usage: kanpiler" in capsys.readouterr().out


def test_compile_options_are_declared():
    args = build_parser().parse_args(
        ["compile", "x*y", "--dtype", "float64", "--print-layout", "--svg", "a.svg", "--save", "m"]
    )
    assert (args.dtype, args.print_layout, args.svg, args.save) == ("float64", True, "a.svg", "m")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compile", "x", "--dtype", "float16"])


def test_missing_model_file_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "tree", str(tmp_path / "model"), "--data", str(tmp_path / "x.csv"))
    assert code == 2 and err.startswith("kanpiler tree: error: ")


def test_read_data(tmp_path):
    csv = tmp_path / "points.csv"
    csv.write_text("y,x\n1,2\n3,4\n")
    assert np.array_equal(_read_data(str(csv), ["x", "y"]), [[2, 1], [4, 3]])  # by header name
    plain = tmp_path / "plain.csv"
    plain.write_text("1,2\n3,4\n")
    assert np.array_equal(_read_data(str(plain), ["a", "b"]), [[1, 2], [3, 4]])
    npy = tmp_path / "points.npy"
    np.save(npy, np.eye(2))
    assert np.array_equal(_read_data(str(npy), ["a", "b"]), np.eye(2))
    with pytest.raises(KanpilerError, match="use a .csv or .npy"):
        (tmp_path / "p.txt").write_text("1")
        _read_data(str(tmp_path / "p.txt"), ["a"])


def test_module_and_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "kanpiler", "parse", "x/2 + x/2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.splitlines()[0] == "formula: x"
    bad = subprocess.run(
        [sys.executable, "-m", "kanpiler", "parse", "x +"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "missing operand" in bad.stderr
