"""Property tests: on any input, load, the CLI and the converter either work or raise a
KanpilerError (the CLI: exit status 2), and leave models and files as they were."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path

import pytest
import sympy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kanpiler
from kanpiler import library
from kanpiler.cli import main
from kanpiler.convert import snap_constants
from kanpiler.convert.cleanup import round_constants
from kanpiler.convert.constants import snap_number
from kanpiler.errors import KanpilerError
from kanpiler.runtime import MultKAN

FAST = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


def _state(model: MultKAN) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unchanged(model: MultKAN, before: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return now.keys() == before.keys() and all(
        torch.equal(now[k], v)
        or (torch.isnan(now[k]) == torch.isnan(v)).all()
        and torch.equal(now[k].nan_to_num(), v.nan_to_num())
        for k, v in before.items()
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---- load ------------------------------------------------------------------------------------

_GOOD = tempfile.mkdtemp(prefix="kanpiler-props-")
kanpiler.compile(["x*y", "sin(x) + 1"], dtype=torch.float64).save(Path(_GOOD) / "c")
MultKAN([2, 3, 1], grid=4, seed=0).save(Path(_GOOD) / "s")

JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True),
    st.text(max_size=8), st.lists(st.integers(-3, 10**9), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)  # fmt: skip


def _paths(desc: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(desc, dict):
        for k, v in desc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(desc, list):
        for k, v in enumerate(desc[:3]):
            out += _paths(v, (*prefix, k))
    return out


def _set(desc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    parent = desc
    for k in path[:-1]:
        parent = parent[k]  # type: ignore[index]
    parent[path[-1]] = value  # type: ignore[index]
    return desc


@FAST
@given(name=st.sampled_from(["c", "s"]), data=st.data())
def test_load_of_any_edited_description_is_a_model_or_a_checkpoint_error(name, data) -> None:
    """Edits re-signed consistently, so only the validation of the content can refuse them."""
    import hashlib

    from safetensors.torch import load_file, save_file

    src = Path(_GOOD)
    desc = json.loads((src / f"{name}.json").read_text())
    path = data.draw(st.sampled_from(_paths(desc)[1:]))
    desc = _set(desc, path, data.draw(JSON_VALUES))
    with tempfile.TemporaryDirectory() as tmp:
        text = json.dumps(desc)
        (Path(tmp) / "m.json").write_text(text)
        meta = {"format": "kanpiler.multkan",
                "json_sha256": hashlib.sha256(text.encode()).hexdigest()}  # fmt: skip
        save_file(load_file(str(src / f"{name}.safetensors")), str(Path(tmp) / "m.safetensors"),
                  metadata=meta)  # fmt: skip
        before = _files(Path(tmp))
        with contextlib.suppress(KanpilerError):
            kanpiler.load(Path(tmp) / "m")
        assert _files(Path(tmp)) == before


@FAST
@given(which=st.sampled_from(["m.json", "m.safetensors"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3))  # fmt: skip
def test_load_of_damaged_bytes_is_the_model_or_a_checkpoint_error(which, cut, flips) -> None:
    src = Path(_GOOD)
    with tempfile.TemporaryDirectory() as tmp:
        for ext in ("json", "safetensors"):
            (Path(tmp) / f"m.{ext}").write_bytes((src / f"s.{ext}").read_bytes())
        target = Path(tmp) / which
        raw = bytearray(target.read_bytes())
        raw = raw[: max(1, int(len(raw) * cut))] if cut < 0.99 else raw
        for pos, mask in flips:
            raw[min(int(pos * len(raw)), len(raw) - 1)] ^= mask
        target.write_bytes(bytes(raw))
        before = _files(Path(tmp))
        try:
            model = kanpiler.load(Path(tmp) / "m")
        except KanpilerError:
            model = None
        if model is not None:  # only an undamaged pair loads, and as the saved model
            x = torch.rand(4, 2)
            assert torch.equal(model(x), kanpiler.load(src / "s")(x))
        assert _files(Path(tmp)) == before


# ---- the converter ---------------------------------------------------------------------------

NAMES = [n for n in library.names(1) if n not in ("sign",)] + ["x", "x^2", "x^-1", "x^0.5"]
# SymPy's own automatic evaluation of hyperbolic functions of 1e300*x can run for minutes, so
# finite parameters stay moderate here; NaN and infinities are refused before SymPy sees them
NUMBERS = st.one_of(
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([0.0, 1e-9, 1e6, -1e3, math.pi]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


@FAST
@given(width=st.lists(st.integers(1, 3), min_size=2, max_size=4), data=st.data())
def test_formula_of_any_symbolic_model_is_sympy_or_a_kanpiler_error(width, data) -> None:
    model = MultKAN(width, numeric=False, dtype=torch.float64)
    for li in range(model.depth):
        for i in range(width[li]):
            for j in range(width[li + 1]):
                fn = data.draw(st.sampled_from(NAMES))
                model.set_symbolic(li, i, j, fn, *(data.draw(NUMBERS) for _ in range(4)))
    before = _state(model)
    try:
        exprs = kanpiler.to_sympy(model)
    except KanpilerError:
        exprs = None
    if exprs is not None:
        exprs = exprs if isinstance(exprs, list) else [exprs]
        assert all(isinstance(e, sympy.Basic) for e in exprs)
    assert _unchanged(model, before)


@settings(max_examples=200, deadline=None)
@given(value=st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: abs(v) > 1e-6),
       rtol=st.sampled_from([1e-9, 1e-6, 1e-3]))  # fmt: skip
def test_a_snapped_number_is_within_tolerance(value, rtol) -> None:
    form = snap_number(value, rtol)
    if form is not None:
        assert abs(float(form) - value) <= rtol * abs(value) * (1 + 1e-9)


@settings(max_examples=60, deadline=None)
@given(coefs=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=4),
       rtol=st.sampled_from([1e-6, 1e-3]), digits=st.integers(0, 6))  # fmt: skip
def test_snapping_and_rounding_keep_the_function(coefs, rtol, digits) -> None:
    x = sympy.Symbol("x")
    expr = sum(sympy.Float(c) * x**k for k, c in enumerate(coefs))
    snapped = snap_constants(expr, rtol)
    for point in (0.5, 1.5):
        want = float(expr.subs(x, point))
        scale = sum(abs(c) * point**k for k, c in enumerate(coefs)) + 1e-300
        assert abs(float(snapped.subs(x, point)) - want) <= 2 * rtol * scale + 1e-6 * scale
    rounded = round_constants(expr, digits)
    assert not any(abs(float(f) - round(float(f), digits)) > 0 for f in rounded.atoms(sympy.Float))


# ---- the command line --------------------------------------------------------------------------

FORMULAS = st.sampled_from(["sin(x)*exp(y)", "x*y", "log(x)", "1/x", "sqrt(x)+y", "(", "x+",
                            "1e999", "sinn(x)", "", "-x**2", "x**y"])  # fmt: skip
DATA = st.one_of(
    st.binary(max_size=40),
    st.lists(st.lists(st.sampled_from(["0.5", "1", "-2", "nan", "inf", "abc", "", "1e400"]),
                      min_size=1, max_size=3), max_size=4)
    .map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
)  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cmd=st.sampled_from(["parse", "compile"]),
    formula=FORMULAS,
    extra=st.lists(
        st.sampled_from(
            [
                "--variables",
                "x,y",
                ",,,",
                "--dtype",
                "float64",
                "float16",
                "--print-layout",
                "--",
                "x",
            ]
        ),
        max_size=3,
    ),
)
def test_cli_formula_commands_exit_0_or_2(cmd, formula, extra, capsys) -> None:
    try:
        code = main([cmd, *extra, formula])
    except SystemExit as stop:  # argparse usage errors
        code = stop.code
    out, err = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in err


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=st.sampled_from([".csv", ".npy", ".txt"]), content=DATA)
def test_cli_tree_on_any_data_file_exits_0_or_2_and_changes_no_file(suffix, content, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "m.json").write_bytes((Path(_GOOD) / "c.json").read_bytes())
        (folder / "m.safetensors").write_bytes((Path(_GOOD) / "c.safetensors").read_bytes())
        (folder / f"d{suffix}").write_bytes(content)
        before = _files(folder)
        try:
            code = main(["tree", str(folder / "m"), "--data", str(folder / f"d{suffix}")])
        except SystemExit as stop:
            code = stop.code
        _, err = capsys.readouterr()
        assert code == 2 and err.startswith("kanpiler tree: error:")  # two outputs: refused
        assert _files(folder) == before


@pytest.fixture(autouse=True)
def _quiet_torch():
    torch.set_num_threads(1)
    yield


# ---- fit -----------------------------------------------------------------------------------


def _fit_model() -> MultKAN:
    return MultKAN([2, 3, 1], grid=4, seed=0, dtype=torch.float64)


def _clean_data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1
    return x, torch.sin(x[:, :1]) + x[:, 1:] ** 2


def _spoil(t: torch.Tensor, how: str) -> torch.Tensor:
    t = t.clone()
    if how == "nan":
        t[1, 0] = math.nan
    elif how == "inf":
        t[2, -1] = math.inf
    elif how == "huge":
        t = t * 1e18
    elif how == "empty":
        t = t[:0]
    elif how == "rows":
        t = t[:-3]
    return t


BAD_OPTIONS = st.sampled_from([
    {}, {"lr": math.nan}, {"lr": -1.0}, {"lr": 0.0}, {"threads": -1}, {"steps": -1},
    {"opt": "nope"}, {"opt": "Adam"}, {"opt": "Adam", "lr": 1e6}, {"batch": 0},
    {"grid_update_num": 0}, {"lamb": math.nan},
])  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(x_how=st.sampled_from(["", "nan", "inf", "empty", "rows"]),
       y_how=st.sampled_from(["", "nan", "inf", "huge", "rows", "numpy"]),
       test_how=st.sampled_from(["", "nan", "none"]), options=BAD_OPTIONS)  # fmt: skip
def test_fit_raises_a_kanpiler_error_and_keeps_the_model(x_how, y_how, test_how, options):
    torch.set_num_threads(1)
    model = _fit_model()
    x, y = _clean_data()
    x_bad = _spoil(x, x_how)
    y_bad = y.numpy() if y_how == "numpy" else _spoil(y, y_how)
    kw: dict = {"steps": 3, "progress": False, **options}
    if test_how != "none":
        kw["x_test"], kw["y_test"] = _spoil(x, test_how), y
    before = _state(model)
    try:
        model.fit(x_bad, y_bad, **kw)
    except KanpilerError:
        assert _unchanged(model, before)  # validation before any change, or a full restore
        return
    for name, p in model.state_dict().items():
        assert torch.isfinite(p).all(), name  # a run that returns leaves finite parameters
