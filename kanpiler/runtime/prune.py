"""Attribution scores (KAN 2.0) and pruning of MultKAN models.

In: a model and inputs ``x`` (or the activations cached by the last forward, both through
``MultKAN.record``). Out: node, subnode and edge scores; ``prune`` returns a NEW, smaller model
(the original is never modified). Stage: runtime, before symbolic fitting.

Scores flow backwards from the outputs: an edge's score is its activation spread (std over
the batch) times the score of the subnode it feeds, divided by that subnode's spread; a node's
score is the sum of the scores of its outgoing edges; each subnode of a multiplication node
inherits the node's score.

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([2, 4, 1], seed=0)
>>> small = model.prune(torch.rand(100, 2) * 2 - 1, node_th=0.5)
>>> small.width[1][0] <= 4
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import ShapeError
from .config import model_config
from .structure import Record

if TYPE_CHECKING:
    from .multkan import MultKAN


def node_to_subnode(model: MultKAN, li: int, score: torch.Tensor) -> torch.Tensor:
    """Scores of node layer ``l``'s subnodes: each inherits the score of the node owning it."""
    owners = [node for node, _ in model.subnode_owner(li)]
    return score[torch.tensor(owners, dtype=torch.long, device=score.device)]


def attribute(model: MultKAN, x: torch.Tensor | None = None) -> dict[str, list[torch.Tensor]]:
    """``{"node_scores": [per node layer], "subnode_scores": [per node layer >= 1],
    "edge_scores": [per KAN layer, (in, out)]}`` averaged over the outputs."""
    return _scores(model, _finite_record(model, x))


def _finite_record(model: MultKAN, x: torch.Tensor | None) -> Record:
    """``model.record(x)``, refused when it holds NaN or infinite values: their scores would
    prune at random."""
    rec = model.record(x)
    source = "x" if x is not None else "the cached activations"
    if not bool(torch.isfinite(rec.acts[0]).all()):
        raise ShapeError(f"{source} holds NaN or infinite inputs; attribution needs finite data")
    for li, a in enumerate(rec.acts[1:], start=1):
        if not bool(torch.isfinite(a).all()):
            raise ShapeError(
                f"the activations of node layer {li} on {source} are NaN or infinite "
                "(inputs outside the model's domain?); attribution needs finite values"
            )
    return rec


def _scores(model: MultKAN, rec: Record) -> dict[str, list[torch.Tensor]]:
    with torch.no_grad():
        n_out = model.n_outputs
        node = torch.full((n_out,), 1.0 / n_out, dtype=model.dtype, device=model.device)
        nodes, subnodes, edges = [node], [], []
        for li in reversed(range(model.depth)):
            edge_spread = _spread(rec.edge_acts[li])
            sub_spread = _spread(rec.subnode_acts[li])
            sub = node_to_subnode(model, li + 1, node)
            edge = edge_spread * (sub / (sub_spread + 1e-4)).unsqueeze(0)
            node = edge.sum(dim=1)
            nodes.append(node)
            subnodes.append(sub)
            edges.append(edge)
    return {
        "node_scores": nodes[::-1],
        "subnode_scores": [torch.empty(0), *subnodes[::-1]],
        "edge_scores": edges[::-1],
    }


def _spread(acts: torch.Tensor) -> torch.Tensor:
    std = acts.std(dim=0) if acts.shape[0] > 1 else torch.zeros_like(acts[0])
    return torch.nan_to_num(std, nan=0.0, posinf=0.0)


def subset(model: MultKAN, keep: list[list[int]]) -> MultKAN:
    """A NEW model with only the nodes ``keep[l]`` of every node layer (sorted indices).

    Every kept edge, grid, symbolic assignment and affine parameter is copied, so the new
    model computes what the old one computes with the dropped nodes' edges switched off.
    """
    width, arity = [], []
    for li, kept in enumerate(keep):
        n_sum = model.width[li][0]
        sums = [i for i in kept if i < n_sum]
        mults = [i - n_sum for i in kept if i >= n_sum]
        width.append([len(sums), len(mults)])
        arity.append([model.mult_arity[li][m] for m in mults])
    cfg = dict(model_config(model), width=width, mult_arity=arity)
    new = type(model)(**cfg, dtype=model.dtype, device=model.device)
    with torch.no_grad():
        for li in range(model.depth):
            _copy_layer(model, new, li, keep[li], _subnodes(model, li + 1, keep[li + 1]))
    return new


