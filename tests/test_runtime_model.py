"""MultKAN: layout, symbolic edges, mult nodes, activations, against float64 numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kanpiler.errors import KanpilerError, ShapeError
from kanpiler.runtime import MultKAN

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

NP = {
    "sin": np.sin,
    "exp": np.exp,
    "x^2": np.square,
    "x": lambda v: v,
    "tanh": np.tanh,
    "x^3": lambda v: v**3,
    "cos": np.cos,
}


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return name


def test_width_and_arity_normalisation() -> None:
    m = MultKAN([3, [2, 2], [1, 1], 2], mult_arity=[0, [2, 3], 4, 0], numeric=False)
    assert m.width == [[3, 0], [2, 2], [1, 1], [2, 0]]
    assert m.mult_arity == [[], [2, 3], [4], []]
    assert [m.n_nodes(li) for li in range(4)] == [3, 4, 2, 2]
    assert [m.n_subnodes(li) for li in range(1, 4)] == [7, 5, 2]
    assert m.layers[0].coef.shape[:2] == (3, 7)
    assert m.symbolic[1].affine.shape == (4, 5, 4)
    assert [p.shape[0] for p in m.subnode_scale] == [7, 5, 2]
    assert [p.shape[0] for p in m.node_bias] == [4, 2, 2]
    assert m.variables == ["x1", "x2", "x3"]


@pytest.mark.parametrize(
    "width, arity, match",
    [
        ([3], 2, "at least"),
        ([[2, 1], 1], 2, "input layer"),
        ([2, [1, 2], 1], [0, [2], 0], "arities"),
        ([2, 0, 1], 2, "width"),
        ([2, [1, 1], 1], [0, 2], "one entry per node layer"),
    ],
)
def test_bad_layouts_are_refused(width, arity, match) -> None:
    with pytest.raises(ShapeError, match=match):
        MultKAN(width, mult_arity=arity)


def _random_symbolic(seed: int) -> tuple[MultKAN, list]:
    """[3, [2, 2], 1] with arities [2, 3]: every edge symbolic with random a, b, c, d."""
    rng = np.random.default_rng(seed)
    m = MultKAN([3, [2, 2], 1], mult_arity=[0, [2, 3], 0], dtype=torch.float64, numeric=False)
    names = ["sin", "exp", "x^2", "x", "tanh", "x^3", "cos"]
    spec = []
    for li in range(m.depth):
        edges = []
        for i in range(m.n_nodes(li)):
            for j in range(m.n_subnodes(li + 1)):
                a, b, c, d = rng.uniform(-1, 1, 4)
                edges.append((i, j, names[rng.integers(len(names))], a, b, c, d))
        m.symbolic[li].set_edges(edges)
        spec.append(edges)
    with torch.no_grad():
        for li in range(m.depth):
            for p in (m.subnode_scale, m.subnode_bias, m.node_scale, m.node_bias):
                p[li].copy_(torch.from_numpy(rng.uniform(0.5, 1.5, p[li].shape[0])))
    return m, spec


def _numpy_forward(m: MultKAN, spec: list, x: np.ndarray) -> np.ndarray:
    """The contract written plainly in float64 numpy, node by node."""
    h = x
    for li, edges in enumerate(spec):
        sub = np.zeros((x.shape[0], m.n_subnodes(li + 1)))
        for i, j, fn, a, b, c, d in edges:
            sub[:, j] += c * NP[fn](a * h[:, i] + b) + d
        sub = sub * m.subnode_scale[li].detach().numpy() + m.subnode_bias[li].detach().numpy()
        n_sum = m.width[li + 1][0]
        nodes = [sub[:, i] for i in range(n_sum)]
        pos = n_sum
        for arity in m.mult_arity[li + 1]:
            nodes.append(np.prod(sub[:, pos : pos + arity], axis=1))
            pos += arity
        h = (
            np.stack(nodes, 1) * m.node_scale[li].detach().numpy()
            + m.node_bias[li].detach().numpy()
        )
    return h


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symbolic_edges_and_mixed_arity_mult_nodes_exact(seed: int) -> None:
    m, spec = _random_symbolic(seed)
    x = np.random.default_rng(seed + 10).uniform(-1, 1, (64, 3))
    got = m(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, _numpy_forward(m, spec, x), rtol=1e-12, atol=1e-12)


def test_set_symbolic_single_edges_and_numeric_masks() -> None:
    m = MultKAN([2, 1], dtype=torch.float64, seed=0)
    x = torch.rand(20, 2, dtype=torch.float64)
    m.set_symbolic(0, 0, 0, "sin", 2.0, 0.5, 3.0, -1.0)
    assert m.layers[0].mask[0, 0] == 0 and m.symbolic[0].mask[0, 0] == 1
    spline_1 = m.layers[0].edge_values(x)[:, 1, 0]
    want = 3.0 * torch.sin(2.0 * x[:, 0] + 0.5) - 1.0 + spline_1
    torch.testing.assert_close(m(x)[:, 0], want, atol=1e-12, rtol=0)
    m.set_symbolic(0, 1, 0, "0")
    torch.testing.assert_close(m(x)[:, 0], 3.0 * torch.sin(2.0 * x[:, 0] + 0.5) - 1.0)
    m.unfix_symbolic(0, 0, 0)
    assert m.layers[0].mask[0, 0] == 1 and m.symbolic[0].mask[0, 0] == 0
    torch.testing.assert_close(m(x)[:, 0], m.layers[0].edge_values(x)[:, 0, 0])


def test_singular_functions_stay_finite() -> None:
    m = MultKAN([1, 3], dtype=torch.float32, numeric=False)
    m.set_edges(
        0, [(0, 0, "x^-1", 1, 0, 1, 0), (0, 1, "log", 1, 0, 1, 0), (0, 2, "sqrt", 1, 0, 1, 0)]
    )
    x = torch.tensor([[0.0], [-1.0], [1e-30]], requires_grad=True)
    y = m(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


def test_fix_symbolic_recovers_affine_parameters() -> None:
    m = MultKAN([1, 1], grid=10, dtype=torch.float64, numeric=False)
    m.set_symbolic(0, 0, 0, "sin", 2.0, 1.0, 1.5, 0.25)
    x = torch.linspace(-1, 1, 200, dtype=torch.float64).reshape(-1, 1)
    target = m(x).detach()
    m.symbolic_to_spline(x)  # now a spline that follows the sine
    assert m.layers[0].mask[0, 0] == 1 and m.symbolic[0].mask[0, 0] == 0
    assert (m(x) - target).abs().max() < 1e-4
    r2 = m.fix_symbolic(0, 0, 0, "sin", x=x)
    assert r2 > 0.9999
    a, b, c, d = m.symbolic[0].affine[0, 0].tolist()
    # c*sin(a*x+b) = (-c)*sin(-a*x-b): the same curve up to the sign of (a, b, c)
    sign = 1.0 if a > 0 else -1.0
    assert (sign * a, sign * b, sign * c, d) == pytest.approx((2.0, 1.0, 1.5, 0.25), abs=2e-3)
    assert (m(x) - target).abs().max() < 1e-3


def test_cache_acts_opt_in_and_shapes() -> None:
    m = MultKAN([2, [3, 1], 2], seed=0)
    x = torch.rand(10, 2)
    m(x)
    assert m.acts is None
    m.cache_acts = True
    y = m(x)
    assert [a.shape for a in m.acts] == [(10, 2), (10, 4), (10, 2)]
    assert [e.shape for e in m.edge_acts] == [(10, 2, 5), (10, 4, 2)]
    # edge activations add up to the subnodes (default affine 1, 0)
    torch.testing.assert_close(m.edge_acts[1].sum(1), y, atol=1e-5, rtol=1e-5)


def test_input_checks() -> None:
    m = MultKAN([2, 1], variables=["x", "y"])
    with pytest.raises(ShapeError, match=r"\['x', 'y'\]"):
        m(torch.zeros(3, 3))
    with pytest.raises(ShapeError, match="float64"):
        m(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ShapeError, match="outside"):
        m.set_symbolic(0, 5, 0, "sin")
    with pytest.raises(KanpilerError, match="unknown library function"):
        m.set_symbolic(0, 0, 0, "nosuchfn")
    with pytest.raises(ShapeError, match="variable names"):
        MultKAN([2, 1], variables=["x"])


def test_deterministic_init_without_global_rng() -> None:
    state = torch.random.get_rng_state()
    a, b = MultKAN([2, 3, 1], seed=7), MultKAN([2, 3, 1], seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(MultKAN([2, 3, 1], seed=8).layers[0].coef, a.layers[0].coef)


@pytest.mark.parametrize("device", DEVICES)
def test_symbolic_model_on_device(device: str) -> None:
    dev = _device(device)
    m, spec = _random_symbolic(3)
    m = m.to(dev)
    x = np.random.default_rng(0).uniform(-1, 1, (32, 3))
    got = m(torch.from_numpy(x).to(dev)).detach().cpu().numpy()
    np.testing.assert_allclose(got, _numpy_forward(m.cpu(), spec, x), rtol=1e-12, atol=1e-12)


def test_plot_returns_a_figure() -> None:
    m = MultKAN([2, [2, 1], 1], seed=0)
    fig = m.plot(candidates={(0, 0, 0): [("sin", 0.99)]}, title="demo")
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 4 + 3 * 1
    assert fig.axes[0].get_title().startswith("sin")
    line = fig.axes[0].get_lines()[0]  # the edge (0, 0, 0) curve, on its grid range
    xs = torch.tensor(line.get_xdata(), dtype=torch.float32).reshape(-1, 1).repeat(1, 2)
    want = m.layers[0].edge_values(xs)[:, 0, 0].detach().numpy()
    np.testing.assert_allclose(line.get_ydata(), want, rtol=1e-5, atol=1e-6)
