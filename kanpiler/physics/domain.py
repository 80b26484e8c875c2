"""Rectangular domains and collocation points: uniform, mesh and Sobol sampling, faces.

In: the lower and upper corners of a box (and input names). Out: ``(N, n)`` point tensors
inside the box or on its faces, drawn with a private ``torch.Generator``; residual-based
resampling of a candidate pool. Stage: physics (data for :func:`kanpiler.physics.solve`).

>>> box = Box([-1, 0], [1, 2], names=("x", "t"))
>>> box.interior(16, "mesh").shape
torch.Size([16, 2])
>>> bool(box.contains(box.boundary(8)).all())
True
>>> box.face("t", "low", 5)[:, 1].tolist()
[0.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError, ShapeError

SAMPLING = ("uniform", "mesh", "sobol")


class Box:
    """The box ``lo <= x <= hi`` in ``n`` dimensions, with named inputs."""

    def __init__(
        self,
        lo: Sequence[float],
        hi: Sequence[float],
        names: Sequence[str] | None = None,
        *,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if len(lo) != len(hi) or not lo:
            raise ShapeError(f"box corners need the same length >= 1, got {list(lo)}, {list(hi)}")
        if any(not b > a for a, b in zip(lo, hi)):
            raise ShapeError(f"box needs lo < hi in every dimension, got {list(lo)}, {list(hi)}")
        self.lo = torch.tensor([float(v) for v in lo], dtype=dtype)
        self.hi = torch.tensor([float(v) for v in hi], dtype=dtype)
        self.dim = len(lo)
        self.names = (
            tuple(names) if names is not None else tuple(f"x{i + 1}" for i in range(self.dim))
        )
        if len(self.names) != self.dim:
            raise ShapeError(f"{len(self.names)} names {self.names} for a {self.dim}-D box")
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"Box({self.lo.tolist()}, {self.hi.tolist()}, names={self.names})"

    def index(self, name: str | int) -> int:
        if isinstance(name, int) and 0 <= name < self.dim:
            return name
        if name in self.names:
            return self.names.index(name)
        raise ShapeError(f"the box has no input {name!r}; inputs are {list(self.names)}")

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        """``(N,)`` bool: which points lie in the box (up to ``tol`` times its size)."""
        slack = tol * (self.hi - self.lo).to(x)
        return ((x >= self.lo.to(x) - slack) & (x <= self.hi.to(x) + slack)).all(dim=1)

    def check(self, x: torch.Tensor, what: str) -> None:
        """Raise a ``ShapeError`` naming the first point of ``x`` outside the box."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ShapeError(f"{what}: points must be (N, {self.dim}), got {tuple(x.shape)}")
        bad = (~self.contains(x)).nonzero()
        if len(bad):
            i = int(bad[0])
            raise ShapeError(
                f"{what}: point {i} = {x[i].tolist()} lies outside the domain {self!r} "
                f"({len(bad)} of {len(x)} points outside)"
            )

    def interior(
        self, n: int, method: str = "uniform", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` points inside the box (``mesh``: the nearest full tensor mesh, open ends)."""
        unit = _unit(n, self.dim, method, generator, self.dtype, open_mesh=True)
        return self.lo + unit * (self.hi - self.lo)

    def face(
        self, name: str | int, side: str, n: int, method: str = "uniform",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """``n`` points on the face ``x[name] = lo`` (``side="low"``) or ``= hi`` (``"high"``)."""
        if side not in ("low", "high"):
            raise ConfigError(f"face side must be 'low' or 'high', got {side!r}")
        i = self.index(name)
        if self.dim == 1:
            return (self.lo if side == "low" else self.hi).reshape(1, 1).expand(n, 1).clone()
        unit = _unit(n, self.dim - 1, method, generator, self.dtype, open_mesh=False)
        unit = torch.cat([unit[:, :i], torch.zeros(len(unit), 1, dtype=self.dtype), unit[:, i:]], 1)
        pts = self.lo + unit * (self.hi - self.lo)
        pts[:, i] = self.lo[i] if side == "low" else self.hi[i]
        return pts

    def boundary(
        self, n: int, method: str = "uniform", generator: torch.Generator | None = None,
        exclude: Sequence[tuple[str | int, str]] = (),
    ) -> torch.Tensor:  # fmt: skip
        """About ``n`` points on the faces (shared by face area), minus the ``exclude``d
        faces, e.g. ``exclude=[("t", "high")]`` for a time-dependent problem."""
        skip = {(self.index(a), s) for a, s in exclude}
        faces = [(i, s) for i in range(self.dim) for s in ("low", "high") if (i, s) not in skip]
        size = self.hi - self.lo
        areas = [float(torch.prod(size) / size[i]) for i, _ in faces]
        total = sum(areas)
        parts = [
            self.face(i, s, max(1, round(n * a / total)), method, generator)
            for (i, s), a in zip(faces, areas)
        ]
        return torch.cat(parts)


def _unit(n, dim, method, generator, dtype, open_mesh: bool) -> torch.Tensor:
    if method not in SAMPLING:
        raise ConfigError(f"sampling {method!r}: use one of {', '.join(SAMPLING)}")
    if n < 1:
        raise ConfigError(f"need at least one point, got n={n}")
    if method == "mesh":
        per = max(1, round(n ** (1 / dim))) if dim else 1
        axis = torch.linspace(0, 1, per + 2 if open_mesh else per, dtype=dtype)
        axis = (
            axis[1:-1] if open_mesh else (axis if per > 1 else torch.full((1,), 0.5, dtype=dtype))
        )
        grids = torch.meshgrid(*([axis] * dim), indexing="ij")
        return torch.stack([g.flatten() for g in grids], 1)
    if method == "sobol":
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator else 0
        engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed)
        return engine.draw(n, dtype=torch.float64).to(dtype)
    return torch.rand(n, dim, generator=generator, dtype=torch.float64).to(dtype)


def resample(
    pool: torch.Tensor, score: torch.Tensor, n: int, generator: torch.Generator | None = None,
    power: float = 2.0, floor: float = 1.0,
) -> torch.Tensor:  # fmt: skip
    """``n`` of the ``pool`` points drawn without replacement with probability proportional
    to ``score^power / mean(score^power) + floor`` (residual-based adaptive sampling: dense
    where the residual is large, never empty elsewhere)."""
    if n > len(pool):
        raise ConfigError(f"cannot draw {n} points from a pool of {len(pool)}")
    w = score.detach().abs().double().reshape(len(pool), -1).amax(1) ** power
    w = w / w.mean().clamp_min(torch.finfo(w.dtype).tiny) + floor
    w = torch.nan_to_num(w, nan=floor, posinf=floor)
    idx = torch.multinomial(w, n, replacement=False, generator=generator)
    return pool[idx]


def mesh_size(n: int, dim: int) -> int:
    """Number of points :meth:`Box.interior` returns for ``n`` requested on a mesh."""
    return max(1, round(n ** (1 / dim))) ** dim if dim else 1


__all__ = ["Box", "resample", "mesh_size", "SAMPLING"]
