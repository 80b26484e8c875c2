"""Checkpoints of MultKAN models: safetensors + JSON, never pickle.

In: a model and a path. Out: ``path.safetensors`` (every tensor) and ``path.json`` (the
:func:`~kanpiler.runtime.config.describe` description: version, layout, knots, symbolic
assignments, variables, a compiled model's source formulas and layout). Stage: runtime. Each
file carries the SHA-256 of the other's content, so a truncated or edited checkpoint is refused
with a :class:`~kanpiler.errors.CheckpointError` instead of loading a silently different model.
Checkpoints written before 0.2.0 (tensor ``*.basis.grid``, JSON ``"formulas"``) still load.

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
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, KanpilerError
from . import distributed
from .config import FORMAT, FORMAT_VERSION, describe, from_description

if TYPE_CHECKING:
    from .multkan import MultKAN

__all__ = ["save", "load"]

OLD_SUFFIXES = {".basis.grid": ".basis.knots"}  # tensor names before 0.2.0


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


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensor names of an old checkpoint mapped to the current ones."""
    out = {}
    for name, t in state.items():
        for old, new in OLD_SUFFIXES.items():
            if name.endswith(old):
                name = name[: -len(old)] + new
        out[name] = t
    return out


def save(model: MultKAN, path: str | Path) -> None:
    """Write ``path.safetensors`` and ``path.json`` (a ``.safetensors``/``.json`` suffix is
    stripped first). Nothing else is written. Under ``torch.distributed`` only rank 0 writes
    (every rank holds the same model)."""
    if not distributed.is_main():
        return
    st_path, json_path = _paths(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    desc = describe(model)
    desc["tensors_sha256"] = _tensor_digest(state)
    text = json.dumps(desc, indent=1)
    json_path.write_text(text)
    meta = {"format": FORMAT, "json_sha256": hashlib.sha256(text.encode()).hexdigest()}
    save_file({k: v.cpu() for k, v in state.items()}, str(st_path), metadata=meta)


def _read(st_path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(st_path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {st_path}: {err}") from err
    return meta, state


def load(
    path: str | Path, device: torch.device | str | None = None, *, cls: type[MultKAN]
) -> MultKAN:
    """Read a ``cls`` model written by :func:`save`; refuses missing, truncated or edited
    files. ``kanpiler.load(path)`` and ``MultKAN.load(path)`` call this."""
    st_path, json_path = _paths(path)
    for p in (st_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file missing: {p}")
    text = json_path.read_text()
    meta, state = _read(st_path)
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
        model = from_description(desc, cls, device)
        model.load_state_dict(_renamed(state), strict=True)
    except CheckpointError:
        raise
    except (KanpilerError, KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"invalid checkpoint {json_path}: {err}") from err
    return model
