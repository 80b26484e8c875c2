"""Checkpoints of MultKAN models: safetensors + JSON, never pickle.

In: a model and a path. Out: ``path.safetensors`` (every tensor) and ``path.json`` (the
:func:`~kanpiler.runtime.config.describe` description: version, layout, knots, symbolic
assignments, variables, a compiled model's source formulas and layout). Stage: runtime. Each
file carries the SHA-256 of the other's content, so a truncated or edited checkpoint is refused
with a :class:`~kanpiler.errors.CheckpointError` instead of loading a silently different model.
Saving is crash-safe (temporary files renamed into place; the tensors file carries the
description and is the unit of truth), and loading checks the description's types, bounds and
dtype against the stored tensors before building anything. Checkpoints written before 0.2.0
(tensor ``*.basis.grid``, JSON ``"formulas"``) still load.

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
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, KanpilerError
from . import distributed
from .config import DTYPES, FORMAT, FORMAT_VERSION, describe, from_description

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
    stripped first). Nothing else is left behind.

    Crash-safe: both files are written to temporary files beside the targets and renamed into
    place only when both are complete, the tensors first. The safetensors file is the unit of
    truth: it carries the JSON description in its metadata, so a kill between the two renames,
    or a reader beside a writer, sees either the old or the new model, never a torn one.
    Under ``torch.distributed`` only rank 0 writes (every rank holds the same model).
    """
    if not distributed.is_main():
        return
    st_path, json_path = _paths(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    text = _signed_text(describe(model), _tensor_digest(state))
    meta = {"format": FORMAT, "json_sha256": _sha(text), "description": text}
    tmp_st, tmp_json = _temp_beside(st_path), _temp_beside(json_path)
    try:
        save_file({k: v.cpu() for k, v in state.items()}, str(tmp_st), metadata=meta)
        tmp_json.write_text(text, encoding="utf-8")
        for tmp in (tmp_st, tmp_json):
            _fsync(tmp)
        os.replace(tmp_st, st_path)
        os.replace(tmp_json, json_path)
    finally:
        for tmp in (tmp_st, tmp_json):
            tmp.unlink(missing_ok=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _signed_text(desc: dict[str, Any], digest: str) -> str:
    """The JSON text with the tensors' digest and a digest of the text itself."""
    desc = dict(desc, tensors_sha256=digest)
    desc["self_sha256"] = _sha(json.dumps(desc, indent=1))
    return json.dumps(desc, indent=1)


def _intact(desc: Any) -> bool:
    """Whether ``desc`` is a description exactly as :func:`save` wrote it (not edited)."""
    if not isinstance(desc, dict) or not isinstance(desc.get("self_sha256"), str):
        return False
    rest = {k: v for k, v in desc.items() if k != "self_sha256"}
    return _sha(json.dumps(rest, indent=1)) == desc["self_sha256"]


def _temp_beside(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


#: a checkpoint may not describe a model with more spline coefficients than it stores plus this
SIZE_SLACK = 1_000_000
#: bounds on the numbers of a checkpoint's config
MAX_WIDTH, MAX_GRID, MAX_K, MAX_DEPTH = 100_000, 1_000_000, 20, 10_000


def load(
    path: str | Path, device: torch.device | str | None = None, *, cls: type[MultKAN]
) -> MultKAN:
    """Read a ``cls`` model written by :func:`save`; refuses missing, truncated or edited
    files, and a description that disagrees with the stored tensors (checked before building
    anything). ``kanpiler.load(path)`` and ``MultKAN.load(path)`` call this."""
    st_path, json_path = _paths(path)
    for p in (st_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file missing: {p}")
    meta, state = _read_tensors(st_path)
    text = _description(meta, _read_text(json_path), json_path, st_path)
    try:
        desc = json.loads(text)
        _check_description(desc, json_path)
        if desc.get("tensors_sha256") != _tensor_digest(state):
            raise CheckpointError(f"{st_path}: tensor data does not match its description")
        _check_against_tensors(desc, state, st_path)
        model = from_description(desc, cls, device)
        model.load_state_dict(_renamed(state), strict=True)
    except CheckpointError:
        raise
    except (KanpilerError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"invalid checkpoint {json_path}: {err}") from err
    return model


def _read_text(json_path: Path) -> str:
    try:
        return json_path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{json_path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise CheckpointError(f"cannot read {json_path}: {err}") from None


def _read_tensors(st_path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(st_path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {st_path}: {err}") from err
    return meta, state


def _description(meta: dict[str, str], text: str, json_path: Path, st_path: Path) -> str:
    """The description to trust: the one the tensors file carries (a ``path.json`` left from
    another complete save is stale, not torn); an edited ``path.json`` is refused."""
    inner = meta.get("description")
    if inner is not None and _sha(inner) != meta.get("json_sha256"):
        raise CheckpointError(f"{st_path}: its description does not match its signature")
    if text == inner or (inner is None and meta.get("json_sha256") == _sha(text)):
        return text
    if inner is not None:
        try:
            if _intact(json.loads(text)):
                return inner  # path.json from a save that did not finish; the tensors file rules
        except ValueError:
            pass
    raise CheckpointError(f"{json_path} does not match {st_path} (edited or mismatched)")


def _check_description(desc: Any, json_path: Path) -> None:
    """Types and bounds of the description's fields, before anything is built from them."""
    if not isinstance(desc, dict):
        raise CheckpointError(f"{json_path}: the description is not a JSON object")
    if desc.get("format") != FORMAT or desc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{json_path}: not a kanpiler MultKAN checkpoint of a known version")
    cfg, layers, trainable = desc.get("config"), desc.get("layers"), desc.get("trainable", {})
    if not isinstance(cfg, dict) or not isinstance(layers, list):
        raise CheckpointError(f"{json_path}: 'config' must be an object and 'layers' a list")
    if not (isinstance(trainable, dict) and all(isinstance(v, bool) for v in trainable.values())):
        raise CheckpointError(f"{json_path}: 'trainable' must map parameter names to true/false")
    for key, top in (("grid", MAX_GRID), ("k", MAX_K)):
        v = cfg.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= top:
            raise CheckpointError(f"{json_path}: config {key}={v!r} is not an integer in 1..{top}")
    width = cfg.get("width")
    if not isinstance(width, list) or not 2 <= len(width) <= MAX_DEPTH:
        raise CheckpointError(f"{json_path}: config width must be a list of 2..{MAX_DEPTH} layers")
    for w in width:
        ns = w if isinstance(w, list) else [w]
        if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_WIDTH
                   for n in ns):  # fmt: skip
            raise CheckpointError(f"{json_path}: config width entry {w!r} is not a layer width")


def _check_against_tensors(
    desc: dict[str, Any], state: dict[str, torch.Tensor], where: Path
) -> None:
    """The description agrees with the stored tensors: dtype, and no more coefficients than
    the file holds (so a forged ``grid`` cannot make loading allocate gigabytes)."""
    dtype = DTYPES.get(desc.get("dtype", ""))
    if dtype is None:
        raise CheckpointError(f"unknown dtype {desc.get('dtype')!r} in checkpoint")
    wrong = sorted(k for k, t in state.items() if t.is_floating_point() and t.dtype != dtype)
    if wrong:
        raise CheckpointError(
            f"{where}: tensor {wrong[0]} is {state[wrong[0]].dtype}, the description says {dtype}"
        )
    cfg = desc["config"]
    nodes = [sum(w) if isinstance(w, list) else w for w in cfg["width"]]
    implied = sum(a * b for a, b in zip(nodes, nodes[1:])) * (cfg["grid"] + cfg["k"])
    stored = sum(t.numel() for t in state.values())
    if implied > stored + SIZE_SLACK:
        raise CheckpointError(
            f"{where}: config (width {cfg['width']}, grid {cfg['grid']}) describes about "
            f"{implied} coefficients but the file stores {stored} numbers"
        )
