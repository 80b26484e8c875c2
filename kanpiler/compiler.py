"""The compiler: formulas -> exact, trainable MultKAN.

In: formula text, IR, SymPy, or a list of these (one output each). Out: a runtime ``MultKAN``
computing them exactly, with ``model.layout`` and ``model.source_formulas`` set. Stage:
compiler = ``kanpiler.lower`` (parse -> canonicalize -> expand_variable_powers -> fold_numeric
-> lower -> verify) -> ``build_model`` -> ``check_build``.

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

from . import library
from .errors import CompileError, KanpilerError, VerifyError
from .layout import Layout, astuple_edge, evaluate_layout
from .lowering import PASSES, lower
from .runtime import MultKAN, SymbolicLayer


def build_model(
    layout: Layout,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    *,
    grid: int = 5,
    k: int = 3,
    basis: Any = None,
) -> MultKAN:
    """A ``MultKAN`` with the layout's widths, arities, symbolic edges and affine
    parameters; numeric (spline) branches all off. Constants of the formula are trainable.
    ``basis`` (a name or a basis instance such as ``Chebyshev(degree=8)``; default
    B-splines of ``grid``, ``k``) is the basis of the learnable residual edges.

    >>> model = build_model(lower("exp(-x**2)"), torch.float64)
    >>> model(torch.tensor([[0.0]], dtype=torch.float64)).detach().item()
    1.0
    """
    model = MultKAN(
        [list(w) for w in layout.width],
        grid=grid,
        k=k,
        mult_arity=layout.mult_arity,
        dtype=dtype,
        device=device,
        variables=list(layout.variables),
        numeric=False,
        basis=basis,
    )
    with torch.no_grad():
        for li, es in enumerate(layout.edges):
            sym: SymbolicLayer = model.symbolic[li]
            sym.set_edges([astuple_edge(e) for e in es])
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
    basis: Any = None,
) -> MultKAN:
    """Compile formula(s) into a ``MultKAN`` that computes them exactly.

    ``formula`` is text, an ``Expr``, a SymPy expression or a list of these (several outputs).
    ``variables`` fixes the inputs and their order (default: order of first appearance across
    the outputs). ``check`` verifies that the module holds exactly the verified layout
    (``check_build``: same edges, functions and parameters); comparing values with the layout's
    float64 reference is the separate ``self_check``. ``trace`` keeps every stage in
    ``model.compile_trace``
    (a list of ``(step, value)``). ``basis`` picks the basis of the learnable residual edges
    (default B-splines of ``grid``, ``k``; e.g. ``"chebyshev"`` or ``RBF(centers=8)``).
    Raises a ``KanpilerError`` for what cannot compile exactly.

    >>> model = compile(["x*y", "sin(x) + 1"], dtype=torch.float64)
    >>> model.variables, model.source_formulas
    (['x', 'y'], ['x*y', 'sin(x) + 1'])
    >>> model(torch.tensor([[2.0, 3.0]], dtype=torch.float64)).detach()
    tensor([[6.0000, 1.9093]], dtype=torch.float64)
    """
    dtype, device = _options(dtype, device)
    steps: list | None = [] if trace else None
    layout = lower(formula, variables, trace=steps)
    check_constants(layout, dtype)
    model = build_model(layout, dtype, device, grid=grid, k=k, basis=basis)
    if check:
        check_build(model, layout)
    model.layout = layout
    model.source_formulas = list(layout.outputs)
    if steps is not None:
        steps.append(("build", model))
        model.compile_trace = steps
    return model


def check_build(model: MultKAN, layout: Layout) -> None:
    """The module holds exactly the layout: same symbolic edges, functions and parameters (in
    the model's dtype), no numeric edge on, same node and subnode affine parameters."""
    for li, es in enumerate(layout.edges):
        got = model.edges(li)  # active edges, row-major like the layout's
        ok = (
            len(got) == len(es)
            and all(g.kind == "symbolic" for g in got)
            and [(g.i, g.j) for g in got] == [(e.i, e.j) for e in es]
            and [g.fn for g in got] == [library.get(e.fn).name for e in es]
            and torch.equal(
                torch.tensor([[g.a, g.b, g.c, g.d] for g in got], dtype=model.dtype).reshape(-1, 4),
                torch.tensor([[e.a, e.b, e.c, e.d] for e in es], dtype=model.dtype).reshape(-1, 4),
            )
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
        dev = None if device is None else torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise CompileError(f"device {device!r} is not a torch device: {err}") from None
    if dev is not None and dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            raise CompileError(
                f"device {device!r} is not available: this machine has {count} CUDA device(s)"
            )
    return dtype, dev


def _constants(layout: Layout) -> list[tuple[float, str]]:
    """Every number of the layout, with where it sits."""
    out = [(v, f"subnode bias of layer {li}") for li, vs in enumerate(layout.subnode_bias)
           for v in vs]  # fmt: skip
    for li, es in enumerate(layout.edges):
        out += [(v, f"edge {e.i}->{e.j} of layer {li} ({e.fn})")
                for e in es for v in (e.a, e.b, e.c, e.d)]  # fmt: skip
    for li, nodes in enumerate(layout.nodes[1:]):
        out += [(v, f"node {n} of layer {li + 1}") for n, node in enumerate(nodes)
                for v in (node.scale, node.bias)]  # fmt: skip
    return out


def check_constants(layout: Layout, dtype: torch.dtype) -> None:
    """Every constant of the layout is held by ``dtype``: none overflows to infinity or
    underflows to zero (``1e300`` or ``1e-50`` in float32); else a :class:`CompileError`
    that suggests float64."""
    info = torch.finfo(dtype)
    for v, where in _constants(layout):
        if v != 0 and not info.tiny <= abs(v) <= info.max:
            raise CompileError(
                f"the constant {v:g} ({where}) does not fit {str(dtype)[6:]}, which holds "
                f"magnitudes from {info.tiny:.3g} to {info.max:.3g}; compile with "
                "dtype=torch.float64"
            )


def self_check(model: MultKAN, layout: Layout, n: int = 8, seed: int = 0) -> None:
    """The built module agrees with the layout's float64 reference where that is finite."""
    if not layout.variables:
        x = torch.zeros(n, 0, dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(seed)
        x = 0.25 + 1.5 * torch.rand(n, len(layout.variables), generator=gen, dtype=torch.float64)
    ref = evaluate_layout(layout, x)
    with torch.no_grad():
        got = model(x.to(device=model.device, dtype=model.dtype)).double().cpu()
    ok = torch.isfinite(ref) & (ref.abs() < 1e30)
    bad = ok & ((got - ref).abs() > 1e-9 * (1 + ref.abs()))
    if bool(bad.any()):
        raise KanpilerError(
            "the built module disagrees with its layout (a bug in kanpiler; please report it "
            f"with the formula): {got[bad][:3].tolist()} != {ref[bad][:3].tolist()}"
        )


__all__ = [
    "compile",
    "lower",
    "build_model",
    "check_build",
    "check_constants",
    "self_check",
    "PASSES",
]
