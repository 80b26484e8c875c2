"""Compile a formula into an exact MultKAN and look inside.

python examples/compile_and_inspect.py                     # a default formula
python examples/compile_and_inspect.py "x**y + sin(x)*exp(y)"
"""

from __future__ import annotations

import sys

import torch

import kanpiler


def main(formula: str) -> None:
    model = kanpiler.compile(formula, dtype=torch.float64)
    layout = model.layout
    print(f"formula   : {formula}")
    print(f"variables : {model.variables}")
    print(layout)
    print(f"widths    : {layout.width}, mult arities {layout.mult_arity}")
    print(
        f"size      : {layout.depth} KAN layers, {layout.n_edges} edges, {layout.n_params} numbers"
    )

    # the module computes the formula exactly: compare with SymPy on random points
    import sympy

    expr = kanpiler.to_sympy(kanpiler.parse(formula))
    symbols = [sympy.Symbol(v) for v in model.variables]
    reference = sympy.lambdify(symbols, expr, "numpy")
    x = 0.5 + torch.rand(
        5, len(symbols), dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        got = model(x)[:, 0]
    want = torch.as_tensor(reference(*x.T.numpy()), dtype=torch.float64)
    print(f"max |model - sympy| on 5 points: {float((got - want).abs().max()):.2e}")

    # several outputs at once, and what cannot be compiled
    both = kanpiler.compile([formula, "x*y"], dtype=torch.float64)
    print(f"two outputs: {both.source_formulas} -> output shape {tuple(both(x).shape)}")
    try:
        kanpiler.compile("(-2)**x")
    except kanpiler.KanpilerError as err:
        print(f"refused: {err}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sin(x) + x**2 + 2*x*exp(y)")
