"""Pictures of a discovery (Compton scattering, noise-free): the Pareto front (matplotlib)
and the chosen formula's tree (Graphviz), written into the folder given on the command line
(nothing is written without it).

    python examples/discover_pictures.py docs/img
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import kanpiler


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 3, size=(2000, 4))
    E, m, c, theta = X.T
    y = E / (1 + E / (m * c**2) * (1 - np.cos(theta)))  # Compton scattering
    found = kanpiler.discover(X, y, ["E", "m", "c", "theta"], progress=False, time_limit=None)
    print(found)
    if out is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    cx = [p.complexity for p in found.pareto]
    err = [max(p.error, 1e-17) for p in found.pareto]
    ax.step(cx, err, where="post", color="0.6")
    ax.scatter(cx, err, zorder=3)
    chosen = next(p for p in found.pareto if p.formula == found.formula)
    ax.scatter([chosen.complexity], [max(chosen.error, 1e-17)], s=120, facecolors="none",
               edgecolors="C3", zorder=4, label=f"chosen: ${found.latex()}$")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("complexity (tree nodes; a fitted float counts 3)")
    ax.set_ylabel("held-out relative RMSE")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "discover_pareto.svg")
    (out / "discover_formula.svg").write_bytes(kanpiler.render(found.formula).pipe(format="svg"))
    print(f"wrote {out / 'discover_pareto.svg'} and {out / 'discover_formula.svg'}")


if __name__ == "__main__":
    main()
