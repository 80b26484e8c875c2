"""Checkpoints survive failed and interrupted saves, readers beside writers, and forged files."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
import torch

import kanpiler
from kanpiler.errors import CheckpointError
from kanpiler.runtime import MultKAN


def _model(seed: int, dtype: torch.dtype = torch.float64) -> MultKAN:
    return MultKAN([2, 3, 1], grid=4, seed=seed, dtype=dtype)


def _same(a: MultKAN, b: MultKAN) -> bool:
    x = torch.linspace(-1, 1, 14, dtype=a.dtype).reshape(7, 2)
    return bool(torch.equal(a(x), b(x)))


def _forge(tmp_path: Path, name: str, desc: dict) -> None:
    """Rewrite a checkpoint's description and re-sign it, as a consistent but forged pair."""
    from safetensors.torch import load_file, save_file

    text = json.dumps(desc)
    (tmp_path / f"{name}.json").write_text(text)
    tensors = load_file(str(tmp_path / f"{name}.safetensors"))
    meta = {"format": "kanpiler.multkan", "json_sha256": hashlib.sha256(text.encode()).hexdigest()}
    save_file(tensors, str(tmp_path / f"{name}.safetensors"), metadata=meta)


def _files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("failing", ["tensors", "json"])
def test_a_failing_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failing) -> None:
    old, new = _model(1), _model(2)
    old.save(tmp_path / "m")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    if failing == "tensors":
        from kanpiler.runtime import checkpoint

        monkeypatch.setattr(checkpoint, "save_file", boom)
    else:
        monkeypatch.setattr(Path, "write_text", boom)
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left
    assert _same(kanpiler.load(tmp_path / "m"), old)


def test_an_interrupted_save_leaves_one_whole_model(tmp_path, monkeypatch) -> None:
    """A kill between the two renames: the loaded model is the old or the new one, whole."""
    old, new = _model(1), _model(2)
    old.save(tmp_path / "m")
    real = os.replace
    calls: list[str] = []

    def first_only(src, dst):
        calls.append(str(dst))
        if len(calls) > 1:
            raise KeyboardInterrupt  # the process dies after the first rename
        real(src, dst)

    monkeypatch.setattr(os, "replace", first_only)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    back = kanpiler.load(tmp_path / "m")
    assert _same(back, new) or _same(back, old)
    assert _files(tmp_path) == ["m.json", "m.safetensors"]


def test_readers_beside_a_writer_never_see_a_torn_checkpoint(tmp_path) -> None:
    models = [_model(1), _model(2)]
    models[0].save(tmp_path / "m")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 200:
            models[i % 2].save(tmp_path / "m")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(40):
            back = kanpiler.load(tmp_path / "m")
            assert _same(back, models[0]) or _same(back, models[1])
    finally:
        stop.set()
        thread.join()


def test_non_utf8_json_is_a_checkpoint_error(tmp_path) -> None:
    _model(1).save(tmp_path / "m")
    (tmp_path / "m.json").write_bytes(b"\xff\xfe{not text")
    with pytest.raises(CheckpointError, match="UTF-8"):
        kanpiler.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.__setitem__("trainable", "abc"), "trainable"),
        (lambda d: d["trainable"].__setitem__("layers.0.coef", "yes"), "trainable"),
        (lambda d: d["config"].__setitem__("grid", 20_000_000), "grid|coefficients"),
        (lambda d: d["config"].__setitem__("grid", 300_000_000), "grid"),
        (lambda d: d["config"].__setitem__("grid", "5"), "grid"),
        (lambda d: d["config"].__setitem__("width", [2, 10**7, 1]), "width"),
        (lambda d: d["config"].__setitem__("width", "2,3,1"), "width"),
        (lambda d: d.__setitem__("config", []), "config"),
        (lambda d: d.__setitem__("dtype", "float32"), "float"),
    ],
)
def test_forged_descriptions_are_refused_before_allocating(tmp_path, edit, match) -> None:
    _model(1).save(tmp_path / "m")
    desc = json.loads((tmp_path / "m.json").read_text())
    desc.pop("self_sha256", None)
    edit(desc)
    _forge(tmp_path, "m", desc)
    with pytest.raises(CheckpointError, match=match):
        kanpiler.load(tmp_path / "m")


def test_tensors_of_another_dtype_are_refused(tmp_path) -> None:
    """float32 tensors under a float64 description (consistently signed) do not load."""
    from safetensors.torch import load_file, save_file

    _model(1).save(tmp_path / "m")
    desc = json.loads((tmp_path / "m.json").read_text())
    tensors = {k: v.float() if v.is_floating_point() else v
               for k, v in load_file(str(tmp_path / "m.safetensors")).items()}  # fmt: skip
    save_file(tensors, str(tmp_path / "m.safetensors"))
    desc.pop("self_sha256", None)
    from kanpiler.runtime.checkpoint import _tensor_digest

    desc["tensors_sha256"] = _tensor_digest(tensors)
    _forge(tmp_path, "m", desc)
    with pytest.raises(CheckpointError, match="float32"):
        kanpiler.load(tmp_path / "m")


def test_save_writes_only_the_two_files(tmp_path) -> None:
    _model(1).save(tmp_path / "m.safetensors")
    _model(2).save(tmp_path / "m")
    assert _files(tmp_path) == ["m.json", "m.safetensors"]
    assert _same(kanpiler.load(tmp_path / "m.json"), _model(2))
