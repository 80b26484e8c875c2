"""kanpiler.discover and KANRegressor: recovery against SymPy truth, bad input, determinism."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

import kanpiler
from kanpiler.discovery import DataError, discover

DATA = Path(__file__).resolve().parent / "data"


def same(found: sympy.Expr, text: str, names: list[str]) -> bool:
    """SymPy proves found == truth (variables positive, as on the boxes used here)."""
    truth = kanpiler.to_sympy(text, names)
    pos = {n: sympy.Symbol(n, positive=True) for n in names}
    f = found.xreplace({s: pos[s.name] for s in found.free_symbols})
    t = truth.xreplace({s: pos[s.name] for s in truth.free_symbols})
    return sympy.simplify(f - t) == 0


def data(fn, n_vars: int, n: int = 400, low: float = 1.0, high: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(low, high, size=(n, n_vars))
    return X, fn(*X.T)


@pytest.mark.parametrize(
    ("text", "n"),
    [("3*x1**2 + 1", 1), ("x1*x2 + x3", 3), ("sin(x1)*exp(x2)", 2), ("x1**0.426", 1),
     ("2.138*(1 - exp(-0.547*x1))", 1)],  # fmt: skip
)
def test_direct_fits_recover_the_formula(text, n):
    names = [f"x{i + 1}" for i in range(n)]
    expr = kanpiler.to_sympy(text, names)
    f = sympy.lambdify(sympy.symbols(names), expr, "numpy")
    X, y = data(f, n)
    found = discover(X, y, names, progress=False, surrogates=0)
    if "." in text:  # decimal constants: numerically exact
        Xf, yf = data(f, n, seed=1)
        assert np.max(np.abs(found.predict(Xf).numpy() - yf) / np.abs(yf)) < 1e-9
    else:
        assert same(found.formula, text, names), found.formula
    assert found.error < 1e-9
    assert found.pareto[-1].error <= found.pareto[0].error


def test_structure_search_splits_a_product_of_powers():
    names = ["G", "m1", "m2", "r"]
    X, y = data(lambda G, a, b, r: G * a * b / r**2, 4, n=600)
    found = discover(X, y, names, progress=False, surrogates=2)
    assert same(found.formula, "G*m1*m2/r**2", names), found.formula
    assert any("split" in s or "pair" in s or "power factor" in s for s in found.structure)


def test_output_transform_finds_a_square_root():
    X, y = data(lambda a, b: np.sqrt(a**2 + b**2), 2, n=600)
    found = discover(X, y, ["a", "b"], progress=False, surrogates=2)
    assert same(found.formula, "sqrt(a**2 + b**2)", ["a", "b"]), found.formula


def test_same_seed_same_text():
    X, y = data(lambda a, b: a**2 * np.cos(b) + a, 2)
    one = discover(X, y, ["a", "b"], progress=False, surrogates=1, seed=3)
    two = discover(X, y, ["a", "b"], progress=False, surrogates=1, seed=3)
    assert str(one.formula) == str(two.formula)
    assert [str(p.formula) for p in one.pareto] == [str(p.formula) for p in two.pareto]


def test_irrelevant_columns_are_left_out():
    X, y = data(lambda a, b, c: 2 * a**3 + 0 * b + 0 * c, 3)
    found = discover(X, y, ["a", "b", "c"], progress=False, surrogates=1)
    assert found.formula.free_symbols == {sympy.Symbol("a")}
    assert same(found.formula, "2*a**3", ["a"])


def test_pandas_columns_become_variables_and_tensors_work():
    pd = pytest.importorskip("pandas")
    X, y = data(lambda u, v: u * v, 2)
    found = discover(pd.DataFrame(X, columns=["speed", "time"]), y, progress=False, surrogates=0)
    assert same(found.formula, "speed*time", ["speed", "time"])
    found = discover(torch.from_numpy(X), torch.from_numpy(y), progress=False, surrogates=0)
    assert same(found.formula, "x1*x2", ["x1", "x2"])


def test_constant_target_gives_the_constant():
    X, _ = data(lambda a: a, 1)
    found = discover(X, np.full(len(X), 2.5), progress=False)
    assert found.formula == sympy.Rational(5, 2)


def test_nan_rows_are_an_error_naming_the_count_or_dropped_with_a_warning():
    X, y = data(lambda a, b: a + 2 * b, 2)
    X[3, 0] = np.nan
    y[7] = np.inf
    with pytest.raises(DataError, match="2 of 400 rows"):
        discover(X, y, progress=False)
    with pytest.warns(UserWarning, match="dropped 2 rows"):
        found = discover(X, y, progress=False, surrogates=0, drop_nonfinite=True)
    assert same(found.formula, "x1 + 2*x2", ["x1", "x2"])


def test_bad_shapes_and_types_are_clear_errors():
    X, y = data(lambda a: a, 1)
    with pytest.raises(kanpiler.ShapeError, match="400 rows but y has 399"):
        discover(X, y[:-1], progress=False)
    with pytest.raises(DataError, match="at least 10"):
        discover(X[:3], y[:3], progress=False)
    with pytest.raises(kanpiler.ShapeError, match="2 variable names for 1 columns"):
        discover(X, y, ["a", "b"], progress=False)
    with pytest.raises(kanpiler.ConfigError, match="CPU"):
        discover(X, y, progress=False, device="cuda")
    with pytest.raises(DataError, match="non-numeric"):
        discover(np.array([["a", "b"]] * 20, dtype=object), np.arange(20.0), progress=False)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.arange(20.0), "label": ["u"] * 20})
    with pytest.raises(DataError, match="label"):
        discover(frame, np.arange(20.0), progress=False)


def test_time_limit_returns_the_best_so_far():
    X, y = data(lambda a, b: np.sqrt(a**2 + b**2), 2)
    found = discover(X, y, progress=False, time_limit=0.0)
    assert "stopped early" in " ".join(found.report["stages"])
    assert np.isfinite(found.error)


def test_discovery_views_and_compiled_model():
    X, y = data(lambda a, b: a * b + np.sin(a), 2)
    found = discover(X, y, ["a", "b"], progress=False, surrogates=0)
    assert "formula:" in str(found) and "pareto" in str(found)
    assert "\\sin" in found.latex()
    model = found.model
    with torch.no_grad():
        out = model(torch.from_numpy(X[:20]))[:, 0].numpy()
    assert np.max(np.abs(out - y[:20])) < 1e-9


def _rows(name: str) -> list[dict]:
    with open(DATA / name, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("row", ["Nguyen-1", "Nguyen-3", "Keijzer-15", "Jin-4"])
def test_classic_rows_are_recovered(row):
    r = next(x for x in _rows("classic.csv") if x["name"] == row)
    spec = json.loads(r["variables"])
    names = [v["name"] for v in spec]
    truth = kanpiler.to_sympy(r["formula"], names)
    f = sympy.lambdify(sympy.symbols(names), truth, "numpy")
    rng = np.random.default_rng(0)
    X = np.stack([rng.uniform(v["low"], v["high"], 500) for v in spec], 1)
    found = discover(X, f(*X.T), names, progress=False, surrogates=1)
    assert sympy.simplify(found.formula - sympy.nsimplify(truth, rational=True).xreplace(
        {s: sympy.Symbol(s.name) for s in truth.free_symbols})) == 0, found.formula  # fmt: skip


def test_regressor_in_a_pipeline_and_cross_validation():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    X, y = data(lambda a, b: a**2 - b, 2, n=120)
    reg = kanpiler.KANRegressor(surrogates=0)
    scores = cross_val_score(make_pipeline(reg), X, y, cv=3)
    assert np.all(scores > 1 - 1e-12)
    reg.fit(X, y)
    assert same(reg.formula_, "x0**2 - x1", ["x0", "x1"])
    assert reg.sympy() == reg.formula_ and reg.latex()
    assert reg.get_params()["surrogates"] == 0
    assert reg.set_params(seed=4).seed == 4


@pytest.mark.slow
def test_regressor_passes_check_estimator():
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(kanpiler.KANRegressor(surrogates=0, time_limit=None), on_fail=None)
    with warnings.catch_warnings():
        failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed


def _example(name: str, *args: str) -> str:
    import os
    import subprocess
    import sys

    path = Path(__file__).resolve().parent.parent / "examples" / name
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=900, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_example_sklearn_pipeline():
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    out = _example("discover_sklearn.py")
    assert "formula: exp(y)*sin(x) + 1" in out
    scores = [float(s) for s in out.split("R^2: ")[1].split("\n")[0].split(", ")]
    assert min(scores) > 1 - 1e-9


@pytest.mark.slow
def test_example_feynman_recovers_compton_scattering():
    out = _example("discover_feynman.py")
    assert float(out.split("max relative error on fresh points: ")[1].split()[0]) < 1e-9


def test_units_give_buckingham_groups_and_the_formula():
    from kanpiler.discovery.units import groups

    M, L, T = {"kg": 1}, {"m": 1}, {"s": 1}
    units = {"G": {"m": 3, "kg": -1, "s": -2}, "m1": M, "m2": M, "r": L,
             "target": {"kg": 1, "m": 1, "s": -2}}  # fmt: skip
    names = ["G", "m1", "m2", "r"]
    g = groups(units, names)
    # independent check: the prefactor carries the target's units, every group none
    dims = {n: units[n] for n in names}
    def dim(powers):
        out = {}
        for n, a in powers.items():
            for b, e in dims[n].items():
                out[b] = out.get(b, 0) + a * e
        return {b: e for b, e in out.items() if e != 0}
    assert dim(g.prefactor) == units["target"]
    assert len(g.groups) == 1 and all(dim(q) == {} for q in g.groups)
    X, y = data(lambda G, a, b, r: G * a * b / r**2, 4, n=400)
    found = discover(X, y, names, units=units, progress=False, surrogates=0)
    assert same(found.formula, "G*m1*m2/r**2", names), found.formula
    assert any("dimensional" in s for s in found.structure)
    with pytest.raises(kanpiler.KanpilerError, match="missing"):
        discover(X, y, names, units={"G": M}, progress=False)
    with pytest.raises(kanpiler.KanpilerError, match="not a product"):
        groups({"a": L, "b": L, "target": T}, ["a", "b"])


def test_power_factors_divide_out_of_a_sign_changing_target():
    names = ["q", "v", "theta"]
    rng = np.random.default_rng(3)
    X = np.stack([rng.uniform(1, 3, 600), rng.uniform(1, 3, 600), rng.uniform(0, 6, 600)], 1)
    y = X[:, 0] ** 2 * X[:, 1] * np.cos(X[:, 2])  # y changes sign with cos(theta)
    found = discover(X, y, names, progress=False, surrogates=2)
    assert same(found.formula, "q**2*v*cos(theta)", names), found.formula
