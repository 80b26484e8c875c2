"""A compiled prior law, fine-tuned to data that deviates from it; the correction read back.

Prior: a damped linear spring, F(x, v) = -2 x - 0.3 v, compiled to an exact KAN. The
measured force comes from a hardening spring, F = -2 x - 0.3 v - 0.5 x^3. The compiled
symbolic edges stay fixed; a spline beside each of them (starting at zero, so the model
starts as the prior) learns what the prior misses, with ``kanpiler.physics.solve`` used as a
least-squares fit. The splines alone are then read back as a formula: the correction
-0.5 x^3.

    python examples/physics_prior.py [--plot prior.png]
"""

from __future__ import annotations

import argparse

import sympy
import torch

import kanpiler
from kanpiler.physics import Box, Stage, solve

F64 = torch.float64
PRIOR = "-2*x - 0.3*v"


def truth(z: torch.Tensor) -> torch.Tensor:
    x, v = z[:, :1], z[:, 1:]
    return -2 * x - 0.3 * v - 0.5 * x**3


def with_correction(model) -> None:
    """Freeze the compiled symbolic edges and switch on a zero spline beside each."""
    for num, sym in zip(model.layers, model.symbolic):
        sym.affine.requires_grad_(False)
        with torch.no_grad():
            num.mask.copy_(sym.mask)
            num.coef.zero_()
            num.scale_base.zero_()


def correction_only(model):
    """A copy of the model without its symbolic (prior) part."""
    import copy

    corr = copy.deepcopy(model)
    for sym in corr.symbolic:
        sym.mask.zero_()
    return corr


def learn(steps: int = 20, n: int = 400):
    gen = torch.Generator().manual_seed(0)
    model = kanpiler.compile(PRIOR, dtype=F64, grid=10)
    names = tuple(model.variables)
    z = torch.rand(n, 2, generator=gen, dtype=F64) * 2 - 1
    cols = [names.index("x"), names.index("v")]
    points = torch.empty_like(z)
    points[:, cols] = z  # model's input order
    force = truth(z)
    with_correction(model)
    box = Box([-1, -1], [1, 1], names=names)
    res = solve(model, lambda d: d.u - force, box, points=points, stages=[Stage("lbfgs", steps)])
    corr = correction_only(res.model)
    kanpiler.auto_symbolic(
        corr, ["x", "x^2", "x^3", "sin", "exp"], x=points, flat_tol=1e-3, progress=False
    )
    (correction,) = kanpiler.formula(corr)
    return res, sympy.nsimplify(correction, tolerance=1e-3, rational=True), points


def plot(model, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.linspace(-1, 1, 101, dtype=F64).reshape(-1, 1)
    z = torch.cat([x, torch.zeros_like(x)], 1)  # v = 0
    cols = [model.variables.index("x"), model.variables.index("v")]
    pts = torch.empty_like(z)
    pts[:, cols] = z
    with torch.no_grad():
        learned = model(pts)
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot(x, -2 * x, "k:", label="prior -2x")
    ax.plot(x, truth(z), "k--", label="truth -2x - 0.5x^3")
    ax.plot(x, learned, label="fine-tuned KAN")
    ax.set_xlabel("x (v = 0)")
    ax.set_ylabel("F")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    result, correction, _ = learn()
    print(f"prior {PRIOR}; fit loss {result.history[-1]['loss']:.2e}; correction = {correction}")
    if args.plot:
        plot(result.model, args.plot)
