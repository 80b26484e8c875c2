"""Attribution, pruning and checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import kanpiler
from kanpiler.errors import CheckpointError
from kanpiler.runtime import MultKAN

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return name


def _mixed_model(dtype: torch.dtype = torch.float64) -> MultKAN:
    m = MultKAN([3, [3, 2], [1, 1], 1], mult_arity=[0, [2, 3], 2, 0], seed=4, dtype=dtype)
    m.set_symbolic(0, 1, 2, "sin", 1.5, 0.2, 0.7, 0.1)
    m.set_symbolic(1, 0, 1, "x^2", 0.5, 0.0, 1.0, 0.0)
    with torch.no_grad():
        for p in (*m.node_bias, *m.subnode_scale):
            p.add_(0.1)
    return m


def test_attribution_matches_a_plain_computation() -> None:
    m = _mixed_model()
    x = torch.rand(200, 3, dtype=torch.float64) * 2 - 1
    scores = m.attribute(x)
    _, rec = m.run(x, record=True)
    node = np.ones(1)
    for li in reversed(range(m.depth)):
        # subnode scores: sum nodes copy, each subnode of a mult node inherits the node's
        sub = np.concatenate(
            [node[: m.width[li + 1][0]]]
            + [np.full(a, node[m.width[li + 1][0] + k]) for k, a in enumerate(m.mult_arity[li + 1])]
        )
        edge_std = rec.edge_acts[li].detach().numpy().std(axis=0, ddof=1)
        sub_std = rec.subnode_acts[li].detach().numpy().std(axis=0, ddof=1)
        edge = edge_std * sub[None, :] / (sub_std[None, :] + 1e-4)
        np.testing.assert_allclose(scores["edge_scores"][li].numpy(), edge, rtol=1e-10)
        node = edge.sum(1)
        np.testing.assert_allclose(scores["node_scores"][li].numpy(), node, rtol=1e-10)


def test_prune_returns_a_copy_that_computes_the_kept_function() -> None:
    m = _mixed_model()
    x = torch.rand(300, 3, dtype=torch.float64) * 2 - 1
    before = [p.detach().clone() for p in m.parameters()]
    scores = m.attribute(x)["node_scores"]
    ranked = torch.sort(scores[1]).values
    th = float(ranked[1] + ranked[2]) / 2  # drop the two weakest nodes of layer 1
    small = m.prune(x, node_th=th, edge_th=0.0, fold_constants=False)
    assert all(torch.equal(p, q) for p, q in zip(before, m.parameters()))  # original untouched
    assert sum(small.width[1]) == 3
    # the original with the dropped nodes' outgoing edges switched off gives the same outputs
    with torch.no_grad():
        for li in (1, 2):
            dropped = scores[li] <= th
            if dropped.all():
                dropped[torch.argmax(scores[li])] = False
            assert sum(small.width[li]) == int((~dropped).sum())
            m.layers[li].mask[dropped] = 0.0
            m.symbolic[li].mask[dropped] = 0.0
    torch.testing.assert_close(small(x), m(x), atol=1e-13, rtol=0)


def test_prune_edges_and_never_nan() -> None:
    m = MultKAN([2, 4, 1], seed=0, dtype=torch.float64)
    x = torch.rand(100, 2, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        m.layers[0].mask[:, 1:] = 0.0  # three dead hidden nodes: constant outgoing edges
    small = m.prune(x)  # their constant values are folded into the output subnode's bias
    assert small.width[1] == [1, 0]
    torch.testing.assert_close(small(x), m(x), atol=1e-13, rtol=0)
    # everything below threshold: each hidden layer keeps its best node, outputs stay finite
    tiny = m.prune(x, node_th=1e9, edge_th=1e9)
    assert tiny.width[1] == [1, 0] and torch.isfinite(tiny(x)).all()
    with torch.no_grad():
        m.layers[0].mask.zero_()
    dead = m.prune(x)
    assert torch.isfinite(dead(x)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checkpoint_round_trip_is_bit_identical(tmp_path, dtype: torch.dtype) -> None:
    m = _mixed_model(dtype)
    x = torch.rand(64, 3, dtype=dtype) * 2 - 1
    m.update_grid(x)  # non-uniform grids survive too
    m.variables = ["a", "b", "c"]
    m.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    back = kanpiler.load(tmp_path / "model")
    assert torch.equal(back(x), m(x))
    assert back.variables == ["a", "b", "c"] and back.width == m.width
    assert back.symbolic[0].function(1, 2) == "sin"
    desc = json.loads((tmp_path / "model.json").read_text())
    assert desc["layers"][0]["symbolic"][1][2] == "sin" and desc["dtype"] == str(dtype)[6:]


def test_corrupted_checkpoints_are_refused(tmp_path) -> None:
    m = _mixed_model()
    m.save(tmp_path / "m")
    st, js = tmp_path / "m.safetensors", tmp_path / "m.json"
    data, text = st.read_bytes(), js.read_text()
    st.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read"):
        kanpiler.load(tmp_path / "m")
    flipped = bytearray(data)
    flipped[-3] ^= 0x40  # a tensor byte
    st.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="does not match"):
        kanpiler.load(tmp_path / "m")
    st.write_bytes(data)
    js.write_text(text.replace('"sin"', '"cos"'))
    with pytest.raises(CheckpointError, match="edited"):
        kanpiler.load(tmp_path / "m")
    js.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        kanpiler.load(tmp_path / "m")


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_loads_onto_a_device(tmp_path, device: str) -> None:
    dev = _device(device)
    m = _mixed_model()
    m.save(tmp_path / "m")
    back = kanpiler.runtime.load(tmp_path / "m", device=dev)
    x = torch.rand(16, 3, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(back(x.to(dev)).cpu(), m(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_input_free_model_round_trips_bit_for_bit(tmp_path, dtype: torch.dtype) -> None:
    m = kanpiler.compile("3", dtype=dtype)
    assert m.n_inputs == 0
    m.save(tmp_path / "c")
    back = kanpiler.load(tmp_path / "c")
    x = torch.zeros(5, 0, dtype=dtype)
    assert torch.equal(back(x), m(x))
    assert torch.equal(back(x), torch.full((5, 1), 3.0, dtype=dtype))
    for (name, p), (_, q) in zip(m.state_dict().items(), back.state_dict().items()):
        assert torch.equal(p, q), name
    assert back.source_formulas == ["3"] and back.layout == m.layout


def test_compiled_model_keeps_layout_and_formulas(tmp_path) -> None:
    m = kanpiler.compile(["x*y", "sin(x) + exp(-y)"], dtype=torch.float64)
    m.save(tmp_path / "c")
    back = kanpiler.load(tmp_path / "c")
    assert back.layout == m.layout and back.source_formulas == m.source_formulas
    desc = json.loads((tmp_path / "c.json").read_text())
    assert desc["source_formulas"] == m.source_formulas
    assert desc["layout"] == json.loads(m.layout.to_json())
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    a, b = x[:, 0].numpy(), x[:, 1].numpy()
    want = np.stack([a * b, np.sin(a) + np.exp(-b)], axis=1)
    np.testing.assert_allclose(back(x).detach().numpy(), want, rtol=1e-12, atol=1e-12)
    plain = MultKAN([2, 1], seed=0)
    plain.save(tmp_path / "p")
    back = kanpiler.load(tmp_path / "p")
    assert back.layout is None and back.source_formulas is None


def _resign(tmp_path, name: str, desc: dict) -> None:
    """Rewrite a checkpoint's JSON and re-sign it, as a consistent but wrong pair."""
    import hashlib

    from safetensors.torch import load_file, save_file

    text = json.dumps(desc)
    (tmp_path / f"{name}.json").write_text(text)
    tensors = load_file(str(tmp_path / f"{name}.safetensors"))
    meta = {"format": "kanpiler.multkan", "json_sha256": hashlib.sha256(text.encode()).hexdigest()}
    save_file(tensors, str(tmp_path / f"{name}.safetensors"), metadata=meta)


