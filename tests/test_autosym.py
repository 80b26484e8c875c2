"""auto_symbolic and its batched curve fitting, against curves of known functions."""

from __future__ import annotations

import math
import time

import pytest
import sympy
import torch

from kanpiler import library
from kanpiler.convert import auto_symbolic, formula, to_graph
from kanpiler.convert.canonical import canonical_affine
from kanpiler.errors import KanpilerError
from kanpiler.numerics import fit_curves
from kanpiler.runtime import MultKAN

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


TRUTHS = [
    ("sin", 2.0, 0.5, 1.5, -0.2),
    ("x^2", 1.0, 0.3, 2.0, 1.0),
    ("exp", 0.7, 0.0, 1.0, 0.0),
    ("tanh", 3.0, 1.0, 1.0, 0.0),
    ("x", 1.0, 0.0, 3.0, 1.0),
    ("gaussian", 1.5, 0.0, -2.0, 0.5),
]


def test_fit_curves_recovers_function_and_curve() -> None:
    fns = library.fit_library()
    x = torch.rand(len(TRUTHS), 400, generator=_gen(), dtype=F64) * 4 - 2
    y = torch.stack([c * library.get(f).torch_fn(a * x[e] + b) + d
                     for e, (f, a, b, c, d) in enumerate(TRUTHS)])  # fmt: skip
    fits = fit_curves(x, y, fns)
    names = [f.name for f in fns]
    for e, (f, *_) in enumerate(TRUTHS):
        k = names.index(f)
        assert fits.r2[e, k] > 1 - 1e-10, f
        a, b, c, d = fits.params[e, k].tolist()
        pred = c * library.get(f).torch_fn(a * x[e] + b) + d
        assert torch.allclose(pred, y[e], atol=1e-6), f


def test_domain_violations_are_rejected() -> None:
    # log(a*x + b) must stay real on every sample; a curve crossing 0 cannot be log
    x = torch.linspace(-1, 1, 200, dtype=F64)[None]
    fits = fit_curves(x, x**3, [library.get("log"), library.get("x^0.5"), library.get("x^3")])
    r2 = fits.r2[0]
    assert r2[2] > 1 - 1e-10
    for k, fn in enumerate(["log", "x^0.5"]):
        if r2[k] > -math.inf:
            a, b = fits.params[0, k, :2].tolist()
            assert bool(library.get(fn).in_domain(a * x + b).all())


@pytest.mark.parametrize(
    ("fn", "params", "expected"),
    [
        ("x", (2.0, 1.0, 3.0, 0.5), (1.0, 0.0, 6.0, 3.5)),
        ("x^2", (-2.0, 1.0, 1.0, 0.0), (1.0, -0.5, 4.0, 0.0)),
        ("exp", (1.0, math.log(3.0), 2.0, 0.0), (1.0, 0.0, 6.0, 0.0)),
        ("sin", (-1.0, 0.0, 2.0, 0.0), (1.0, 0.0, -2.0, 0.0)),
        ("cos", (-2.0, 0.0, 1.0, 0.0), (2.0, 0.0, 1.0, 0.0)),
        ("log", (2.0, 2.0, 1.0, 0.0), (1.0, 1.0, 1.0, math.log(2.0))),
    ],
)
def test_canonical_affine_is_the_same_curve(fn: str, params: tuple, expected: tuple) -> None:
    got = canonical_affine(fn, *params)
    assert got == pytest.approx(expected)
    x = torch.linspace(0.1, 0.9, 17, dtype=F64)
    f = library.get(fn).torch_fn
    a, b, c, d = params
    A, B, C, D = got
    assert torch.allclose(c * f(a * x + b) + d, C * f(A * x + B) + D)


