"""The ``shaded`` family: objects with an intensity gradient or an outline on the flat background (issue 20).

An image is ``bg · (1 − c) + I · c`` with c the object's anti-aliased coverage and I its intensity: a linear ramp
from ``low`` to ``foreground`` across the object's box (top → bottom for ``gradient-v``, left → right for
``gradient-h``, evaluated at pixel centres), or for ``outline`` a 1 px rim at ``foreground`` around an interior at
``low`` (rim = coverage of size s minus coverage of size s − 1).  SDE-Drag's α = 1.1 then scales a ramp into values
no data image has, and the window's edge cuts through shading, so the paste is off the data; the right answer (the
same shaded object moved) is a data image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .data import ShapeConfig
from .scenes import VariantSet, build_variant_set, coverage

__all__ = ["STYLES", "ShadedConfig", "build_shaded"]

STYLES: tuple[str, ...] = ("gradient-v", "gradient-h", "outline")


@dataclass
class ShadedConfig(ShapeConfig):
    """One object (kinds × sizes on the lattice, as :class:`ShapeConfig`) in one of ``styles`` over the flat
    ``background``; intensities run from ``low`` to ``foreground``."""

    styles: tuple = STYLES
    low: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.styles = tuple(self.styles)
        bad = [s for s in self.styles if s not in STYLES]
        if not self.styles or bad or len(set(self.styles)) < len(self.styles):
            raise ValueError(f"styles must be distinct names from {STYLES}, got {list(self.styles)}")
        if not self.background < float(self.low) < self.foreground:
            raise ValueError(f"low must lie strictly between background and foreground, got {self.low}")

    def variants(self) -> tuple[str, ...]:
        return self.styles

    def draw(self, kind: str, size: int, variant: str, centre) -> Tensor:
        """[side, side] float64: the object in style ``variant``."""
        cov = coverage(kind, size, centre, self.side, self.supersample)
        lo, hi = float(self.low), float(self.foreground)
        if variant == "outline":
            inner = coverage(kind, size - 1, centre, self.side, self.supersample) if size > 1 else torch.zeros_like(cov)
            return self.background * (1 - cov) + hi * (cov - inner) + lo * inner
        if variant not in ("gradient-v", "gradient-h"):
            raise ValueError(f"unknown style {variant!r}; choose from {STYLES}")
        ry, rx = self.reach(kind, size)
        axis, c0, reach = (0, centre[0], ry) if variant == "gradient-v" else (1, centre[1], rx)
        u = torch.arange(self.side, dtype=torch.float64) - (c0 - reach - 0.5)    # 0 … 2·reach + 1 across the box
        ramp = (lo + (hi - lo) * (u / (2 * reach + 1))).clamp(lo, hi)
        inten = ramp[:, None].expand(self.side, self.side) if axis == 0 else ramp[None, :].expand(self.side, self.side)
        return self.background * (1 - cov) + inten * cov


def build_shaded(cfg: ShadedConfig | None = None) -> VariantSet:
    return build_variant_set(ShadedConfig() if cfg is None else cfg)