def test_bad_layout_or_formulas_in_checkpoint_are_refused(tmp_path) -> None:
    m = kanpiler.compile(["x*y", "sin(x)"], dtype=torch.float64)
    m.save(tmp_path / "c")
    good = json.loads((tmp_path / "c.json").read_text())
    text = (tmp_path / "c.json").read_text()
    (tmp_path / "c.json").write_text(text.replace('"x*y"', '"x*z"'))
    with pytest.raises(CheckpointError, match="edited"):  # unsigned edit
        kanpiler.load(tmp_path / "c")
    cases = [
        (lambda d: d["layout"].pop("nodes"), "not a layout"),
        (lambda d: d["layout"].__setitem__("variables", ["y", "x"]), "variables"),
        (lambda d: d["layout"]["nodes"].pop(), "layout|node"),
        (lambda d: d["layout"].__setitem__("edges", 7), "layout|edge"),
        (lambda d: d.__setitem__("source_formulas", ["x*y"]), "1 formulas for 2 outputs"),
        (lambda d: d.__setitem__("source_formulas", [1, 2]), "list of strings"),
        (lambda d: d["layers"][0].__setitem__("knots", [[0.0, 1.0]]), "knots of shape"),
    ]
    for edit, match in cases:
        desc = json.loads(json.dumps(good))
        edit(desc)
        _resign(tmp_path, "c", desc)
        with pytest.raises(CheckpointError, match=match):
            kanpiler.load(tmp_path / "c")
    _resign(tmp_path, "c", good)  # the signing helper itself keeps a good pair loadable
    assert kanpiler.load(tmp_path / "c").source_formulas == ["x*y", "sin(x)"]


