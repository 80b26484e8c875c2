"""The compiler: formulas -> exact, trainable MultKAN.

In: formula text, IR, SymPy, or a list of these (one output each). Out: a runtime ``MultKAN``
computing them exactly, with ``model.layout`` and ``model.formulas`` attached. Stage: compile
= parse -> canonicalize -> expand_variable_powers -> fold_numeric -> lower -> verify -> build.

>>> import torch, kanpiler
>>> model = kanpiler.compile("sin(x)*exp(y)", dtype=torch.float64)
>>> model.variables, model.layout.depth
(['x', 'y'], 1)
>>> x = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
>>> bool(torch.allclose(model(x), torch.sin(x[:, :1]) * torch.exp(x[:, 1:])))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from . import ir, library
from .errors import CompileError, KanpilerError, VerifyError
from .layout import Layout, astuple_edge, verify
from .lower import lower_ir

#: the IR passes, in order; each is looked up in ``kanpiler.passes`` (a missing one is skipped:
#: lowering accepts raw IR, the passes only make it smaller)
PASSES = ("canonicalize", "expand_variable_powers", "fold_numeric")


def _as_list(formula: Any) -> list[Any]:
    return list(formula) if isinstance(formula, (list, tuple)) else [formula]


def parse_all(formulas: list[Any], variables: Sequence[str] | str | None) -> list[ir.Expr]:
    """Step 1: text, SymPy or IR -> raw IR."""
    from .parse import parse

    return [parse(f, variables) for f in formulas]


def input_names(exprs: list[ir.Expr], variables: Sequence[str] | str | None) -> list[str]:
    """``variables`` if given (checked to cover the formulas), else order of first appearance."""
    found: dict[str, None] = {}
    for e in exprs:
        found.update(dict.fromkeys(ir.variables(e)))
    if variables is None:
        return list(found)
    if isinstance(variables, str):
        names = variables.replace(",", " ").split()
    elif isinstance(variables, (list, tuple)) and all(isinstance(v, str) for v in variables):
        names = list(variables)
    else:
        raise CompileError(
            f"variables must be a list of names or a string 'x, y', got {variables!r}"
        )
    missing = [v for v in found if v not in names]
    if missing:
        raise CompileError(f"the formula uses {missing} but variables={names} does not list them")
    if len(set(names)) != len(names):
        raise CompileError(f"variables must be distinct, got {names}")
    return names


def run_passes(e: ir.Expr, trace: list | None = None) -> ir.Expr:
    """Steps 2-4: the IR passes of ``PASSES`` that ``kanpiler.passes`` provides."""
    try:
        from . import passes
    except ImportError:  # lowering handles raw IR; the passes only simplify it
        return e
    for name in PASSES:
        step = getattr(passes, name, None)
        if step is not None:
            e = step(e)
            if trace is not None:
                trace.append((name, e))
    return e


def build(
    layout: Layout,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    *,
    grid: int = 5,
    k: int = 3,
) -> Any:
    """Step 7: a ``MultKAN`` with the layout's widths, arities, symbolic edges and affine
    parameters; numeric (spline) branches all off. Constants of the formula are trainable.

    >>> model = build(lower("exp(-x**2)"), torch.float64)
    >>> model(torch.tensor([[0.0]], dtype=torch.float64)).detach().item()
    1.0
    """
    from .runtime import MultKAN

    model = MultKAN(
        [list(w) for w in layout.width],
        grid=grid,
        k=k,
        mult_arity=layout.mult_arity,
        dtype=dtype,
        device=device,
        variables=list(layout.variables),
        numeric=False,
    )
    with torch.no_grad():
        for li, es in enumerate(layout.edges):
            model.symbolic[li].set_edges([astuple_edge(e) for e in es])
            nodes = layout.nodes[li + 1]
            _fill(model.subnode_bias[li], layout.subnode_bias[li], 0.0)
            _fill(model.node_scale[li], [n.scale for n in nodes], 1.0)
            _fill(model.node_bias[li], [n.bias for n in nodes], 0.0)
    return model


def _fill(param: torch.nn.Parameter, values: Sequence[float], default: float) -> None:
    """Copy ``values`` in; a parameter holding a constant of the formula becomes trainable."""
    if any(v != default for v in values):
        param.copy_(torch.tensor(list(values), dtype=param.dtype, device=param.device))
        param.requires_grad_(True)


def lower(
    formula: Any, variables: Sequence[str] | str | None = None, *, trace: list | None = None
) -> Layout:
    """Formula(s) -> verified ``Layout`` (parse, passes, lower, verify), without building.

    >>> import kanpiler
    >>> print(kanpiler.lower("2*x + 3"))
    layout: 1 KAN layer, 1 edge, inputs [x], 1 output
    nodes 0: [in x]
    edges 0: 0->0 x c=2 d=3
    nodes 1: [sum]
    """
    formulas = _as_list(formula)
    input_names([], variables)  # the names' type is checked before parsing with them
    raw = parse_all(formulas, variables)
    names = input_names(raw, variables)
    if trace is not None:
        trace.append(("parse", raw))
    canonical = []
    for e in raw:
        canonical.append(run_passes(e, trace))
    labels = [_label(f, e) for f, e in zip(formulas, raw)]
    layout = lower_ir(canonical, names, labels)
    if trace is not None:
        trace.append(("lower", layout))
    return verify(layout, "lower")


def _label(formula: Any, e: ir.Expr) -> str:
    if isinstance(formula, str):
        return formula.strip()
    try:
        return str(e)
    except Exception:  # printing unavailable: a label is only decoration
        return f"output ({e.op.name})"


def compile(
    formula: Any,
    variables: Sequence[str] | str | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    grid: int = 5,
    k: int = 3,
    check: bool = True,
    trace: bool = False,
) -> Any:
    """Compile formula(s) into a ``MultKAN`` that computes them exactly.

    ``formula`` is text, an ``Expr``, a SymPy expression or a list of these (several outputs).
    ``variables`` fixes the inputs and their order (default: order of first appearance across
    the outputs). ``check`` verifies the layout and that the module holds exactly it
    (``self_check`` also compares values with the layout's float64 reference). ``trace`` keeps every stage in ``model.compile_trace``
    (a list of ``(step, value)``). Raises a ``KanpilerError`` for what cannot compile exactly.

    >>> model = compile(["x*y", "sin(x) + 1"], dtype=torch.float64)
    >>> model.variables, model.formulas
    (['x', 'y'], ['x*y', 'sin(x) + 1'])
    >>> model(torch.tensor([[2.0, 3.0]], dtype=torch.float64)).detach()
    tensor([[6.0000, 1.9093]], dtype=torch.float64)
    """
    dtype, device = _options(dtype, device)
    steps: list | None = [] if trace else None
    layout = lower(formula, variables, trace=steps)
    model = build(layout, dtype, device, grid=grid, k=k)
    if check:
        check_build(model, layout)
    model.layout = layout
    model.formulas = list(layout.outputs)
    if steps is not None:
        steps.append(("build", model))
        model.compile_trace = steps
    return model


def check_build(model: Any, layout: Layout) -> None:
    """The module holds exactly the layout: same symbolic edges, functions and parameters (in
    the model's dtype), no numeric edge on, same node and subnode affine parameters."""
    for li, es in enumerate(layout.edges):
        sym = model.symbolic[li]
        opts = {"dtype": sym.affine.dtype, "device": sym.affine.device}
        rows = torch.tensor([e.i for e in es], dtype=torch.long, device=opts["device"])
        cols = torch.tensor([e.j for e in es], dtype=torch.long, device=opts["device"])
        want = torch.tensor([[e.a, e.b, e.c, e.d] for e in es], **opts).reshape(-1, 4)
        names = [sym.fn_names[int(i)] for i in sym.fn_ids[rows, cols].tolist()]
        ok = (
            int((sym.mask != 0).sum()) == len(es)
            and bool((sym.mask[rows, cols] != 0).all())
            and not bool((model.layers[li].mask != 0).any())
            and names == [library.get(e.fn).name for e in es]
            and torch.equal(sym.affine.detach()[rows, cols], want)
            and _same(model.subnode_bias[li], layout.subnode_bias[li])
            and _same(model.node_scale[li], [n.scale for n in layout.nodes[li + 1]])
            and _same(model.node_bias[li], [n.bias for n in layout.nodes[li + 1]])
        )
        if not ok:
            raise VerifyError("build", "the module holds exactly the layout", f"KAN layer {li}")


def _same(param: torch.Tensor, values: Sequence[float]) -> bool:
    return torch.equal(
        param.detach(), torch.tensor(list(values), dtype=param.dtype, device=param.device)
    )


def _options(dtype: Any, device: Any) -> tuple[torch.dtype, torch.device | None]:
    """``dtype`` (a floating torch dtype or its name) and ``device``, checked."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise CompileError(
            f"dtype must be a floating torch dtype such as torch.float64, got {dtype!r}"
        )
    try:
        return dtype, None if device is None else torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise CompileError(f"device {device!r} is not a torch device: {err}") from None


def self_check(model: Any, layout: Layout, n: int = 8, seed: int = 0) -> None:
    """The built module agrees with the layout's float64 reference where that is finite."""
    from .layout import evaluate

    if not layout.variables:
        x = torch.zeros(n, 0, dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(seed)
        x = 0.25 + 1.5 * torch.rand(n, len(layout.variables), generator=gen, dtype=torch.float64)
    ref = evaluate(layout, x)
    with torch.no_grad():
        got = model(x.to(device=model.device, dtype=model.dtype)).double().cpu()
    ok = torch.isfinite(ref) & (ref.abs() < 1e30)
    bad = ok & ((got - ref).abs() > 1e-9 * (1 + ref.abs()))
    if bool(bad.any()):
        raise KanpilerError(
            "the built module disagrees with its layout (a bug in kanpiler; please report it "
            f"with the formula): {got[bad][:3].tolist()} != {ref[bad][:3].tolist()}"
        )


__all__ = ["compile", "lower", "build", "check_build", "self_check", "PASSES"]
