"""Discover a formula from data: train a KAN, read its structure, fit its edges, get SymPy.

Data of exp(sin(pi*x) + y**2) on [-1, 1]^2; a [2, 1, 1] KAN is trained on it, the tree
converter reads its separability skeleton, and the pipeline (prune -> auto_symbolic ->
fine-tune the constants -> snap) returns the formula.

    python examples/discover.py
"""

from __future__ import annotations

import torch

import kanpiler
from kanpiler.convert import skeleton, symbolic_pipeline, tree

F64 = torch.float64


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 2, generator=gen, dtype=F64) * 2 - 1
    y = torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)

    model = kanpiler.MultKAN([2, 1, 1], grid=5, seed=0, dtype=F64, variables=["x", "y"])
    history = model.fit(x, y, steps=50, progress=False)
    print(f"trained: RMSE {history['train_rmse'][-1]:.2e}")
    print(f"structure: {skeleton(tree(model, x))}")

    result = symbolic_pipeline(model, x, y)
    print(result.report)  # the chosen function of every edge, with r² and runner-ups
    (formula,) = result.expression
    print(f"formula: {formula}")


if __name__ == "__main__":
    main()
