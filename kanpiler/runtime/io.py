"""Checkpoints and copies of MultKAN models: safetensors + JSON, never pickle.

In: a model and a path. Out: ``path.safetensors`` (every tensor) and ``path.json`` (version,
layout, grids, symbolic assignments, variables; for a compiled model also its formulas and
compiled :class:`~kanpiler.layout.Layout`, restored as ``model.formulas``/``model.layout``).
Stage: runtime. Each file carries the
SHA-256 of the other's content, so a truncated or edited checkpoint is refused with a
:class:`~kanpiler.errors.CheckpointError` instead of loading a silently different model.

>>> import tempfile, os, torch
>>> from kanpiler.runtime import MultKAN, load
>>> model = MultKAN([2, 3, 1], seed=1)
>>> path = os.path.join(tempfile.mkdtemp(), "model")
>>> model.save(path)
>>> x = torch.rand(5, 2)
>>> bool(torch.equal(load(path)(x), model(x)))
True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import CheckpointError, KanpilerError
from .multkan import MultKAN

FORMAT = "kanpiler.multkan"
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16}  # fmt: skip


def config(model: MultKAN) -> dict[str, Any]:
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
    }


def describe(model: MultKAN) -> dict[str, Any]:
    """The JSON description: config, dtype, per-layer grids and symbolic function names (and
    a compiled model's ``formulas`` and ``layout``)."""
    layers = []
    for num, sym in zip(model.layers, model.symbolic):
        layers.append({
            "n_intervals": num.basis.n_intervals,
            "uniform": num.basis.uniform,
            "grid": num.basis.grid.tolist(),
            "fn_names": list(sym.fn_names),
            "symbolic": [[sym.function(i, j) for j in range(sym.out_features)]
                         for i in range(sym.in_features)],
        })  # fmt: skip
    desc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kanpiler_version": __version__,
        "dtype": str(model.dtype).removeprefix("torch."),
        "config": config(model),
        "layers": layers,
        "trainable": {name: p.requires_grad for name, p in model.named_parameters()},
    }
    formulas = getattr(model, "formulas", None)
    if formulas is not None:
        desc["formulas"] = [_formula_text(f) for f in formulas]
    layout = getattr(model, "layout", None)
    if layout is not None:
        desc["layout"] = json.loads(layout.to_json())
    return desc


def _formula_text(formula: Any) -> str:
    from ..ir import Expr
    from ..printing import to_string

    return to_string(formula) if isinstance(formula, Expr) else str(formula)


def build(desc: dict[str, Any], device: torch.device | str | None = None) -> MultKAN:
    """An empty-weighted model with the layout, grids and function names of ``desc``."""
    cfg = desc["config"]
    dtype = _DTYPES.get(desc.get("dtype", ""))
    if dtype is None:
        raise CheckpointError(f"unknown dtype {desc.get('dtype')!r} in checkpoint")
    model = MultKAN(**cfg, dtype=dtype, device=device)
    if len(desc["layers"]) != model.depth:
        raise CheckpointError(f"{len(desc['layers'])} layer entries for {model.depth} layers")
    for li, info in enumerate(desc["layers"]):
        basis = model.layers[li].basis
        knots = torch.tensor(info["grid"], dtype=dtype, device=device)
        n_in = model.n_nodes(li)
        empty = n_in == 0 and knots.numel() == 0  # saved as [] by an input-free model
        if not empty and (knots.dim() != 2 or knots.shape[0] != n_in):
            raise CheckpointError(
                f"layer {li}: knot grid of shape {tuple(knots.shape)} for {n_in} inputs"
            )
        if n_in:  # an input-free layer (a constant formula) has no knots to restore
            basis.set_grid(knots)
        model.layers[li].coef = torch.nn.Parameter(
            torch.zeros(*model.layers[li].coef.shape[:2], basis.n_basis, dtype=dtype, device=device)
        )
        sym = model.symbolic[li]
        sym.fn_names = [str(n) for n in info["fn_names"]]
        sym.check_names()
    for name, p in model.named_parameters():
        p.requires_grad_(bool(desc.get("trainable", {}).get(name, p.requires_grad)))
    _restore_extras(model, desc)
    return model


def _restore_extras(model: MultKAN, desc: dict[str, Any]) -> None:
    """``model.formulas`` and ``model.layout`` of a compiled model, checked against it."""
    if "formulas" in desc:
        formulas = desc["formulas"]
        if not (isinstance(formulas, list) and all(isinstance(f, str) for f in formulas)):
            raise CheckpointError("'formulas' must be a list of strings")
        if len(formulas) != model.n_outputs:
            raise CheckpointError(f"{len(formulas)} formulas for {model.n_outputs} outputs")
        model.formulas = list(formulas)
    if "layout" in desc:
        from ..layout import Layout, verify

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


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _tensor_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(model: MultKAN, path: str | Path) -> None:
    """Write ``path.safetensors`` and ``path.json`` (a ``.safetensors``/``.json`` suffix is
    stripped first). Nothing else is written."""
    from safetensors.torch import save_file

    st_path, json_path = _paths(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    desc = describe(model)
    desc["tensors_sha256"] = _tensor_digest(state)
    text = json.dumps(desc, indent=1)
    json_path.write_text(text)
    meta = {"format": FORMAT, "json_sha256": hashlib.sha256(text.encode()).hexdigest()}
    save_file({k: v.cpu() for k, v in state.items()}, str(st_path), metadata=meta)


def load(path: str | Path, device: torch.device | str | None = None) -> MultKAN:
    """Read a model written by :func:`save`; refuses missing, truncated or edited files."""
    from safetensors import safe_open

    st_path, json_path = _paths(path)
    for p in (st_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file missing: {p}")
    text = json_path.read_text()
    try:
        with safe_open(str(st_path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {st_path}: {err}") from err
    if meta.get("json_sha256") != hashlib.sha256(text.encode()).hexdigest():
        raise CheckpointError(f"{json_path} does not match {st_path} (edited or mismatched)")
    try:
        desc = json.loads(text)
        if desc.get("format") != FORMAT or desc.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{json_path}: not a kanpiler MultKAN checkpoint of a known version"
            )
        if desc.get("tensors_sha256") != _tensor_digest(state):
            raise CheckpointError(f"{st_path}: tensor data does not match its description")
        model = build(desc, device)
        model.load_state_dict(state, strict=True)
    except CheckpointError:
        raise
    except (KanpilerError, KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"invalid checkpoint {json_path}: {err}") from err
    return model


def clone(model: MultKAN) -> MultKAN:
    """A deep, independent copy of ``model`` (same device and dtype)."""
    desc = describe(model)
    new = build(desc, model.device)
    new.load_state_dict(model.state_dict())
    new.cache_acts = model.cache_acts
    return new


def clone_with_grid(model: MultKAN, n_intervals: int) -> MultKAN:
    """A copy with ``n_intervals`` spline intervals: everything copied but coefs and grids."""
    cfg = dict(config(model), grid=int(n_intervals))
    new = MultKAN(**cfg, dtype=model.dtype, device=model.device)
    keep = {k: v for k, v in model.state_dict().items()
            if not (k.endswith(".coef") or k.endswith(".basis.grid"))}  # fmt: skip
    new.load_state_dict(keep, strict=False)
    for li in range(model.depth):
        new.symbolic[li].fn_names = list(model.symbolic[li].fn_names)
    for (_, p), (_, q) in zip(model.named_parameters(), new.named_parameters()):
        q.requires_grad_(p.requires_grad)
    return new
