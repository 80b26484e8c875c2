"""The converter: trained or compiled networks back to graphs, formulas and trees.

In: a ``MultKAN`` (or any differentiable callable, for :func:`tree`). Out: a networkx graph,
SymPy formulas, fitted symbolic edges, a separability tree. Stage: convert (the reverse of
compile).

    model --to_graph--> networkx graph --formula--> SymPy, one per output (snapped, simplified)
    trained model --auto_symbolic--> symbolic edges;  symbolic_pipeline = prune+fit+tune+formula
    any callable + samples --tree--> separability tree --skeleton--> "f = F(x + y) * z"
"""

from __future__ import annotations

from .autosym import SymbolicReport, auto_symbolic
from .cleanup import round_constants
from .constants import snap_constants
from .extract import formula
from .graph import to_graph
from .pipeline import PipelineResult, symbolic_pipeline
from .trees import skeleton, tree

__all__ = [
    "to_graph",
    "formula",
    "auto_symbolic",
    "symbolic_pipeline",
    "snap_constants",
    "round_constants",
    "tree",
    "skeleton",
    "SymbolicReport",
    "PipelineResult",
]