def _subnodes(model: MultKAN, li: int, kept: list[int]) -> list[int]:
    """The subnodes of the nodes ``kept`` of node layer ``l``, in order."""
    return [s for node in kept for s in model.node_subnodes(li, node)]


def _copy_layer(old: MultKAN, new: MultKAN, li: int, rows: list[int], cols: list[int]) -> None:
    dev = old.device
    r = torch.tensor(rows, dtype=torch.long, device=dev)
    c = torch.tensor(cols, dtype=torch.long, device=dev)
    src, dst = old.layers[li], new.layers[li]
    dst.basis = src.basis.select(r)
    dst.coef = torch.nn.Parameter(src.coef[r][:, c].clone(), requires_grad=src.coef.requires_grad)
    for name in ("scale_base", "scale_sp"):
        getattr(dst, name).copy_(getattr(src, name)[r][:, c])
    dst.mask.copy_(src.mask[r][:, c])
    s_src, s_dst = old.symbolic[li], new.symbolic[li]
    s_dst.fn_names = list(s_src.fn_names)
    s_dst.affine.copy_(s_src.affine[r][:, c])
    s_dst.mask.copy_(s_src.mask[r][:, c])
    s_dst.fn_ids.copy_(s_src.fn_ids[r][:, c])
    owners = old.subnode_owner(li + 1)
    kept_nodes = sorted({owners[s][0] for s in cols})
    n = torch.tensor(kept_nodes, dtype=torch.long, device=dev)
    new.subnode_scale[li].copy_(old.subnode_scale[li][c])
    new.subnode_bias[li].copy_(old.subnode_bias[li][c])
    new.node_scale[li].copy_(old.node_scale[li][n])
    new.node_bias[li].copy_(old.node_bias[li][n])
    for name in ("subnode_scale", "subnode_bias", "node_scale", "node_bias"):
        getattr(new, name)[li].requires_grad_(getattr(old, name)[li].requires_grad)


def prune(
    model: MultKAN,
    x: torch.Tensor | None = None,
    *,
    node_th: float = 1e-2,
    edge_th: float = 3e-2,
    prune_edges: bool = True,
    fold_constants: bool = True,
) -> MultKAN:
    """A NEW model without hidden nodes scoring ``<= node_th`` and edges scoring ``< edge_th``.

    Inputs and outputs are kept; every hidden layer keeps at least its best node, so the
    network never becomes empty (and the loss never NaN). Pruned edges have both masks off.
    With ``fold_constants`` the mean value of every removed edge (over ``x``) is added to the
    bias of the subnode it fed, so edges that were (nearly) constant leave the outputs as
    they were; without it the new model equals the old one with those edges switched off.
    """
    rec = _finite_record(model, x)
    scores = _scores(model, rec)
    keep = [list(range(model.n_nodes(0)))]
    for li in range(1, model.depth):
        s = scores["node_scores"][li]
        kept = torch.nonzero(s > node_th).flatten().tolist()
        keep.append(kept or [int(torch.argmax(torch.nan_to_num(s, nan=-1.0)))])
    keep.append(list(range(model.n_outputs)))
    new = subset(model, keep)
    with torch.no_grad():
        for li in range(model.depth):
            cols = _subnodes(model, li + 1, keep[li + 1])
            removed = torch.ones(
                model.n_nodes(li), len(cols), dtype=torch.bool, device=model.device
            )
            removed[keep[li]] = False
            if prune_edges:
                off = ~(scores["edge_scores"][li][keep[li]][:, cols] >= edge_th)
                new.layers[li].mask[off] = 0.0
                new.symbolic[li].mask[off] = 0.0
                removed[keep[li]] = off
            if fold_constants:
                mean = torch.nan_to_num(rec.edge_acts[li][:, :, cols].mean(dim=0))
                shift = (mean * removed).sum(dim=0) * model.subnode_scale[li][cols]
                new.subnode_bias[li].add_(shift)
    return new
