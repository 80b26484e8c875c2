"""Shared by the ported pykan tutorials: command-line options, figures, and the table that sets
pykan's notebook numbers beside kanpiler's.

``--small`` runs a smaller version (fewer points and steps; the tests use it); ``--plots DIR``
saves the figures the notebook shows as PNG files in ``DIR`` (nothing is written otherwise).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def options(argv: list[str] | None = None) -> dict[str, Any]:
    """``{"small": bool, "plots": Path | None}`` from the command line."""
    args = sys.argv[1:] if argv is None else argv
    plots = None
    if "--plots" in args:
        i = args.index("--plots")
        if i + 1 >= len(args):
            raise SystemExit("--plots needs a folder")
        plots = Path(args[i + 1])
    return {"small": "--small" in args, "plots": plots}


def save(draw: Callable[[], Any], plots: Path | None, name: str) -> None:
    """Draw the figure (``draw()``) and write it to ``plots/name.png``, only when a folder was
    asked for."""
    if plots is None:
        return
    plots.mkdir(parents=True, exist_ok=True)
    fig = draw()
    fig.savefig(plots / f"{name}.png", dpi=100)
    print(f"figure {name}: {plots / (name + '.png')}")


def compare(title: str, rows: list[tuple[str, str, str]], small: bool) -> None:
    """Print ``(stage, pykan's notebook, kanpiler)`` rows as a table (no colons in the rows,
    so a reader of ``key: value`` lines skips them)."""
    note = " (--small: fewer points and steps than the notebook)" if small else ""
    print(f"\npykan notebook vs kanpiler, {title}{note}")
    w0 = max(len(r[0]) for r in rows + [("stage", "", "")])
    w1 = max(len(r[1]) for r in rows + [("", "pykan notebook", "")])
    print(f"  {'stage':{w0}s}  {'pykan notebook':{w1}s}  kanpiler")
    for stage, theirs, ours in rows:
        print(f"  {stage:{w0}s}  {theirs:{w1}s}  {ours}")


def rmse_pair(history: dict[str, list]) -> str:
    """``"train / test"`` RMSE of the last step of a ``fit`` history."""
    return f"{history['train_rmse'][-1]:.2e} / {history['test_rmse'][-1]:.2e}"
