"""Lowering: formulas -> an exact MultKAN ``Layout`` (a pure function, nothing built).

In: formula text, IR or SymPy (one per output). Out: a verified ``Layout``. Stage: lowering,
above the parser and the passes, below the runtime. Modules: ``pipeline`` (the one public
``lower``: parse, passes, lower, verify), ``expressions`` (IR the passes leave -> interned
nodes, affine handles and terms), ``network`` (nodes placed into layers; ``Term``, ``Sub`` and
``Handle`` records).

>>> lower("sin(x)*exp(y)").depth
1
"""

from __future__ import annotations

from .expressions import lower_canonical
from .network import Handle, Sub, Term
from .pipeline import PASSES, lower, run_passes

__all__ = ["lower", "lower_canonical", "run_passes", "PASSES", "Term", "Sub", "Handle"]
