"""Scenes with a variant: one object drawn in one of several *variants* (a background, a shading style), the common
code of the ``textured`` (:mod:`.textured`) and ``shaded`` (:mod:`.shaded`) families.

Each image is (kind, size, variant, lattice centre), rendered by the family's :meth:`VariantSet.render_object`; the
data distribution is the exact mixture with one isotropic component per image (equal weights, s² I, s = 0.08, as
the one-object family), built as a :class:`toy.digits.mixture.DigitMixture` of rank 0, so ε, the score and log p_t
are closed-form at every noise level.  A few thousand to ~10⁴ components of 1024 pixels: a dense mixture costs a
few ms per call for a batch of 4, so no factorisation is needed here (the ~10⁵ pair scenes need one).

Tasks (:func:`make_variant_tasks`): per group a compass direction, a lattice centre (as :func:`make_tasks`) and a
variant, then one task per kind × size; the right answer is the same object in the same variant at centre + d — a
data image — so for the textured family the background stays where it is and only the object moves.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..digits.mixture import DigitMixture
from .data import SceneGeometry, render
from .tasks import DIRECTIONS, HANDLES, DragTask, _handle

__all__ = ["VariantTask", "VariantSet", "build_variant_set", "make_variant_tasks", "coverage"]


@dataclass(frozen=True)
class VariantTask(DragTask):
    """A one-object drag in a variant scene: ``variant`` names the background (textured) or the style (shaded)."""

    variant: str = ""


def coverage(kind: str, size: int, centre, side: int, supersample: int) -> Tensor:
    """Anti-aliased coverage in [0, 1] of the object ([side, side], float64)."""
    return render(kind, size, centre, side, 1.0, 0.0, supersample, torch.float64)


@dataclass
class VariantSet(SceneGeometry):
    """Rendered images of every (kind, size, variant, centre), their exact mixture and an index.  ``config``: a
    :class:`~toy.shapes.textured.TexturedConfig` or :class:`~toy.shapes.shaded.ShadedConfig` (a ShapeConfig with
    ``variants()`` and ``draw(kind, size, variant, centre)``)."""

    config: object
    images: Tensor
    kinds: list[str]
    sizes: list[int]
    variants: list[str]
    centres: list[tuple[int, int]]
    mixture: DigitMixture
    index: dict

    def __len__(self) -> int:
        return len(self.kinds)

    def find(self, kind: str, size: int, centre, variant: str = "") -> int:
        key = (kind, int(size), variant, int(centre[0]), int(centre[1]))
        if key not in self.index:
            raise KeyError(f"{kind} of size {size} in {variant!r} at {tuple(centre)} is not an image of this data set")
        return self.index[key]

    def images_of(self, ids) -> Tensor:
        return self.images[list(ids)]

    def render_object(self, kind: str, size: int, variant: str, centre) -> Tensor:
        """The image [side²] of ``kind``/``size`` in ``variant`` at any integer ``centre`` where it fits."""
        return self.config.draw(kind, size, variant, centre).reshape(-1)  # type: ignore[attr-defined]

    def as_image(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-1], self.side, self.side)

    def as_rows(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-2], self.dim)


def build_variant_set(cfg, dtype: torch.dtype = torch.float64) -> VariantSet:
    """Render every (kind, size, variant, lattice centre) image and build the isotropic mixture around them."""
    grid = cfg.centres()
    imgs, kinds, sizes, variants, centres, index = [], [], [], [], [], {}
    for kind, size, var, cy, cx in itertools.product(cfg.kinds, cfg.sizes, cfg.variants(), grid, grid):
        index[(kind, size, var, cy, cx)] = len(imgs)
        imgs.append(cfg.draw(kind, size, var, (cy, cx)).reshape(-1))
        kinds.append(kind), sizes.append(size), variants.append(var), centres.append((cy, cx))
    means = torch.stack(imgs).to(dtype)
    k, d = means.shape
    mix = DigitMixture(torch.full((k,), 1.0 / k, dtype=dtype), means, torch.zeros(k, d, 0, dtype=dtype),
                       torch.zeros(k, 0, dtype=dtype), torch.tensor(cfg.iso_std ** 2, dtype=dtype))
    return VariantSet(cfg, means, kinds, sizes, variants, centres, mix, index)


def make_variant_tasks(data: VariantSet, n_groups: int, distance: int, seed: int, handle: str = "centre"
                       ) -> list[VariantTask]:
    """``n_groups`` groups, deterministic in (seed, distance): per group a direction, a lattice centre with
    centre + distance × direction on the lattice, and a variant; one task per kind × size."""
    cfg = data.config
    if handle not in HANDLES:
        raise ValueError(f"handle must be one of {HANDLES}, got {handle!r}")
    if distance < 1 or distance % cfg.lattice_step:
        raise ValueError(f"drag distance must be a positive multiple of the lattice step {cfg.lattice_step}, "
                         f"got {distance}")
    lattice = sorted(set(cfg.centres()))
    variants = list(cfg.variants())
    g = torch.Generator().manual_seed(int(seed) * 1019 + int(distance) + 11)
    tasks: list[VariantTask] = []
    for grp in range(n_groups):
        direction = DIRECTIONS[int(torch.randint(len(DIRECTIONS), (1,), generator=g))]
        ok = [(cy, cx) for cy, cx in itertools.product(lattice, lattice)
              if cy + distance * direction[0] in lattice and cx + distance * direction[1] in lattice]
        if not ok:
            raise ValueError(f"no lattice position admits a drag of {distance} px; use a shorter distance")
        src = ok[int(torch.randint(len(ok), (1,), generator=g))]
        var = variants[int(torch.randint(len(variants), (1,), generator=g))]
        dst = (src[0] + distance * direction[0], src[1] + distance * direction[1])
        for kind, size in itertools.product(cfg.kinds, cfg.sizes):
            h = _handle(data, kind, size, src, direction, handle)
            t = (h[0] + dst[0] - src[0], h[1] + dst[1] - src[1])
            tasks.append(VariantTask(kind, size, src, dst, h, t, data.find(kind, size, src, var),
                                     data.find(kind, size, dst, var), grp, var))
    return tasks

