"""A MultKAN described as data, and copies made from that description.

In: a model. Out: its constructor arguments (:func:`model_config`), a JSON-serialisable
description with grids, function names and a compiled model's source formulas and layout
(:func:`describe`), a model rebuilt from such a description (:func:`from_description`), and independent
copies (:func:`clone`, :func:`clone_with_grid`). Stage: runtime (used by checkpoints, pruning
and grid extension). New models are made with ``type(model)`` or the class passed in, so this
module never imports :class:`~kanpiler.runtime.MultKAN` at run time.

>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([2, 3, 1], grid=4)
>>> model_config(model)["width"], describe(model)["layers"][0]["n_intervals"]
([[2, 0], [3, 0], [1, 0]], 4)
>>> twin = clone(model)
>>> twin is not model and twin.width == model.width
True
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch

from .._version import __version__
from ..errors import CheckpointError
from ..layout import Layout, verify
from .bases import resized_config
from .basis import BSplineBasis

if TYPE_CHECKING:
    from .multkan import MultKAN

FORMAT = "kanpiler.multkan"
FORMAT_VERSION = 1
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}  # fmt: skip

__all__ = ["model_config", "describe", "from_description", "clone", "clone_with_grid"]


def model_config(model: MultKAN) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model``'s layout (JSON-serialisable)."""
    return {
        "width": model.width,
        "grid": model.grid,
        "k": model.k,
        "mult_arity": model.mult_arity,
        "grid_range": list(model.grid_range),
        "noise_scale": model.noise_scale,
        "base_fun": model.base_fun,
        "grid_eps": model.grid_eps,
        "seed": model.seed,
        "variables": list(model.variables),
        "basis": model.basis_name,
        "basis_options": dict(model.basis_options),
    }


def describe(model: MultKAN) -> dict[str, Any]:
    """The JSON description: config, dtype, per-layer knots and symbolic function names (and
    a compiled model's ``source_formulas`` and ``layout``)."""
    layers = []
    for num, sym in zip(model.layers, model.symbolic):
        info: dict[str, Any] = {}
        if isinstance(num.basis, BSplineBasis):  # other bases keep their state in buffers
            info = {"n_intervals": num.basis.n_intervals, "uniform": num.basis.uniform,
                    "knots": num.basis.knots.tolist()}  # fmt: skip
        layers.append({
            **info,
            "fn_names": list(sym.fn_names),
            "symbolic": [[sym.function(i, j) for j in range(sym.out_features)]
                         for i in range(sym.in_features)],
        })  # fmt: skip
    desc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kanpiler_version": __version__,
        "dtype": str(model.dtype).removeprefix("torch."),
        "config": model_config(model),
        "layers": layers,
        "trainable": {name: p.requires_grad for name, p in model.named_parameters()},
    }
    if model.source_formulas is not None:
        desc["source_formulas"] = [str(f) for f in model.source_formulas]
    if model.layout is not None:
        desc["layout"] = json.loads(model.layout.to_json())
    return desc


def from_description(
    desc: dict[str, Any], cls: type[MultKAN], device: torch.device | str | None = None
) -> MultKAN:
    """An empty-weighted ``cls`` model with the layout, knots and function names of ``desc``.

    Descriptions written before 0.2.0 (per-layer ``"grid"``, top-level ``"formulas"``) are
    read too.
    """
    dtype = DTYPES.get(desc.get("dtype", ""))
    if dtype is None:
        raise CheckpointError(f"unknown dtype {desc.get('dtype')!r} in checkpoint")
    model = cls(**desc["config"], dtype=dtype, device=device)
    if len(desc["layers"]) != model.depth:
        raise CheckpointError(f"{len(desc['layers'])} layer entries for {model.depth} layers")
    for li, info in enumerate(desc["layers"]):
        _restore_layer(model, li, info, dtype, device)
    for name, p in model.named_parameters():
        p.requires_grad_(bool(desc.get("trainable", {}).get(name, p.requires_grad)))
    _restore_extras(model, desc)
    return model


def _restore_layer(
    model: MultKAN, li: int, info: dict[str, Any], dtype: torch.dtype, device: Any
) -> None:
    basis = model.layers[li].basis
    if isinstance(basis, BSplineBasis):
        _restore_knots(basis, li, info, model.n_nodes(li), dtype, device)
    shape = (*model.layers[li].coef.shape[:2], basis.n_basis)
    model.layers[li].coef = torch.nn.Parameter(torch.zeros(shape, dtype=dtype, device=device))
    sym = model.symbolic[li]
    sym.fn_names = [str(n) for n in info["fn_names"]]
    sym.check_names()


def _restore_knots(
    basis: BSplineBasis, li: int, info: dict[str, Any], n_in: int, dtype: torch.dtype, device: Any
) -> None:
    if "knots" not in info and "grid" not in info:
        raise CheckpointError(f"layer {li}: a B-spline layer without knots")
    knots = torch.tensor(info["knots"] if "knots" in info else info["grid"], dtype=dtype,
                         device=device)  # fmt: skip
    empty = n_in == 0 and knots.numel() == 0  # saved as [] by an input-free model
    if not empty and (knots.dim() != 2 or knots.shape[0] != n_in):
        raise CheckpointError(f"layer {li}: knots of shape {tuple(knots.shape)} for {n_in} inputs")
    if n_in:  # an input-free layer (a constant formula) has no knots to restore
        basis.set_grid(knots)


def _restore_extras(model: MultKAN, desc: dict[str, Any]) -> None:
    """``model.source_formulas`` and ``model.layout`` of a compiled model, checked against it."""
    key = "source_formulas" if "source_formulas" in desc else "formulas"
    if key in desc:
        formulas = desc[key]
        if not (isinstance(formulas, list) and all(isinstance(f, str) for f in formulas)):
            raise CheckpointError(f"{key!r} must be a list of strings")
        if len(formulas) != model.n_outputs:
            raise CheckpointError(f"{len(formulas)} formulas for {model.n_outputs} outputs")
        model.source_formulas = list(formulas)
    if "layout" in desc:
        layout = verify(Layout.from_json(json.dumps(desc["layout"])), "checkpoint")
        if layout.width != model.width or layout.mult_arity != model.mult_arity:
            raise CheckpointError(
                f"layout width {layout.width} does not match the model's {model.width}"
            )
        if list(layout.variables) != list(model.variables):
            raise CheckpointError(
                f"layout variables {list(layout.variables)} differ from {model.variables}"
            )
        model.layout = layout


def clone(model: MultKAN) -> MultKAN:
    """A deep, independent copy of ``model`` (same class, device and dtype)."""
    new = from_description(describe(model), type(model), model.device)
    new.load_state_dict(model.state_dict())
    new.cache_acts = model.cache_acts
    return new


def clone_with_grid(model: MultKAN, n_intervals: int) -> MultKAN:
    """A copy with ``n_intervals`` spline intervals (or, for another basis, its size
    hyper-parameter set to ``n_intervals``: degree, frequencies, centres): everything copied
    but coefs and the basis state."""
    cfg = resized_config(model_config(model), int(n_intervals))
    new = type(model)(**cfg, dtype=model.dtype, device=model.device)
    keep = {k: v for k, v in model.state_dict().items()
            if not (k.endswith(".coef") or ".basis." in k)}  # fmt: skip
    new.load_state_dict(keep, strict=False)
    for li in range(model.depth):
        new.symbolic[li].fn_names = list(model.symbolic[li].fn_names)
    for (_, p), (_, q) in zip(model.named_parameters(), new.named_parameters()):
        q.requires_grad_(p.requires_grad)
    return new
