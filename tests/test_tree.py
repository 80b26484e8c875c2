"""The tree converter against functions whose structure is known exactly, and a trained net."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from kanpiler.convert import skeleton, tree
from kanpiler.errors import ShapeError
from kanpiler.views import to_dot

NAMES = ["x", "y", "z"]


def samples(n_vars: int, n: int = 200, lo: float = 0.3, hi: float = 1.7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return lo + (hi - lo) * torch.rand(n, n_vars, generator=gen, dtype=torch.float64)


def shape(g: nx.DiGraph, node: int = 0) -> object:
    """The tree as nested tuples: ('add', (...children)), or a variable name."""
    attrs = g.nodes[node]
    if attrs["kind"] == "var":
        return attrs["label"]
    kids = sorted(g.successors(node), key=lambda c: g.edges[node, c]["order"])
    return (attrs["kind"], tuple(shape(g, c) for c in kids))


CASES = [
    ("x*y + z**2", lambda v: v[:, 0] * v[:, 1] + v[:, 2] ** 2,
     ("add", (("mul", ("x", "y")), "z")), "f = x * y + z"),
    ("sin(x + y)*z", lambda v: torch.sin(v[:, 0] + v[:, 1]) * v[:, 2],
     ("mul", (("sum_inside", ("x", "y")), "z")), "f = F(x + y) * z"),
    ("exp(x)*cos(y) + z", lambda v: torch.exp(v[:, 0]) * torch.cos(v[:, 1]) + v[:, 2],
     ("add", (("mul", ("x", "y")), "z")), "f = x * y + z"),
    ("atan(x*y + z)", lambda v: torch.atan(v[:, 0] * v[:, 1] + v[:, 2]),
     ("compose", (("sum_inside", ("x", "y")), "z")), "f = F(G(x + y), z)"),
    ("(x + y)*exp(z)", lambda v: (v[:, 0] + v[:, 1]) * torch.exp(v[:, 2]),
     ("mul", (("add", ("x", "y")), "z")), "f = (x + y) * z"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "f", "expected", "skel"), CASES, ids=[c[0] for c in CASES])
def test_known_structures(text: str, f, expected: object, skel: str) -> None:
    g = tree(f, samples(3), NAMES)
    assert shape(g) == expected
    assert skeleton(g) == skel == g.graph["skeleton"]
    assert g.graph["kind"] == "tree" and nx.is_tree(g)


def test_symmetric_group_sqrt_of_sum_of_squares() -> None:
    g = tree(lambda v: torch.sqrt(v[:, 0] ** 2 + v[:, 1] ** 2), samples(2), ["x", "y"])
    assert shape(g) == ("sum_inside", ("x", "y"))
    assert skeleton(g) == "f = F(x + y)"
    passed = {s["test"]: s["passed"] for s in g.graph["scores"]}
    assert passed == {"add": False, "mul": False, "sum_inside": True}


def test_opaque_group() -> None:
    # x*y + sin(x - y) is a function of (x, y) with no further structure of these kinds
    g = tree(lambda v: v[:, 0] * v[:, 1] + torch.sin(3 * v[:, 0] - v[:, 1]), samples(2), ["x", "y"])
    assert shape(g) == ("group", ("x", "y"))
    assert skeleton(g) == "f = F(x, y)"


def test_scores_are_reported_with_threshold() -> None:
    g = tree(lambda v: v[:, 0] * v[:, 1] + v[:, 2] ** 2, samples(3), NAMES, threshold=0.05)
    assert g.graph["threshold"] == 0.05
    for s in g.graph["scores"]:
        assert 0.0 <= s["score"] <= 1.0 and s["passed"] == (s["score"] < 0.05)
    add = {tuple(s["on"]): s["score"] for s in g.graph["scores"] if s["test"] == "add"}
    assert add[("x", "y")] > 0.9 and add[("x", "z")] < 1e-9 and add[("y", "z")] < 1e-9


def test_deterministic_and_accepts_numpy_and_module_variables() -> None:
    X = samples(3, n=600).numpy()
    f = lambda v: torch.sin(v[:, 0] + v[:, 1]) * v[:, 2]  # noqa: E731
    a, b = tree(f, X, NAMES), tree(f, X, NAMES)
    assert a.graph["scores"] == b.graph["scores"] and a.graph["samples"] == 256
    assert isinstance(X, np.ndarray)


def test_bad_inputs() -> None:
    with pytest.raises(ShapeError, match="one value per sample"):
        tree(lambda v: v, samples(2), ["x", "y"])
    with pytest.raises(ShapeError, match="2 variable names for 3"):
        tree(lambda v: v.sum(1), samples(3), ["x", "y"])
    with pytest.raises(ShapeError, match="non-empty"):
        tree(lambda v: v.sum(1), torch.zeros(0, 2), ["x", "y"])


def test_renders_as_boxes() -> None:
    g = tree(lambda v: v[:, 0] * v[:, 1] + v[:, 2] ** 2, samples(3), NAMES)
    src = to_dot(g).source
    assert "Add" in src and "Mul" in src and "shape=box" in src


def _trained_mlp(f, X: torch.Tensor, steps: int = 300) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
        torch.nn.Linear(32, 1),
    ).to(torch.float64)  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    y = f(X)[:, None]
    opt = torch.optim.LBFGS(net.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((net(X) - y) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return net


def test_trained_network() -> None:
    f = lambda v: torch.sin(v[:, 0] + v[:, 1]) * v[:, 2]  # noqa: E731
    X = samples(3, n=400)
    net = _trained_mlp(f, X)
    with torch.no_grad():
        assert float(((net(X)[:, 0] - f(X)) ** 2).mean().sqrt()) < 1e-2
    g = tree(net, X, NAMES)
    assert shape(g) == ("mul", (("sum_inside", ("x", "y")), "z")), g.graph["scores"]


@pytest.mark.slow
def test_trained_kan() -> None:
    from kanpiler.runtime import MultKAN

    gen = torch.Generator().manual_seed(0)
    X = torch.rand(500, 3, generator=gen, dtype=torch.float64) * 2 - 1
    Y = (X[:, 0] * X[:, 1] + X[:, 2] ** 2)[:, None]
    model = MultKAN([3, [2, 1], 1], grid=3, seed=0, dtype=torch.float64, variables=NAMES)
    history = model.fit(X, Y, steps=60, progress=False)
    assert history["train_rmse"][-1] < 1e-2
    g = tree(model, X)  # variable names come from the model
    assert shape(g) == ("add", (("mul", ("x", "y")), "z")), g.graph["scores"]
    assert skeleton(g) == "f = x * y + z"