def _old_format(tmp_path, name: str, model: MultKAN) -> None:
    """Write ``model`` as a checkpoint of the format before 0.2.0: tensor ``*.basis.grid``,
    per-layer JSON ``"grid"`` and top-level ``"formulas"``, signed like the old writer did."""
    import hashlib

    from safetensors.torch import save_file

    from kanpiler.runtime.checkpoint import _tensor_digest

    state = {k.replace(".basis.knots", ".basis.grid"): v.detach().cpu().contiguous()
             for k, v in model.state_dict().items()}  # fmt: skip
    desc = json.loads(json.dumps(kanpiler.runtime.config.describe(model)))
    for layer in desc["layers"]:
        layer["grid"] = layer.pop("knots")
    desc["formulas"] = desc.pop("source_formulas")
    desc["tensors_sha256"] = _tensor_digest(state)
    text = json.dumps(desc, indent=1)
    (tmp_path / f"{name}.json").write_text(text)
    meta = {"format": "kanpiler.multkan", "json_sha256": hashlib.sha256(text.encode()).hexdigest()}
    save_file(state, str(tmp_path / f"{name}.safetensors"), metadata=meta)


def test_checkpoint_of_the_old_format_still_loads(tmp_path) -> None:
    m = kanpiler.compile(["x*y", "sin(x) + 1"], dtype=torch.float64)
    with torch.no_grad():  # a numeric edge too, so the old knot tensors carry information
        m.layers[0].mask[0, 0] = 1.0
        m.layers[0].basis.set_grid(m.layers[0].basis.knots * 1.5)
    _old_format(tmp_path, "old", m)
    assert "layers.0.basis.grid" in (tmp_path / "old.safetensors").read_bytes().decode("latin1")
    back = kanpiler.load(tmp_path / "old")
    assert back.source_formulas == ["x*y", "sin(x) + 1"] and back.layout == m.layout
    assert torch.equal(back.layers[0].knots, m.layers[0].knots)
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    assert torch.equal(back(x), m(x))
    exact = kanpiler.compile(["x*y", "sin(x) + 1"], dtype=torch.float64)
    assert not torch.allclose(back(x), exact(x))  # the moved knots and the spline came back


def test_plot_labels_edges_with_the_symbolic_report() -> None:
    m = MultKAN([2, 1], grid=5, seed=0, dtype=torch.float64)
    x = torch.rand(400, 2, dtype=torch.float64) * 2 - 1
    y = torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    m.fit(x, y, steps=5, progress=False)
    kanpiler.auto_symbolic(m, x=x, progress=False)
    report = m.symbolic_report.candidates()

    def titles(fig) -> list[str]:
        return [ax.get_title() for ax in fig.axes]

    default = titles(m.plot(x))
    assert default == [f"{c[0][0]} (r²={c[0][1]:.3f})" for c in report.values()]
    assert default[0].startswith("sin") and m.symbolic_report.edges[0].r2 > 0.999
    explicit = titles(m.plot(x, candidates={(0, 1, 0): "mine"}))
    assert explicit == ["", "mine"]
    assert titles(MultKAN([2, 1], seed=0).plot()) == ["", ""]
