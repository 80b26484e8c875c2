"""Draw a formula, its layout and its compiled model with Graphviz.

    python examples/render.py                  # writes into a fresh temporary folder
    python examples/render.py out/ "x*y + sin(z)"

Writes ``expr.gv``, ``layout.gv``, ``model.gv`` (DOT source, always) and the same as ``.svg``
when Graphviz's ``dot`` is installed (otherwise prints how to install it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import kanpiler
from kanpiler.views import save


def main(folder: Path, formula: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = kanpiler.compile(formula)
    views = {
        "expr": kanpiler.render(kanpiler.parse(formula)),  # the tree of operations
        "layout": kanpiler.render(model.layout),  # layers of sum and mult nodes
        "model": kanpiler.render(model),  # the module (through its layout)
    }
    for name, dot in views.items():
        print(
            f"{name:7s}: {len(dot.source.splitlines())} lines of DOT -> {save(dot, folder / (name + '.gv'))}"
        )
        try:
            print(f"{'':7s}  {save(dot, folder / (name + '.svg'))}")
        except kanpiler.RenderError as err:
            print(f"{'':7s}  no SVG: {err}")


if __name__ == "__main__":
    out = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(tempfile.mkdtemp(prefix="kanpiler-render-"))
    )
    main(out, sys.argv[2] if len(sys.argv) > 2 else "sin(x)*exp(y) + x**2")
