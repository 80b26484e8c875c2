"""The layout: verifier rules, JSON round trip, printing, and the float64 reference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import kanpiler
from kanpiler import VerifyError
from kanpiler.layout import Edge, Layout, Node, verify
from kanpiler.layout import evaluate_layout as evaluate


@pytest.fixture
def layout() -> Layout:
    return kanpiler.lower("sin(x)*exp(y) + x**2")


def with_edges(lay: Layout, li: int, edges) -> Layout:
    rows = list(lay.edges)
    rows[li] = tuple(edges)
    return replace(lay, edges=tuple(rows))


def test_a_compiled_layout_verifies(layout):
    assert verify(layout) is layout
    assert layout.width == [[2, 0], [1, 1], [1, 0]]
    assert layout.mult_arity == [[], [2], []]


def broken(lay: Layout):
    """(layout with one invariant broken, rule it breaks) pairs."""
    e0 = lay.edges[0][0]
    yield with_edges(lay, 0, lay.edges[0] + (replace(e0, j=99),)), "edge endpoints in range"
    yield with_edges(lay, 0, lay.edges[0] + (replace(e0, fn="cos"),)), "one edge per"
    yield with_edges(lay, 0, (replace(e0, fn="sinn"),) + lay.edges[0][1:]), "resolve in the library"
    yield with_edges(lay, 0, (replace(e0, a=float("nan")),) + lay.edges[0][1:]), "finite"
    yield with_edges(lay, 1, lay.edges[1][1:]), "feeds the next layer"
    nodes = list(lay.nodes)
    nodes[1] = (Node("mult", 1),) + nodes[1][1:]
    yield replace(lay, nodes=tuple(nodes)), "arity >= 2"
    nodes = list(lay.nodes)
    nodes[1] = tuple(reversed(nodes[1]))
    yield replace(lay, nodes=tuple(nodes)), "sum nodes come before mult nodes"
    yield replace(lay, variables=("x",)), "one input node per variable"
    yield replace(lay, outputs=("a", "b")), "exactly the outputs"
    yield replace(lay, subnode_bias=lay.subnode_bias[:1]), "one bias row per KAN layer"


@pytest.mark.parametrize("case", range(10))
def test_verifier_names_stage_item_and_rule(layout, case):
    bad, rule = list(broken(layout))[case]
    with pytest.raises(VerifyError) as info:
        verify(bad, stage="my-pass")
    assert info.value.stage == "my-pass"
    assert rule in info.value.rule
    assert "[my-pass]" in str(info.value)


def test_json_round_trip(layout):
    again = Layout.from_json(layout.to_json())
    assert again == layout
    with pytest.raises(kanpiler.KanpilerError):
        Layout.from_dict({"nodes": []})


def test_printing_shows_layers_edges_and_parameters():
    text = str(kanpiler.lower("2*sin(3*x + 1) - 4"))
    assert text.splitlines() == [
        "layout: 1 KAN layer, 1 edge, inputs [x], 1 output",
        "nodes 0: [in x]",
        "edges 0: 0->0 sin a=3 b=1 c=2 d=-4",
        "nodes 1: [sum]",
    ]


def test_counts(layout):
    assert layout.depth == 2
    assert layout.n_edges == sum(len(es) for es in layout.edges)
    assert layout.n_params == 4 * layout.n_edges + (3 + 1) + 2  # 4 subnode biases, 1 mult node


def test_evaluate_is_a_float64_reference():
    # a hand-written layout: (x + 1) * 2*y, then a sum node reading it with exp
    lay = Layout(
        variables=("x", "y"),
        nodes=(
            (Node("input", label="x"), Node("input", label="y")),
            (Node("mult", 2),),
            (Node("sum"),),
        ),
        edges=(
            (Edge(0, 0, "x", d=1.0), Edge(1, 1, "x", c=2.0)),
            (Edge(0, 0, "exp", a=0.5),),
        ),
        subnode_bias=((0.0, 0.0), (3.0,)),
        outputs=("exp((x + 1)*y) + 3",),
    )
    verify(lay)
    X = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    want = np.exp((X[:, 0] + 1) * X[:, 1]) + 3
    np.testing.assert_allclose(evaluate(lay, X)[:, 0], want, rtol=1e-15)
    with pytest.raises(kanpiler.KanpilerError, match=r"\(N, 2\)"):
        evaluate(lay, X[:, :1])
    model = kanpiler.compiler.build_model(lay)
    import torch

    got = model(torch.tensor(X, dtype=torch.float32)).detach().double().numpy()[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_docstring_examples_run():
    import doctest
    import importlib

    for name in ("layout", "lowering.pipeline", "lowering.expressions", "compiler", "views"):
        module = importlib.import_module(f"kanpiler.{name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name
