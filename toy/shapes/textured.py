"""The ``textured`` family: one object over one of several structured backgrounds (issue 20).

The background is part of the scene: an image is ``bg_v · (1 − c) + fg · c`` with c the object's anti-aliased
coverage and bg_v = ``background + contrast · pattern_v`` one of the fixed patterns in [0, 1] below (gradients,
stripes, checks, a fixed smoothed noise texture).  SDE-Drag's copy-and-paste then carries the *source* background
into the target window and leaves β·patch + noise (a hole) at the source, so the pasted state is off the data in a
way a uniform background never is; the right answer (the object moved, the background unchanged) is still a data
image.  ``contrast = 0`` is the one-object family (every background flat at ``background``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .data import ShapeConfig
from .scenes import VariantSet, build_variant_set, coverage

__all__ = ["BACKGROUNDS", "TexturedConfig", "background_pattern", "build_textured"]

BACKGROUNDS: tuple[str, ...] = ("gradient-h", "gradient-v", "stripes", "stripes-d", "checks", "noise")


def background_pattern(name: str, side: int, period: int = 8, noise_seed: int = 7) -> Tensor:
    """A [side, side] pattern in [0, 1] (float64): linear gradients, vertical or diagonal stripes and checks of
    ``period`` px (hard, pixel-aligned), or a fixed noise texture (seeded Gaussian noise box-blurred twice over
    5×5 px, rescaled to [0, 1])."""
    r = torch.arange(side, dtype=torch.float64)[:, None].expand(side, side)
    c = torch.arange(side, dtype=torch.float64)[None, :].expand(side, side)
    half = max(period // 2, 1)
    if name == "gradient-h":
        return c / (side - 1)
    if name == "gradient-v":
        return r / (side - 1)
    if name == "stripes":
        return (torch.div(c, half, rounding_mode="floor") % 2).clone()
    if name == "stripes-d":
        return (torch.div(r + c, half, rounding_mode="floor") % 2).clone()
    if name == "checks":
        return ((torch.div(r, half, rounding_mode="floor") + torch.div(c, half, rounding_mode="floor")) % 2).clone()
    if name == "noise":
        z = torch.randn(1, 1, side, side, generator=torch.Generator().manual_seed(int(noise_seed)),
                        dtype=torch.float64)
        k = torch.full((1, 1, 5, 5), 1.0 / 25, dtype=torch.float64)
        for _ in range(2):
            z = torch.nn.functional.conv2d(torch.nn.functional.pad(z, (2, 2, 2, 2), mode="reflect"), k)
        z = z[0, 0]
        return (z - z.min()) / (z.max() - z.min())
    raise ValueError(f"unknown background {name!r}; choose from {BACKGROUNDS}")


@dataclass
class TexturedConfig(ShapeConfig):
    """One object (kinds × sizes on the lattice, as :class:`ShapeConfig`) over one of ``backgrounds``; the
    background is ``background + contrast · pattern``."""

    backgrounds: tuple = ("gradient-h", "stripes", "checks", "noise")   # one of each type; any of BACKGROUNDS
    contrast: float = 0.5            # background amplitude (the object stands ``foreground − background`` above -1)
    period: int = 8                  # stripes / checks period (px)
    noise_seed: int = 7              # the fixed noise texture's seed

    def __post_init__(self) -> None:
        super().__post_init__()
        self.backgrounds = tuple(self.backgrounds)
        bad = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if not self.backgrounds or bad or len(set(self.backgrounds)) < len(self.backgrounds):
            raise ValueError(f"backgrounds must be distinct names from {BACKGROUNDS}, got {list(self.backgrounds)}")
        if not (math.isfinite(float(self.contrast)) and 0.0 <= float(self.contrast) < self.foreground - self.background):
            raise ValueError(f"contrast must be in [0, foreground - background), got {self.contrast}")
        if int(self.period) < 2:
            raise ValueError(f"period must be >= 2 px, got {self.period}")

    def variants(self) -> tuple[str, ...]:
        return self.backgrounds

    def background_image(self, name: str) -> Tensor:
        return self.background + float(self.contrast) * background_pattern(name, self.side, self.period,
                                                                          self.noise_seed)

    def draw(self, kind: str, size: int, variant: str, centre) -> Tensor:
        """[side, side] float64: the object over background ``variant``."""
        cov = coverage(kind, size, centre, self.side, self.supersample)
        return self.background_image(variant) * (1 - cov) + self.foreground * cov


def build_textured(cfg: TexturedConfig | None = None) -> VariantSet:
    return build_variant_set(TexturedConfig() if cfg is None else cfg)
