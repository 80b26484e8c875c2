"""The MultKAN structure API against plain computations from widths, masks and parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kanpiler.errors import ShapeError
from kanpiler.runtime import Edge, MultKAN, Record

F64 = torch.float64


def _model() -> MultKAN:
    m = MultKAN([3, [1, 2], [1, 1], 1], mult_arity=[[], [2, 3], [2], []], seed=4, dtype=F64)
    m.set_symbolic(0, 2, 1, "sin", 2.0, 0.5, -1.5, 0.25)
    m.set_symbolic(1, 0, 0, "x^2")
    with torch.no_grad():
        m.layers[0].mask[1, 2] = 1.0
        m.symbolic[0].set_edges([(1, 2, "exp", 0.5, 0.0, 1.0, 0.0)])  # both branches on
        m.layers[1].mask[2, 1] = 0.0  # off
        for p in (*m.node_scale, *m.node_bias, *m.subnode_scale, *m.subnode_bias):
            p.add_(torch.rand(p.shape, dtype=F64, generator=torch.Generator().manual_seed(1)))
    return m


def test_subnode_ownership_follows_the_arities() -> None:
    m = _model()
    assert m.subnode_owner(1) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    assert [list(m.node_subnodes(1, n)) for n in range(3)] == [[0], [1, 2], [3, 4, 5]]
    assert m.subnode_owner(2) == [(0, 0), (1, 0), (1, 1)]
    assert [m.node_kind(1, j) for j in range(3)] == ["sum", "mult", "mult"]
    assert m.node_kind(0, 0) == "input"
    for li in range(1, m.depth + 1):
        assert len(m.subnode_owner(li)) == m.n_subnodes(li)


def test_edges_match_the_masks_and_parameters() -> None:
    m = _model()
    for li in range(m.depth):
        num = m.layers[li].mask.numpy() != 0
        sym = m.symbolic[li].mask.numpy() != 0
        every = m.edges(li, active=False)
        assert len(every) == num.size and all(isinstance(e, Edge) for e in every)
        assert [(e.i, e.j) for e in every] == [(i, j) for i in range(num.shape[0])
                                               for j in range(num.shape[1])]  # fmt: skip
        for e in every:
            n, s = num[e.i, e.j], sym[e.i, e.j]
            want = {(1, 0): "numeric", (0, 1): "symbolic", (1, 1): "both", (0, 0): "off"}
            assert e.kind == want[(int(n), int(s))]
            assert (e.fn is None) == (not s)
            if s:
                assert e.fn == m.symbolic[li].function(e.i, e.j)
                assert [e.a, e.b, e.c, e.d] == m.symbolic[li].affine[e.i, e.j].tolist()
        assert m.edges(li) == [e for e in every if e.kind != "off"]
    kinds = {(e.i, e.j): e.kind for e in m.edges(0)}
    assert kinds[(2, 1)] == "symbolic" and kinds[(1, 2)] == "both"
    assert (2, 1) not in {(e.i, e.j) for e in m.edges(1)}


def test_layer_forward_is_the_forward_pass_by_hand() -> None:
    m = _model()
    x = torch.rand(40, 3, dtype=F64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    h = x
    with torch.no_grad():
        for li in range(m.depth):
            edges = (m.layers[li].edge_values(h) + m.symbolic[li].edge_values(h)).numpy()
            sub = edges.sum(axis=1) * m.subnode_scale[li].numpy() + m.subnode_bias[li].numpy()
            nodes = np.stack(
                [np.prod(sub[:, list(m.node_subnodes(li + 1, n))], axis=1)
                 for n in range(m.n_nodes(li + 1))], axis=1,
            )  # fmt: skip
            nodes = nodes * m.node_scale[li].numpy() + m.node_bias[li].numpy()
            got = m.layer_forward(li, h)
            np.testing.assert_allclose(got.subnodes.numpy(), sub, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(got.nodes.numpy(), nodes, rtol=1e-12, atol=1e-12)
            h = got.nodes
        np.testing.assert_allclose(m(x).numpy(), h.numpy(), rtol=1e-13, atol=1e-13)
    with pytest.raises(ShapeError, match="layer 1 expects"):
        m.layer_forward(1, x[:, :2])
    with pytest.raises(ShapeError, match="out of range"):
        m.edges(3)


def test_record_from_inputs_or_from_the_cache() -> None:
    m = _model()
    x = torch.rand(25, 3, dtype=F64) * 2 - 1
    with pytest.raises(ShapeError, match="no activations cached"):
        m.record()
    rec = m.record(x)
    assert isinstance(rec, Record) and len(rec.acts) == m.depth + 1
    assert torch.equal(rec.output, m(x))
    for li in range(m.depth):
        assert torch.allclose(
            rec.edge_acts[li].sum(1) * m.subnode_scale[li] + m.subnode_bias[li],
            rec.subnode_acts[li],
        )
        assert torch.equal(rec.acts[li + 1], m.layer_forward(li, rec.acts[li]).nodes)
    m.cache_acts = True
    m(x[:5])
    cached = m.record()
    assert cached is m.cache and cached.acts[0].shape[0] == 5 and m.acts is cached.acts


def test_attributes_are_declared_on_every_model() -> None:
    m = MultKAN([1, 1])
    assert (m.layout, m.source_formulas, m.compile_trace, m.symbolic_report, m.cache) == (
        None, None, None, None, None,
    )  # fmt: skip
    assert not hasattr(m, "formula") and not hasattr(m, "formulas")
    assert math.isclose(float(m.layers[0].knots[0, 3]), -1.0)  # k = 3 knots before the grid