def spline_model(edges: dict[tuple[int, int], tuple], width: list, grid: int = 30) -> MultKAN:
    """A model whose spline edges follow known curves (fitted from symbolic edges)."""
    m = MultKAN(width, grid=grid, dtype=F64, numeric=False)
    for (i, j), spec in edges.items():
        m.set_symbolic(0, i, j, *spec)
    corners = torch.tensor([[-1.0] * width[0], [1.0] * width[0]], dtype=F64)
    m.symbolic_to_spline(x=corners)
    return m


def test_auto_symbolic_recovers_edges_and_formula() -> None:
    edges = {(0, 0): ("sin", 2.0, 0.0, 1.0, 0.0), (1, 0): ("x^2", 1.0, 0.0, 1.0, 0.0),
             (0, 1): ("exp", 1.0, 0.0, 1.0, 0.0), (1, 1): ("x", 1.0, 0.0, 3.0, 0.0)}  # fmt: skip
    m = spline_model(edges, [2, 2])
    x = torch.rand(500, 2, generator=_gen(), dtype=F64) * 2 - 1
    report = auto_symbolic(m, x=x, progress=False)
    got = {(e.i, e.j): e.fn for e in report.edges}
    assert got == {(0, 0): "sin", (1, 0): "x^2", (0, 1): "exp", (1, 1): "x"}
    assert all(e.status == "symbolic" and e.r2 > 0.9999 for e in report.edges)
    y1, y2 = formula(m, rtol=1e-3, atol=1e-6)
    x1, x2 = sympy.symbols("x1 x2")
    assert sympy.simplify(y1 - (sympy.sin(2 * x1) + x2**2)) == 0
    assert sympy.simplify(y2 - (sympy.exp(x1) + 3 * x2)) == 0


def test_flat_edges_become_constants_and_are_reported() -> None:
    m = spline_model(
        {(0, 0): ("sin", 1.0, 0.0, 1.0, 0.0), (1, 0): ("x", 0.0, 0.0, 0.0, 0.7)}, [2, 1]
    )
    report = auto_symbolic(m, progress=False)
    flat = [e for e in report.edges if e.status == "flat"]
    assert [(e.i, e.j) for e in flat] == [(1, 0)]
    assert flat[0].params[3] == pytest.approx(0.7, abs=1e-6)
    assert "flat" in str(report)


def test_bad_fits_keep_their_spline_and_say_so() -> None:
    # sign(x) is not in the default library: no candidate reaches r2 0.999999
    m = spline_model({(0, 0): ("sign", 1.0, 0.0, 1.0, 0.0)}, [1, 1], grid=5)
    report = auto_symbolic(m, library=["x", "x^2", "exp"], r2_threshold=0.999999, progress=False)
    (edge,) = report.edges
    assert edge.status == "spline" and edge.r2 < 0.999999
    assert to_graph(m).edges[("in", 0), (1, "sub", 0)]["kind"] == "spline"
    with pytest.raises(KanpilerError, match="auto_symbolic"):
        formula(m)


def test_user_functions_and_candidates_in_graph() -> None:
    m = spline_model({(0, 0): ("sinh", 1.0, 0.0, 1.0, 0.0)}, [1, 1])
    report = auto_symbolic(m, library=["x", "x^2"], extra=["sinh"], progress=False)
    assert report.edges[0].fn == "sinh" and report.n_functions == 3
    cands = to_graph(m).edges[("in", 0), (1, "sub", 0)]["candidates"]
    assert cands[0][0] == "sinh" and {c[0] for c in cands} <= {"x", "x^2", "sinh"}
    with pytest.raises(KanpilerError, match="one-argument"):
        auto_symbolic(m, library=["max"], progress=False)


