"""Fine-tuning compiled formulas, both ways of KAN 2.0: trainable constants, and splines
initialised to match the symbolic edges so the network learns what the formula misses."""

from __future__ import annotations

import torch

import kanpiler

F64 = torch.float64


def data(n: int, n_vars: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_vars, generator=gen, dtype=F64) * 4 - 2


def rmse(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x) - y).pow(2).mean().sqrt())


def test_compiled_constants_are_trainable():
    model = kanpiler.compile("2.0*sin(3.0*x) + 1.0", dtype=F64)
    x = data(256, 1)
    y = 2.5 * torch.sin(2.8 * x) + 0.7
    model.fit(x, y, steps=30, update_grid=False, progress=False)
    # read the constants back from the one symbolic edge c*sin(a*x + b) + d
    (edge,) = model.layout.edges[0]
    a, b, c, d = model.symbolic[0].affine[edge.i, edge.j].tolist()
    assert abs(a - 2.8) < 1e-4 and abs(b) < 1e-4
    assert abs(c - 2.5) < 1e-4 and abs(d - 0.7) < 1e-4


def test_constants_of_products_and_node_affines_are_trainable():
    model = kanpiler.compile("1.5*x*y + 2", dtype=F64)
    assert any(p.requires_grad for p in model.node_bias.parameters())
    x = data(128, 2, seed=1)
    y = 1.2 * x[:, :1] * x[:, 1:] + 2.5
    model.fit(x, y, steps=30, update_grid=False, progress=False)
    assert rmse(model, x, y) < 1e-8


def test_splines_initialised_from_symbolic_edges_learn_a_correction():
    x = data(512, 2, seed=2) / 2
    formula = torch.sin(x[:, :1]) + torch.exp(x[:, 1:])
    y = formula + 0.3 * x[:, :1] ** 2  # what the formula does not explain

    model = kanpiler.compile("sin(x) + exp(y)", dtype=F64, grid=10)
    model.symbolic_to_spline(x=x)
    # the splines start as the formula on the data's range
    assert rmse(model, x, formula) < 1e-4
    before = rmse(model, x, y)
    model.fit(x, y, steps=20, update_grid=False, progress=False)
    after = rmse(model, x, y)

    symbolic = kanpiler.compile("sin(x) + exp(y)", dtype=F64)
    symbolic.fit(x, y, steps=20, update_grid=False, progress=False)
    assert before > 0.1
    assert after < 1e-3 < rmse(symbolic, x, y)  # constants alone cannot absorb x**2
