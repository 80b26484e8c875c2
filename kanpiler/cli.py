"""The command line: ``kanpiler parse | compile | convert | tree``.

In: arguments (formula text, model paths, data files). Out: text on stdout, files the user
names; every ``KanpilerError`` is printed on stderr and exits with status 2.
Stage: CLI, a thin shell over the public API. Each subcommand imports the stages it runs when
it runs (documented lazy imports), so ``kanpiler --help`` and ``kanpiler parse`` never load torch.

    kanpiler parse "sin(x)*exp(y)"
    kanpiler compile "sin(x)*exp(y)" --print-layout --svg model.svg --save model
    kanpiler convert model --latex
    kanpiler tree model --data points.csv --svg tree.svg
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kanpiler

from .errors import KanpilerError

_EPILOG = (
    'A formula that starts with "-" goes last, after "--": kanpiler parse --variables x -- "-x**2"'
)


def _parse_cmd(args: argparse.Namespace) -> None:
    from .parser import parse
    from .passes import canonicalize
    from .printing import to_latex, to_string, to_sympy

    expr = canonicalize(parse(args.formula, args.variables))
    print(f"formula: {to_string(expr)}")
    print(f"sympy:   {to_sympy(expr)}")
    print(f"latex:   {to_latex(expr)}")


def _compile_cmd(args: argparse.Namespace) -> None:
    import torch

    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    model = kanpiler.compile(args.formula, args.variables, dtype=dtype)
    print(f"variables: {', '.join(model.variables)}")
    print(f"width:     {model.width}")
    if args.print_layout:
        print(model.layout)
    _write_drawing(model, args)
    if args.save:
        model.save(args.save)
        print(f"saved:     {args.save}")


def _convert_cmd(args: argparse.Namespace) -> None:
    import sympy

    formulas = kanpiler.formula(kanpiler.load(args.model))
    for i, f in enumerate(formulas):
        name = "f" if len(formulas) == 1 else f"f{i}"
        print(f"{name} = {sympy.latex(f) if args.latex else f}")


def _tree_cmd(args: argparse.Namespace) -> None:
    import torch

    from .runtime.domain import evaluate

    model = kanpiler.load(args.model)
    dtype = next(model.parameters()).dtype
    x = torch.as_tensor(_read_data(args.data, list(model.variables)), dtype=dtype)
    evaluate(model, x)  # a DomainError when points leave the model's domain
    result = kanpiler.tree(model, x, variables=list(model.variables))
    print(result.graph.get("skeleton", result) if hasattr(result, "graph") else result)
    _write_drawing(result, args)


def _read_data(path: str, variables: list[str]) -> Any:
    """Points from .npy or .csv (a header row naming the variables is optional): a finite,
    non-empty float array with one column per variable, else a ``KanpilerError``."""
    file = Path(path)
    if not file.is_file():
        raise KanpilerError(f"data file {path!r} not found")
    if file.suffix not in (".npy", ".csv"):
        raise KanpilerError(f"data file {path!r}: use a .csv or .npy file")
    data = _read_npy(file) if file.suffix == ".npy" else _read_csv(file, variables)
    return _checked_points(data, path, variables)


def _read_npy(file: Path) -> Any:
    import numpy as np

    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # object arrays, garbage, truncated files
        raise KanpilerError(f"data file {str(file)!r} is not a numeric .npy array: {err}") from None


def _read_csv(file: Path, variables: list[str]) -> Any:
    import numpy as np

    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise KanpilerError(f"data file {str(file)!r} is not UTF-8 text") from None
    if not lines or not lines[0].strip():
        raise KanpilerError(f"data file {str(file)!r} is empty")
    first = [c.strip() for c in lines[0].split(",")]
    header = not _is_number(first[0])
    if len(lines) <= header:
        raise KanpilerError(f"data file {str(file)!r} holds no data rows")
    try:
        data = np.loadtxt(lines, delimiter=",", skiprows=int(header), ndmin=2, dtype=float)
    except ValueError as err:
        raise KanpilerError(
            f"data file {str(file)!r}: not comma-separated numbers: {err}"
        ) from None
    if header and set(variables) <= set(first) and data.size:
        data = data[:, [first.index(v) for v in variables]]
    return data


def _checked_points(data: Any, path: str, variables: list[str]) -> Any:
    import numpy as np

    if data.dtype.kind not in "iuf" or data.ndim != 2:
        raise KanpilerError(
            f"data file {path!r}: need a 2-D array of numbers, got {data.dtype} of shape "
            f"{data.shape}"
        )
    if data.shape[0] == 0 or data.shape[1] != len(variables):
        raise KanpilerError(
            f"data file {path!r}: need rows of {len(variables)} values ({', '.join(variables)}), "
            f"got shape {data.shape}"
        )
    bad = ~np.isfinite(data)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise KanpilerError(
            f"data file {path!r}: {int(bad.sum())} NaN or infinite values (first at row {row}, "
            f"column {col})"
        )
    return data.astype(float)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _write_drawing(obj: Any, args: argparse.Namespace) -> None:
    wanted = {fmt: getattr(args, fmt, None) for fmt in ("dot", "svg", "png")}
    if not any(wanted.values()):
        return
    from .views import pipe, render

    graph = render(obj)
    for fmt, path in wanted.items():
        if path and fmt == "dot":
            Path(path).write_text(graph.source, encoding="utf-8")
        elif path:
            Path(path).write_bytes(pipe(graph, fmt))
        if path:
            print(f"wrote:     {path}")


# ---- argument parsing -----------------------------------------------------------------------


def _add_drawing_options(p: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    for fmt in formats:
        p.add_argument(f"--{fmt}", metavar="FILE", help=f"write the {fmt.upper()} drawing")


def build_parser() -> argparse.ArgumentParser:
    """The ``kanpiler`` argument parser (one subparser per command)."""
    from ._version import __version__

    top = argparse.ArgumentParser(
        prog="kanpiler",
        description="Compile formulas into Kolmogorov-Arnold Networks and read them back.",
        epilog=_EPILOG,
    )
    top.add_argument("--version", action="version", version=f"kanpiler {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "parse", help="print a formula's canonical form, SymPy and LaTeX", epilog=_EPILOG
    )
    p.add_argument("formula", help='formula text, e.g. "sin(x)*exp(y)"')
    p.add_argument("--variables", help="comma-separated variable names (they win over pi, e)")
    p.set_defaults(run=_parse_cmd)

    c = sub.add_parser("compile", help="compile a formula into an exact MultKAN", epilog=_EPILOG)
    c.add_argument("formula", help="formula text")
    c.add_argument("--variables", help="comma-separated input names, in input order")
    c.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    c.add_argument("--print-layout", action="store_true", help="print the network layout")
    _add_drawing_options(c, ("dot", "svg", "png"))
    c.add_argument("--save", metavar="PATH", help="save the model (safetensors + JSON)")
    c.set_defaults(run=_compile_cmd)

    v = sub.add_parser("convert", help="print the formula(s) of a saved model")
    v.add_argument("model", help="path given to model.save")
    v.add_argument("--latex", action="store_true", help="print LaTeX instead of SymPy text")
    v.set_defaults(run=_convert_cmd)

    t = sub.add_parser("tree", help="find a saved model's separability tree on data")
    t.add_argument("model", help="path given to model.save")
    t.add_argument("--data", required=True, metavar="FILE", help="input points (.csv or .npy)")
    _add_drawing_options(t, ("dot", "svg"))
    t.set_defaults(run=_tree_cmd)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 on a ``KanpilerError``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "variables", None) is not None:
        args.variables = [v for v in args.variables.replace(",", " ").split() if v]
        if not args.variables:
            parser.error("--variables: give at least one name, e.g. --variables x,y")
    try:
        args.run(args)
    except (KanpilerError, OSError) as err:
        print(f"kanpiler {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
