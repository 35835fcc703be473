"""Drag tasks whose right answer is known, and the exact ε-model they are edited with.

A task moves one rendered object of the data set by a lattice displacement d: the handle is the object's centre
(or the point of its edge that faces the drag direction, ``handle="edge"``), the target is handle + d, the editable
mask is the box around the object at source and target plus ``margin`` px (``margin >= side``: the whole image),
and the right answer is the same object rendered at centre + d — itself a component of the mixture.

Tasks come in groups that share a lattice position and a direction (one per kind × size of the data set), so a
group with a shared handle and target is one batched ``recipes.drag`` call.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..digits.schedules import DiscreteSchedule, exact_eps_model, ddpm_linear
from .data import ShapeSet

__all__ = ["DIRECTIONS", "HANDLES", "SCHEDULES", "DragTask", "make_tasks", "editable_box", "make_schedule",
           "exact_model"]

# the 8 compass directions (row, col); a task's displacement is ``distance`` × one of them
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))
HANDLES: tuple[str, ...] = ("centre", "edge")
SCHEDULES: tuple[str, ...] = ("sd", "ddpm-linear")


@dataclass(frozen=True)
class DragTask:
    """One drag: data-set image ``source_index`` → right answer ``answer_index``; points are (row, col) pixels."""

    kind: str
    size: int
    source_centre: tuple[int, int]
    answer_centre: tuple[int, int]
    handle: tuple[int, int]
    target: tuple[int, int]
    source_index: int
    answer_index: int
    group: int

    @property
    def displacement(self) -> tuple[int, int]:
        return (self.answer_centre[0] - self.source_centre[0], self.answer_centre[1] - self.source_centre[1])

    def to_dict(self) -> dict:
        return asdict(self)


def editable_box(shapes: ShapeSet, task: DragTask, margin: int) -> Tensor:
    """Bool [side, side] mask: the object's box at source and at target, ``margin`` px around (clipped)."""
    side = shapes.side
    ry, rx = shapes.config.reach(task.kind, task.size)
    (sy, sx), (ty, tx) = task.source_centre, task.answer_centre
    m = torch.zeros(side, side, dtype=torch.bool)
    m[max(min(sy, ty) - ry - margin, 0):max(sy, ty) + ry + margin + 1,
      max(min(sx, tx) - rx - margin, 0):max(sx, tx) + rx + margin + 1] = True
    return m


def _handle(shapes: ShapeSet, kind: str, size: int, centre, direction, handle: str) -> tuple[int, int]:
    if handle == "centre":
        return (int(centre[0]), int(centre[1]))
    ry, rx = shapes.config.reach(kind, size)
    return (int(centre[0]) + direction[0] * ry, int(centre[1]) + direction[1] * rx)


def make_tasks(shapes: ShapeSet, n_groups: int, distance: int, seed: int, handle: str = "centre") -> list[DragTask]:
    """``n_groups`` groups of tasks, deterministic in (seed, distance): per group a direction and a lattice centre
    such that centre + distance × direction is on the lattice, then one task per kind × size at that centre.
    ``distance`` (px per axis) must be a multiple of the lattice step."""
    cfg = shapes.config
    if handle not in HANDLES:
        raise ValueError(f"handle must be one of {HANDLES}, got {handle!r}")
    if distance < 1 or distance % cfg.lattice_step:
        raise ValueError(f"drag distance must be a positive multiple of the lattice step {cfg.lattice_step}, "
                         f"got {distance}")
    lattice = set(cfg.centres())
    g = torch.Generator().manual_seed(int(seed) * 1009 + int(distance))
    tasks: list[DragTask] = []
    for grp in range(n_groups):
        direction = DIRECTIONS[int(torch.randint(len(DIRECTIONS), (1,), generator=g))]
        ok = [(cy, cx) for cy, cx in itertools.product(sorted(lattice), sorted(lattice))
              if cy + distance * direction[0] in lattice and cx + distance * direction[1] in lattice]
        if not ok:
            raise ValueError(f"no lattice position admits a drag of {distance} px; use a shorter distance")
        src = ok[int(torch.randint(len(ok), (1,), generator=g))]
        dst = (src[0] + distance * direction[0], src[1] + distance * direction[1])
        for kind, size in itertools.product(cfg.kinds, cfg.sizes):
            h = _handle(shapes, kind, size, src, direction, handle)
            t = (h[0] + dst[0] - src[0], h[1] + dst[1] - src[1])
            tasks.append(DragTask(kind, size, src, dst, h, t, shapes.find(kind, size, src), shapes.find(kind, size, dst),
                                  grp))
    return tasks


def make_schedule(name: str = "sd") -> DiscreteSchedule:
    """``"sd"``: Stable Diffusion's scaled-linear β (0.00085 … 0.012, T = 1000), so t0 = 0.6 is the noise level of
    the paper's drag runs (α ≈ 0.40 at t = 600); ``"ddpm-linear"``: the digits' schedule (α ≈ 0.16 at t = 600)."""
    if name == "sd":
        from theory.schedules import DiscreteDDPM

        cfg = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
        return DiscreteSchedule(torch.as_tensor(DiscreteDDPM.from_diffusers_config(cfg).alphas_cumprod))
    if name == "ddpm-linear":
        return ddpm_linear()
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


def exact_model(shapes: ShapeSet, schedule: DiscreteSchedule, dtype: torch.dtype = torch.float32):
    """The exact ε-model ``model(x, t)`` of the shapes mixture (x [B, 1, side, side] or [B, side²])."""
    return exact_eps_model(shapes.mixture.to(dtype), schedule)