def test_two_term_edge() -> None:
    m = spline_model({(0, 0): ("sin", 1.0, 0.0, 1.0, 0.0)}, [1, 1])
    with torch.no_grad():  # add x**2 to the same edge: sin(x) + x**2 is no single function
        m2 = spline_model({(0, 0): ("x^2", 1.0, 0.0, 1.0, 0.0)}, [1, 1])
        m.layers[0].coef += m2.layers[0].coef
        m.layers[0].scale_base += m2.layers[0].scale_base
    report = auto_symbolic(m, progress=False)
    (edge,) = report.edges
    assert edge.status == "sum" and {t[0] for t in edge.terms} == {"sin", "x^2"}
    (y,) = formula(m, rtol=1e-3, atol=1e-6)
    x1 = sympy.Symbol("x1")
    assert sympy.simplify(y - (sympy.sin(x1) + x1**2)) == 0


def test_speed_15_edges_1000_samples(capsys: pytest.CaptureFixture) -> None:
    m = MultKAN([2, 5, 1], seed=0, dtype=F64)
    x = torch.rand(1000, 2, generator=_gen(), dtype=F64) * 2 - 1
    start = time.perf_counter()
    report = auto_symbolic(m, x=x, progress=False)
    seconds = time.perf_counter() - start
    assert len(report.edges) == 15
    with capsys.disabled():
        print(
            f"\nauto_symbolic: 15 edges x {report.n_functions} functions, 1000 samples: {seconds:.2f} s"
        )


def test_plot_shows_fitted_candidates() -> None:
    import matplotlib

    matplotlib.use("Agg")
    m = spline_model({(0, 0): ("sin", 2.0, 0.0, 1.0, 0.0)}, [1, 1])
    report = auto_symbolic(m, progress=False)
    m.unfix_symbolic(0, 0, 0)  # show the spline curve with its fitted candidate as title
    fig = m.plot(candidates=report.candidates())
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("sin (r²=1.000") for t in titles), titles


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_devices_and_dtypes(device: str, dtype: torch.dtype) -> None:
    from kanpiler.convert import tree

    m = MultKAN([2, 1], grid=20, dtype=dtype, device=device, numeric=False, variables=["x", "y"])
    m.set_edges(0, [(0, 0, "sin", 2.0, 0.0, 1.0, 0.0), (1, 0, "x^2", 1.0, 0.0, 1.0, 0.0)])
    m.symbolic_to_spline(x=torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=dtype, device=device))
    x = torch.rand(300, 2, generator=_gen(), dtype=dtype).to(device) * 2 - 1
    report = auto_symbolic(m, x=x, progress=False)
    assert [e.fn for e in report.edges] == ["sin", "x^2"]
    (f,) = formula(m, rtol=1e-3, atol=1e-5)
    xs, ys = sympy.symbols("x y")
    assert sympy.simplify(f - (sympy.sin(2 * xs) + ys**2)) == 0
    assert tree(m, x).graph["skeleton"] == "f = x + y"


def test_a_function_used_through_its_taylor_expansion_loses_to_the_one_it_imitates() -> None:
    """``-200*cos(0.1*x) + 200`` equals ``x**2`` to r² ≈ 1 - 1e-7 on [-1, 1]; on a slightly
    imperfect curve it may even fit better, but its term is 200 times the edge's range."""
    from kanpiler import library
    from kanpiler.convert.autosym import _cancellation, _candidates, _Options
    from kanpiler.numerics import fit_curves

    x = torch.linspace(-1, 1, 401, dtype=torch.float64)
    cos = library.get("cos")
    assert _cancellation(cos, x, x**2, 0.1, 0.0, -200.0) == pytest.approx(math.log10(200 / 10))
    assert _cancellation(library.get("sin"), x, torch.sin(2 * x), 2.0, 0.0, 1.0) == 0.0
    wobble = x**2 - 5e-4 * x**4  # a trained spline of y**2 bends like this; cos fits it better
    fns = [library.get(n) for n in ("cos", "x^2", "x", "exp")]
    fits = fit_curves(x[None], wobble[None], fns)
    best = _candidates(x, wobble, fits, 0, fns, _Options(1.0, 0.9, 1e-6, 5, False))[0]
    assert best.fn == "x^2"
