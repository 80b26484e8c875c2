"""The converter's command-line commands, run through ``kanpiler.cli.main``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import kanpiler
from kanpiler.cli import main


@pytest.fixture
def saved(tmp_path: Path) -> str:
    model = kanpiler.compile("sin(x)*exp(y) + z**2", ["x", "y", "z"], dtype=torch.float64)
    path = str(tmp_path / "model")
    model.save(path)
    return path


def test_convert_prints_the_formula(saved: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["convert", saved]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith(" = z**2 + exp(y)*sin(x)") and out.count("\n") == 0


def test_convert_latex(saved: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["convert", saved, "--latex"]) == 0
    out = capsys.readouterr().out
    assert "e^{y}" in out and "\\sin{\\left(x \\right)}" in out


def test_tree_on_saved_model(saved: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "points.csv"
    np.savetxt(
        data, rng.uniform(0.2, 1.5, size=(200, 3)), delimiter=",", header="x,y,z", comments=""
    )
    dot = tmp_path / "tree.gv"
    assert main(["tree", saved, "--data", str(data), "--dot", str(dot)]) == 0
    out = capsys.readouterr().out
    assert "f = x * y + z" in out
    assert "Mul" in dot.read_text()


def test_convert_spline_model_explains(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = str(tmp_path / "spline")
    kanpiler.MultKAN([2, 1]).save(path)
    assert main(["convert", path]) == 2
    assert "auto_symbolic" in capsys.readouterr().err
