"""Graphviz views: expressions, layouts, models, converter graphs; install hint without dot."""

from __future__ import annotations

import shutil

import pytest

import kanpiler
from kanpiler import RenderError, ir
from kanpiler.views import INSTALL_HINT, edge_formula, render, save, to_svg

HAS_DOT = shutil.which("dot") is not None


def test_layout_drawing_has_inputs_sum_mult_nodes_and_labelled_edges():
    dot = render(kanpiler.lower("sin(x)*exp(y) + x**2"))
    src = dot.source
    assert "rankdir=LR" in src and "rank=same" in src
    assert "n0_0 [label=x" in src and "n0_1 [label=y" in src
    assert "sin(x)" in src and "exp(x)" in src and "x^2" in src
    assert "×" in src  # the mult node
    assert 'label="+"' in src  # a sum node
    assert 'port="f0"' in src and 'port="f1"' in src  # one port per factor
    assert "dashed" in src  # an identity (carry) edge
    assert "sin(x)*exp(y) + x**2" in src  # the output's formula


@pytest.mark.parametrize(
    "args, text",
    [
        (("sin", 3.0, 1.0, 2.0, 0.5), "2·sin(3x+1)+0.5"),
        (("x^2", 1.0, -1.0, 1.0, 0.0), "(x-1)^2"),
        (("x", 1.0, 0.0, -1.0, 0.0), "-x"),
        (("x", 2.0, 0.0, 1.5, 1.0), "3x+1"),
        (("x", 1.0, 0.0, 1.0, 0.0), ""),
        (("exp", -1.0, 0.0, 1.0, 0.0), "exp(-x)"),
    ],
)
def test_edge_labels_are_compact(args, text):
    assert edge_formula(*args) == text


def test_expression_tree():
    src = render(ir.call("sin", ir.var("x")) * ir.var("y") + 2).source
    for label in ("sin", "×", "+", "x", "y", "2"):
        assert label in src
    assert src.count("->") == 5
    # text and SymPy are drawn the same way
    assert render("sin(x)*y + 2").source.count("->") == 5


def test_compiled_model_is_drawn_through_its_layout_then_from_its_masks():
    model = kanpiler.compile("sin(x)*exp(y)")
    assert "sin(x)" in render(model).source
    model.unfix_symbolic(0, 0, 0)  # now a spline edge
    src = render(model).source
    assert "spline" in src and "exp(x)" in src


def test_uncompiled_model_from_masks():
    model = kanpiler.MultKAN([2, [1, 1], 1], seed=0)
    model.set_symbolic(0, 0, 0, "sin", 2.0, 0.0, 1.0, 0.0)
    src = render(model).source
    assert "sin(2x)" in src and src.count("spline") >= 5


def test_networkx_graphs_go_to_the_converter():
    nx = pytest.importorskip("networkx")
    dot = render(kanpiler.to_graph(kanpiler.compile("sin(x)*exp(y)")))
    assert "sin" in dot.source and "exp" in dot.source
    with pytest.raises(RenderError, match="to_graph"):
        render(nx.DiGraph(kind="unknown"))


def test_unknown_objects_are_refused():
    with pytest.raises(RenderError, match="cannot draw"):
        render(42)


def test_dot_source_always_saves(tmp_path):
    path = save(render("x*y"), tmp_path / "f.gv")
    assert path.read_text().startswith("digraph")
    with pytest.raises(RenderError, match=".svg"):
        save(render("x*y"), tmp_path / "f.txt")


def test_missing_dot_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' on the PATH
    with pytest.raises(RenderError) as info:
        to_svg(kanpiler.lower("x*y"))
    assert "apt-get install graphviz" in str(info.value) and "brew" in str(info.value)
    assert str(info.value) == INSTALL_HINT


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_svg_and_png(tmp_path):
    svg = to_svg(kanpiler.lower("sin(x)*exp(y)"))
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "sin(x)" in svg
    png = save(render(kanpiler.compile("x + y")), tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_writes_only_when_asked(tmp_path):
    before = set(tmp_path.iterdir())
    render(kanpiler.lower("x"))
    assert set(tmp_path.iterdir()) == before
    render(kanpiler.lower("x"), tmp_path / "x.gv")
    assert (tmp_path / "x.gv").exists()
