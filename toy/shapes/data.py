"""Rendered shapes and their exact mixture: the data of the drag test bed.

Images are ``side × side`` grayscale in [−1, 1] (background −1, object +1, anti-aliased edges from ``supersample``²
sub-pixel samples), one object per image: a disc, a square or a horizontal bar of a few sizes, centred on the pixel
(cy, cx) of a lattice of positions (stride ``lattice_step``, default 1: every pixel at least ``border`` px from the
edge, so every intermediate point of a drag path is itself a data-set position).  Every rendered image is one component of an exact
pixel-space Gaussian mixture (:class:`toy.digits.mixture.DigitMixture`): equal weights, mean = the image, covariance
s² I with the digits' isotropic s (``MixtureConfig().iso_std`` = 0.08).  The digits' low-rank local-PCA term models
handwriting variation; here the only variation is the lattice itself, so the components are isotropic (rank 0) and
ε, the score and log p_t are closed-form at every noise level (``exact_eps_model`` of :mod:`toy.digits.schedules`).
Two-object scenes (a disc and a square in one image) are the data of the ``pair`` family, :mod:`.pairs`.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from ..digits.mixture import DigitMixture, MixtureConfig

__all__ = ["KINDS", "ShapeConfig", "ShapeSet", "render", "build_shapes"]

KINDS: tuple[str, ...] = ("disc", "square", "bar")


@dataclass
class ShapeConfig:
    """What is rendered: image side, object kinds and half-sizes, the lattice of centres, the component width."""

    side: int = 32
    kinds: tuple = ("disc", "square")
    sizes: tuple = (3, 5)            # disc radius / square half-side / bar half-height (bar half-width = 2 × size)
    lattice_step: int = 1            # centres on a lattice with this stride (1: every point of a drag path is a
    border: int = 6                  # data-set position) at least ``border`` px from the image border
    foreground: float = 1.0
    background: float = -1.0
    supersample: int = 4             # sub-pixel samples per axis for anti-aliased edges
    iso_std: float = field(default_factory=lambda: MixtureConfig().iso_std)   # the digits' isotropic std s

    def __post_init__(self) -> None:
        self.kinds, self.sizes = tuple(self.kinds), tuple(int(s) for s in self.sizes)
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown shape kind(s) {bad}; choose from {KINDS}")
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be positive integers, got {self.sizes}")
        if self.lattice_step < 1 or self.supersample < 1 or not self.iso_std > 0:
            raise ValueError("lattice_step and supersample must be >= 1 and iso_std > 0")
        if not self.centres():
            raise ValueError(f"no lattice centre fits: side {self.side}, border {self.border}, sizes {self.sizes}")

    def reach(self, kind: str, size: int) -> tuple[int, int]:
        """Half-extent (rows, cols) of the object in whole pixels around its centre pixel."""
        return (size, 2 * size) if kind == "bar" else (size, size)

    def centres(self) -> list[int]:
        """Lattice coordinates (one axis) where every kind and size fits with ``border`` px to spare."""
        lo = max(self.border, max(2 * s for s in self.sizes) if "bar" in self.kinds else max(self.sizes))
        return list(range(lo, self.side - lo, self.lattice_step))

    def to_dict(self) -> dict:
        return asdict(self)


def render(kind: str, size: int, centre, side: int = 32, foreground: float = 1.0, background: float = -1.0,
           supersample: int = 4, dtype: torch.dtype = torch.float64) -> Tensor:
    """One [side, side] image: the object ``kind`` of half-size ``size`` centred on pixel ``centre`` = (row, col)
    (its geometric centre is the pixel centre), coverage from ``supersample``² sub-pixel samples per pixel."""
    cy, cx = (float(c) + 0.5 for c in centre)
    n = side * supersample
    sub = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample
    yy, xx = sub[:, None] - cy, sub[None, :] - cx
    if kind == "disc":
        inside = yy ** 2 + xx ** 2 <= (size + 0.5) ** 2
    elif kind == "square":
        inside = (yy.abs() <= size + 0.5) & (xx.abs() <= size + 0.5)
    elif kind == "bar":
        inside = (yy.abs() <= size + 0.5) & (xx.abs() <= 2 * size + 0.5)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; choose from {KINDS}")
    cover = inside.to(torch.float64).reshape(side, supersample, side, supersample).mean((1, 3))
    return (background + (foreground - background) * cover).to(dtype)


class SceneGeometry:
    """``side`` and ``dim`` (= side², the flat pixel vector's length) of a data set with a ``config.side``."""

    @property
    def side(self) -> int:
        return self.config.side  # type: ignore[attr-defined]

    @property
    def dim(self) -> int:
        return self.config.side ** 2  # type: ignore[attr-defined]


@dataclass
class ShapeSet(SceneGeometry):
    """The rendered data set: ``images`` [K, side²] (row-major), per image its kind, size and centre, the exact
    mixture with one component per image, and a lookup (kind, size, cy, cx) → component index."""

    config: ShapeConfig
    images: Tensor
    kinds: list[str]
    sizes: list[int]
    centres: list[tuple[int, int]]
    mixture: DigitMixture
    index: dict

    def __len__(self) -> int:
        return len(self.kinds)

    def find(self, kind: str, size: int, centre) -> int:
        """Component index of ``kind``/``size`` at ``centre``; KeyError if that image is not in the data set."""
        key = (kind, int(size), int(centre[0]), int(centre[1]))
        if key not in self.index:
            raise KeyError(f"{kind} of size {size} at {tuple(centre)} is not a lattice image of this data set")
        return self.index[key]

    def images_of(self, ids) -> Tensor:
        """The images [len(ids), side²] of component ids (the same call as :meth:`PairSet.images_of`)."""
        return self.images[list(ids)]

    def as_image(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-1], self.side, self.side)

    def as_rows(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-2], self.dim)


def build_shapes(cfg: ShapeConfig | None = None, dtype: torch.dtype = torch.float64) -> ShapeSet:
    """Render every (kind, size, lattice centre) image and build the isotropic mixture around them."""
    cfg = ShapeConfig() if cfg is None else cfg
    grid = cfg.centres()
    imgs, kinds, sizes, centres, index = [], [], [], [], {}
    for kind, size, cy, cx in itertools.product(cfg.kinds, cfg.sizes, grid, grid):
        index[(kind, size, cy, cx)] = len(imgs)
        imgs.append(render(kind, size, (cy, cx), cfg.side, cfg.foreground, cfg.background, cfg.supersample, dtype))
        kinds.append(kind), sizes.append(size), centres.append((cy, cx))
    means = torch.stack(imgs).reshape(len(imgs), -1)
    k, d = means.shape
    mix = DigitMixture(torch.full((k,), 1.0 / k, dtype=dtype), means, torch.zeros(k, d, 0, dtype=dtype),
                       torch.zeros(k, 0, dtype=dtype), torch.tensor(cfg.iso_std ** 2, dtype=dtype))
    return ShapeSet(cfg, means, kinds, sizes, centres, mix, index)
