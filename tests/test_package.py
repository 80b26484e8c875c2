"""The package itself: public API, cheap import, no code evaluation, the wheel and its grammar."""

import ast
import importlib.metadata
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import kanpiler

ROOT = Path(__file__).resolve().parent.parent


def test_public_api():
    for name in ("parse", "to_string", "to_sympy", "from_sympy", "to_latex", "canonicalize"):
        assert name in kanpiler.__all__ and callable(getattr(kanpiler, name))
    for name in ("KanpilerError", "FormulaSyntaxError", "UnknownFunctionError", "VerifyError"):
        assert issubclass(getattr(kanpiler, name), Exception)
    assert issubclass(kanpiler.FormulaSyntaxError, ValueError)
    assert issubclass(kanpiler.FormulaSyntaxError, kanpiler.KanpilerError)
    with pytest.raises(AttributeError):
        kanpiler.no_such_name  # noqa: B018


def test_version_is_single_sourced():
    assert kanpiler.__version__ == importlib.metadata.version("kanpiler")


def test_import_and_parse_stay_light():
    code = (
        "import sys, kanpiler; e = kanpiler.parse('sin(x)*exp(y)'); "
        "print(str(e), 'torch' in sys.modules, 'sympy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["sin(x)*exp(y)", "False", "False"]


_FORBIDDEN = {"eval", "exec", "sympify", "parse_expr", "__import__"}


def test_no_code_evaluation_in_the_package():
    """Formula text never reaches eval, exec, sympify or parse_expr: none is called at all."""
    found = []
    for path in sorted((ROOT / "kanpiler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
                if name in _FORBIDDEN:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []


@pytest.mark.skipif(importlib.util.find_spec("hatchling") is None, reason="hatchling missing")
def test_wheel_ships_the_grammar(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("kanpiler-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "kanpiler/grammar/formula.lark" in names
        assert (
            zf.read("kanpiler/grammar/formula.lark") == (ROOT / "grammar/formula.lark").read_bytes()
        )
        site = tmp_path / "site"
        zf.extractall(site)
    # the unpacked wheel, not the source tree, must be what is imported and what parses
    code = (
        "import kanpiler; from kanpiler.parser import grammar_path; "
        "print(kanpiler.__file__); print(grammar_path()); print(kanpiler.parse('x^2 - 1'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    module_file, grammar, parsed = out.stdout.splitlines()
    assert module_file.startswith(str(site)) and grammar.startswith(str(site))
    assert parsed == "x**2 - 1"


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were, not into the repo
    exec(compile(block, "README.md", "exec"), {})
    assert list(tmp_path.iterdir()) == []


def test_readme_lists_the_function_library():
    from kanpiler import library

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for fn in library.FUNCTIONS.values():
        aliases = ", ".join(f"`{a}`" for a in fn.aliases)
        assert f"| `{fn.name}` | {fn.arity} | {aliases} | {fn.domain_text} |" in text


def test_docstring_examples():
    import doctest
    import importlib

    for name in ("parser", "printing", "passes", "ir.text", "reader"):
        module = importlib.import_module(f"kanpiler.{name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name
