"""Extraction and formulas: graphs of models, exact SymPy read-back, the shared corpus."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import sympy
import torch

import kanpiler
from kanpiler.convert import formula, to_graph
from kanpiler.convert.evaluate import evaluate_sympy
from kanpiler.convert.extract import bounded_simplify
from kanpiler.errors import KanpilerError, RenderError
from kanpiler.runtime import MultKAN
from kanpiler.views import edge_label, to_dot

w, x, y, z = sympy.symbols("w x y z")


def sym_model() -> MultKAN:
    """y = exp(x) * sin(pi*y) / 2 + 0.25, written edge by edge."""
    m = MultKAN([2, [0, 1], 1], numeric=False, variables=["x", "y"], dtype=torch.float64)
    m.set_symbolic(0, 0, 0, "exp")
    m.set_symbolic(0, 1, 1, "sin", a=float(np.pi))
    m.set_symbolic(1, 0, 0, "x", c=0.5, d=0.25)
    return m


def test_graph_nodes_edges_and_attributes() -> None:
    m = sym_model()
    g = to_graph(m)
    assert g.graph["kind"] == "kan" and g.graph["variables"] == ("x", "y")
    assert g.nodes[("in", 1)]["variable"] == "y"
    mult = g.nodes[(1, "mult", 0)]
    assert (
        mult["kind"] == "mult"
        and mult["arity"] == 2
        and (mult["scale"], mult["bias"]) == (1.0, 0.0)
    )
    assert {g.nodes[(1, "sub", s)]["owner"] for s in (0, 1)} == {(1, "mult", 0)}
    e = g.edges[("in", 1), (1, "sub", 1)]
    assert e["kind"] == "symbolic" and e["fn"] == "sin" and e["a"] == pytest.approx(np.pi)
    # off edges are omitted: x -> subnode 1 and y -> subnode 0 are not in the graph
    assert not g.has_edge(("in", 0), (1, "sub", 1)) and not g.has_edge(("in", 1), (1, "sub", 0))
    assert g.has_edge((2, "sum", 0), ("out", 0))


def test_graph_edge_kinds_spline_and_both() -> None:
    m = MultKAN([2, 1], dtype=torch.float64)
    with torch.no_grad():
        m.symbolic[0].set_edges([(1, 0, "sin", 1.0, 0.0, 1.0, 0.0)])  # numeric mask left on
    g = to_graph(m)
    assert g.edges[("in", 0), (1, "sub", 0)]["kind"] == "spline"
    assert g.edges[("in", 1), (1, "sub", 0)]["kind"] == "both"


def test_formula_exact_snapped_and_clean() -> None:
    (f,) = formula(sym_model())
    assert f == sympy.exp(x) * sympy.sin(sympy.pi * y) / 2 + sympy.Rational(1, 4)
    assert not f.atoms(sympy.Float)
    assert all(
        isinstance(s, sympy.Symbol) and not s.assumptions0.get("real") for s in f.free_symbols
    )


def test_formula_without_snapping_keeps_floats() -> None:
    (f,) = formula(sym_model(), snap=False, simplify=False)
    assert sympy.Float(np.pi) in f.atoms(sympy.Float)


def test_pykan_404_several_mult_nodes_of_different_arities() -> None:
    # 2*w*x*y + x*y*z: one layer with a 3-ary and a 3-ary mult node, another with 2 and 3
    m = MultKAN([4, [0, 2], 1], mult_arity=[0, [3, 3], 0], numeric=False,
                variables=["w", "x", "y", "z"], dtype=torch.float64)  # fmt: skip
    m.set_edges(0, [(0, 0, "x"), (1, 1, "x"), (2, 2, "x"), (1, 3, "x"), (2, 4, "x"), (3, 5, "x")])
    m.set_edges(1, [(0, 0, "x", 1.0, 0.0, 2.0, 0.0), (1, 0, "x")])
    (f,) = formula(m)
    assert sympy.expand(f - (2 * w * x * y + x * y * z)) == 0
    m2 = MultKAN([4, [1, 2], 1], mult_arity=[0, [2, 3], 0], numeric=False,
                 variables=["w", "x", "y", "z"], dtype=torch.float64)  # fmt: skip
    # subnodes: 0 = sum node; 1, 2 = 2-ary mult; 3, 4, 5 = 3-ary mult
    m2.set_edges(0, [(0, 0, "x"), (1, 1, "x"), (2, 2, "x"), (1, 3, "x"), (2, 4, "x"), (3, 5, "x")])
    m2.set_edges(1, [(0, 0, "x"), (1, 0, "x", 1.0, 0.0, 2.0, 0.0), (2, 0, "x")])
    (f2,) = formula(m2)
    assert sympy.expand(f2 - (w + 2 * x * y + x * y * z)) == 0


def test_several_outputs_and_node_affines() -> None:
    m = MultKAN([1, 2], numeric=False, variables=["x"], dtype=torch.float64)
    m.set_edges(0, [(0, 0, "cos"), (0, 1, "x^2")])
    with torch.no_grad():
        m.node_scale[0][1] = 3.0
        m.node_bias[0][1] = -1.0
        m.subnode_bias[0][0] = 0.5
    f1, f2 = formula(m)
    assert f1 == sympy.cos(x) + sympy.Rational(1, 2) and sympy.expand(f2 - (3 * x**2 - 1)) == 0


def test_spline_edges_need_auto_symbolic_first() -> None:
    m = MultKAN([2, 1], dtype=torch.float64)
    with pytest.raises(KanpilerError, match="auto_symbolic"):
        formula(m)


def test_bounded_simplify_gives_up_in_time() -> None:
    import time

    hard = sum(sympy.sin(x + k) ** k * sympy.cos(x - k) ** (k + 1) for k in range(1, 25))
    start = time.perf_counter()
    out = bounded_simplify(hard, timeout=0.2)
    assert (
        time.perf_counter() - start < 3.0
        and out == hard
        or sympy.count_ops(out) <= sympy.count_ops(hard)
    )


def test_draw_kan_graph() -> None:
    src = to_dot(to_graph(sym_model())).source
    assert "exp(x)" in src and "sin(3.14159x)" in src and "0.5x+0.25" in src
    assert edge_label({"kind": "spline"}) == "spline"
    with pytest.raises(RenderError, match="to_graph"):
        to_dot(42)


def test_draw_spline_images_only_when_asked() -> None:
    m = MultKAN([1, 1], dtype=torch.float64)
    g = to_graph(m)
    assert "IMG" not in to_dot(g).source
    assert "IMG" in to_dot(g, model=m, images=True).source


def _pykan_404_compiled() -> None:
    model = kanpiler.compile("2*w*x*y + x*y*z", ["w", "x", "y", "z"], dtype=torch.float64)
    (f,) = formula(model)
    assert sympy.expand(f - (2 * w * x * y + x * y * z)) == 0


def test_compiled_formulas_read_back_exactly() -> None:
    _pykan_404_compiled()
    for text, truth in [
        ("sin(x)*exp(y)", sympy.sin(x) * sympy.exp(y)),
        ("exp(-x**2/2)/sqrt(2*pi)", sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)),
        ("1.0*exp(1.0*y)*sin(1.0*x)", sympy.exp(y) * sympy.sin(x)),
        ("x**1.5 + 3", x ** sympy.Rational(3, 2) + 3),
    ]:
        for dtype in (torch.float32, torch.float64):
            (f,) = formula(kanpiler.compile(text, dtype=dtype))
            assert sympy.simplify(f - truth) == 0 and not f.atoms(sympy.Float), (text, dtype, f)


def _conditioning_tol(row, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    bumped = row.reference(X * (1 + 8 * np.finfo(float).eps)).real
    return 1e-9 * (1 + np.abs(y)) + 16 * np.abs(bumped - y)


@pytest.mark.slow
def test_corpus_round_trip(capsys: pytest.CaptureFixture) -> None:
    """to_sympy(compile(f)) equals f for every real-valued corpus formula."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from corpus import real_rows

    kept, skipped = real_rows(n=64, seed=3)
    symbolic_equal = numeric_only = 0
    wrong = []
    for row, X, y in kept:
        model = kanpiler.compile(row.formula, list(row.variables), dtype=torch.float64)
        (f,) = formula(model, timeout=0.5)
        truth = row.sympy_expr
        env = {v: torch.from_numpy(X[:, k]) for k, v in enumerate(row.variables)}
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = evaluate_sympy(f, env).numpy()
            # points where the truth is real only through complex intermediates are skipped
            real = np.isfinite(evaluate_sympy(truth, env).numpy())
        close = np.abs(got - y)[real] <= _conditioning_tol(row, X, y)[real]
        extra_floats = len(f.atoms(sympy.Float)) > len(truth.atoms(sympy.Float))
        if real.mean() < 0.5 or not close.all() or extra_floats:
            wrong.append((row.id, row.formula, str(f)[:120]))
        elif bounded_simplify(f - truth, timeout=0.3) == 0:
            symbolic_equal += 1
        else:
            numeric_only += 1
    with capsys.disabled():
        print(f"\nround trip: {len(kept)} real corpus rows ({len(skipped)} skipped): "
              f"{symbolic_equal} simplify(found - truth) == 0, {numeric_only} equal on random "
              f"points without new floats, {len(wrong)} wrong")  # fmt: skip
    assert not wrong, wrong


def test_kanpiler_render_draws_converter_graphs() -> None:
    from kanpiler.convert import tree

    assert "exp(x)" in kanpiler.render(to_graph(sym_model())).source
    X = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert "Mul" in kanpiler.render(tree(lambda v: v[:, 0] * v[:, 1], X, ["x", "y"])).source
