"""Drag tasks whose right answer is known, and the exact ε-model they are edited with.

A task moves one rendered object of the data set by a lattice displacement d: the handle is the object's centre
(or the point of its edge that faces the drag direction, ``handle="edge"``), the target is handle + d, the editable
mask is the box around the object at source and target plus ``margin`` px (``margin >= side``: the whole image),
and the right answer is the same object rendered at centre + d — itself a component of the mixture.

Tasks come in groups that share a lattice position and a direction (one per kind × size of the data set), so a
group with a shared handle and target is one batched ``recipes.drag`` call.

Two-object scenes (:mod:`.pairs`, family ``pair``): a :class:`PairTask` moves one object of a scene and the other
must stay.  The other object sits near the path (its box ``gap`` … ``near`` px from the box swept by the moving
object, so every scene along the path is a data scene) and the editable mask covers it too (the box of the moving
object at source and target and the other object's box, ``margin`` px around each), so only the drag, not the
mask, keeps it in place.  The right answer is the scene with only the dragged object moved.  Per group: one
handle / target / other position, one task per (which kind moves) × size of the mover × size of the other.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..digits.schedules import DiscreteSchedule, exact_eps_model, ddpm_linear
from .data import ShapeSet

__all__ = ["DIRECTIONS", "HANDLES", "SCHEDULES", "FAMILIES", "DragTask", "PairTask", "make_tasks",
           "make_pair_tasks", "editable_box", "make_schedule", "exact_model"]

# the 8 compass directions (row, col); a task's displacement is ``distance`` × one of them
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))
HANDLES: tuple[str, ...] = ("centre", "edge")
SCHEDULES: tuple[str, ...] = ("sd", "ddpm-linear")
FAMILIES: tuple[str, ...] = ("single", "pair", "textured", "shaded")   # one object / two objects / over a
# structured background / shaded or outlined (issue 20)


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


@dataclass(frozen=True)
class PairTask(DragTask):
    """A drag in a two-object scene: ``kind``/``size`` moves, ``other_kind``/``other_size`` at ``other_centre`` must
    stay; ``source_index`` / ``answer_index`` are scene ids of the :class:`~toy.shapes.pairs.PairSet`."""

    other_kind: str = ""
    other_size: int = 0
    other_centre: tuple[int, int] = (0, 0)


def editable_box(shapes, task: DragTask, margin: int) -> Tensor:
    """Bool [side, side] mask: the object's box at source and at target, ``margin`` px around (clipped); for a
    :class:`PairTask` also the other object's box, ``margin`` px around."""
    side = shapes.side
    ry, rx = shapes.config.reach(task.kind, task.size)
    (sy, sx), (ty, tx) = task.source_centre, task.answer_centre
    m = torch.zeros(side, side, dtype=torch.bool)
    m[max(min(sy, ty) - ry - margin, 0):max(sy, ty) + ry + margin + 1,
      max(min(sx, tx) - rx - margin, 0):max(sx, tx) + rx + margin + 1] = True
    if isinstance(task, PairTask):
        oy, ox = shapes.config.reach(task.other_kind, task.other_size)
        cy, cx = task.other_centre
        m[max(cy - oy - margin, 0):cy + oy + margin + 1, max(cx - ox - margin, 0):cx + ox + margin + 1] = True
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


def make_pair_tasks(pairs, n_groups: int, distance: int, seed: int, handle: str = "centre",
                    near: int = 3) -> list[PairTask]:
    """``n_groups`` groups of two-object tasks, deterministic in (seed, distance): per group a direction, a lattice
    centre for the moving object (centre + distance × direction on the lattice) and a lattice centre for the other
    object whose box is ``gap`` … ``near`` px from the box spanned by the moving object at source and target (for
    every size), then one task per (moving kind) × (moving size) × (other size)."""
    cfg = pairs.config
    if handle not in HANDLES:
        raise ValueError(f"handle must be one of {HANDLES}, got {handle!r}")
    if distance < 1 or distance % cfg.lattice_step:
        raise ValueError(f"drag distance must be a positive multiple of the lattice step {cfg.lattice_step}, "
                         f"got {distance}")
    if near < cfg.gap:
        raise ValueError(f"near ({near}) must be >= the pair gap ({cfg.gap})")
    grid = cfg.centres()
    lattice = set(grid)
    pts = torch.tensor(list(itertools.product(grid, grid)))                    # [P, 2] lattice centres
    reach = torch.tensor([max(cfg.reach(k, s)[0] for k in cfg.kinds for s in cfg.sizes),
                          max(cfg.reach(k, s)[1] for k in cfg.kinds for s in cfg.sizes)])
    g = torch.Generator().manual_seed(int(seed) * 1013 + int(distance) + 7)
    tasks: list[PairTask] = []
    for grp in range(n_groups):
        direction = DIRECTIONS[int(torch.randint(len(DIRECTIONS), (1,), generator=g))]
        d = torch.tensor(direction) * distance
        src_ok = pts[[(int(p[0]) + int(d[0])) in lattice and (int(p[1]) + int(d[1])) in lattice for p in pts]]
        # the box spanned by the mover at source and target: centre = midpoint (×2 to stay integral), reach + |d|/2
        span_c2 = 2 * src_ok + d                                               # [S, 2] doubled centres
        span_r2 = 2 * reach + d.abs()                                          # doubled reach
        # empty px between the boxes, in doubled coordinates (exact: the numerator is even)
        apart = ((span_c2[:, None, :] - 2 * pts[None, :, :]).abs() - span_r2 - 2 * reach - 2).max(-1).values // 2
        ok = (apart >= cfg.gap) & (apart <= near)                              # [S, P]
        have = ok.any(1).nonzero()[:, 0]
        if len(have) == 0:
            raise ValueError(f"no lattice position admits a {distance} px drag next to another object")
        s = int(have[int(torch.randint(len(have), (1,), generator=g))])
        cands = ok[s].nonzero()[:, 0]
        o = int(cands[int(torch.randint(len(cands), (1,), generator=g))])
        src = (int(src_ok[s, 0]), int(src_ok[s, 1]))
        dst = (src[0] + int(d[0]), src[1] + int(d[1]))
        oc = (int(pts[o, 0]), int(pts[o, 1]))
        for (kind, other), size, osize in itertools.product((cfg.kinds, cfg.kinds[::-1]), cfg.sizes, cfg.sizes):
            h = _handle(pairs, kind, size, src, direction, handle)
            t = (h[0] + dst[0] - src[0], h[1] + dst[1] - src[1])
            tasks.append(PairTask(kind, size, src, dst, h, t, pairs.find((kind, size, src), (other, osize, oc)),
                                  pairs.find((kind, size, dst), (other, osize, oc)), grp, other, osize, oc))
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


def exact_model(shapes, schedule: DiscreteSchedule, dtype: torch.dtype = torch.float32):
    """The exact ε-model ``model(x, t)`` of the shapes (or pairs) mixture (x [B, 1, side, side] or [B, side²])."""
    return exact_eps_model(shapes.mixture.to(dtype), schedule)
