"""Drag inputs: image, points and editable mask, checked and brought onto the latent grid.

Points are (x, y) image pixels; on the latent grid they are ``p // factor`` (the official
``div(8, rounding_mode='trunc')``) and are handed to the recipes as (row, col) = (y, x).  The pixel mask is
thresholded once (white / >= 128 / > 0.5 = editable) and reaches the latent grid by the preset's rule
(:func:`sdimage.latents.mask_to_latent`: ``"bicubic"`` for the official preset, ``"area"`` for the clean and fast ones).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .errors import SdImageError

__all__ = ["Point", "validate_points", "points_to_latent", "DRAG_MASK_RULE", "as_image_tensor", "as_mask"]

Point = tuple[int, int]
DRAG_MASK_RULE = {"official": "bicubic", "clean": "area", "fast": "area"}


def validate_points(sources, targets, width: int, height: int) -> tuple[list[Point], list[Point]]:
    """Check pixel points: equal non-zero counts (at most :data:`sdimage.settings.MAX_POINTS` pairs), inside the
    image, source != target.  Raises :class:`SdImageError`."""
    from .settings import MAX_POINTS

    if len(sources) > MAX_POINTS or len(targets) > MAX_POINTS:
        raise SdImageError(f"{max(len(sources), len(targets))} points: at most {MAX_POINTS} handle/target pairs")
    sources = [tuple(int(v) for v in p) for p in sources]
    targets = [tuple(int(v) for v in p) for p in targets]
    if not sources or len(sources) != len(targets):
        raise SdImageError(f"need matching source/target points, got {len(sources)} sources and {len(targets)} targets")
    for name, pts in (("source", sources), ("target", targets)):
        for p in pts:
            if len(p) != 2:
                raise SdImageError(f"{name} point {p} is not (x, y)")
            if not (0 <= p[0] < width and 0 <= p[1] < height):
                raise SdImageError(f"{name} point ({p[0]}, {p[1]}) is outside the {width}x{height} image")
    for s, t in zip(sources, targets):
        if s == t:
            raise SdImageError(f"source and target are the same point ({s[0]}, {s[1]})")
    return sources, targets  # type: ignore[return-value]


def points_to_latent(points: Sequence[Point], factor: int) -> list[Point]:
    """Image pixels → latent pixels by integer division (the official ``div(8, rounding_mode='trunc')``)."""
    return [(int(p[0]) // factor, int(p[1]) // factor) for p in points]


def as_image_tensor(image) -> Tensor:
    """PIL image / path / uint8 array / tensor → float32 (1, 3, H, W) in [−1, 1]."""
    from .latents import load_image

    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Tensor):
        x = image if image.dim() == 4 else image.unsqueeze(0)
        return x.float()
    from .metrics import to_tensor

    return to_tensor(image)


def as_mask(mask, height: int, width: int) -> Tensor | None:
    """Editable-pixel mask (True = editable) as a bool (1, 1, H, W) tensor; size must equal the image's."""
    import numpy as np

    if mask is None:
        return None
    if hasattr(mask, "convert"):  # PIL: grey > 127 (>= 128) is editable
        mask = np.asarray(mask.convert("L")) >= 128
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2:
        raise SdImageError(f"mask must be a single-channel H×W array, got shape {tuple(m.shape)}")
    if tuple(m.shape) != (height, width):
        raise SdImageError(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {width}x{height}")
    if m.dtype != torch.bool:
        m = m.float()
        m = m > (0.5 if float(m.max()) <= 1.0 else 127.5)
    return m[None, None]


