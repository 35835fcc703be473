"""The latent edits of SDE-Drag (Nie et al. 2024, Sec. 5), shared by every task that drags: the copy-and-paste
at t0 and the number of drag operations.  Spatial positions are index tuples over the last ``k`` dimensions of
the state (``(row, col)`` for images and latents, ``(i,)`` for 1-D signals).
"""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

from .noise import NoiseSource

__all__ = ["patch_bounds", "copy_paste", "num_drag_steps"]

Index = Sequence[int]


def patch_bounds(src: Index, tgt: Index, r: int, shape: Sequence[int]) -> list[tuple[int, int]]:
    """Per spatial axis, the half-sizes (below, above) of the window shared by ``src`` and ``tgt``.

    Each is ``r`` shrunk so the window fits around *both* points: below = min(r, s, t),
    above = min(r, n−1−s, n−1−t); the window around p is [p − below, p + above] on every axis, i.e. (2r+1)^k away
    from the borders, and the same shape at source and target.
    """
    if not (len(src) == len(tgt) == len(shape)):
        raise ValueError(f"points {tuple(src)}, {tuple(tgt)} do not match the spatial shape {tuple(shape)}")
    out = []
    for s, t, n in zip(src, tgt, shape):
        if not (0 <= s < n and 0 <= t < n):
            raise ValueError(f"point {tuple(src)} or {tuple(tgt)} outside the spatial shape {tuple(shape)}")
        out.append((min(r, s, t), min(r, n - 1 - s, n - 1 - t)))
    return out


def copy_paste(
    x: Tensor,
    sources: Sequence[Index],
    targets: Sequence[Index],
    r: int,
    alpha: float = 1.1,
    beta: float = 0.3,
    noise: NoiseSource | None = None,
) -> Tensor:
    """SDE-Drag's copy-and-paste: target window ← α·P, source window ← β·P + √(1−β²)·z, with P the source window.

    Pairs are applied in order; for each, P is read before anything of that pair is written and the target is
    written last, so it wins where the two windows overlap.  ``z = noise(k, P)`` for pair k.  Returns a new tensor.
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    scale = math.sqrt(max(1.0 - beta * beta, 0.0))
    if noise is None and scale > 0.0:
        raise ValueError("copy_paste needs a noise source when beta < 1")
    out = x.clone()
    for k, (src, tgt) in enumerate(zip(sources, targets)):
        src, tgt = tuple(int(v) for v in src), tuple(int(v) for v in tgt)
        spatial = out.shape[out.dim() - len(src):]
        bounds = patch_bounds(src, tgt, int(r), spatial)
        src_sl = (...,) + tuple(slice(p - lo, p + hi + 1) for p, (lo, hi) in zip(src, bounds))
        tgt_sl = (...,) + tuple(slice(p - lo, p + hi + 1) for p, (lo, hi) in zip(tgt, bounds))
        patch = out[src_sl].clone()
        fresh = beta * patch
        if scale > 0.0:
            fresh = fresh + scale * noise(k, patch)  # type: ignore[misc]
        out[src_sl] = fresh
        out[tgt_sl] = alpha * patch
    return out


def num_drag_steps(distance: float, step_size: float) -> int:
    """Number m of drag operations for the largest move ``distance``: 1 if D ≤ step, else ⌊D/step⌋, or ⌊D/step⌋ + 1
    when that makes D/m strictly closer to ``step_size`` (official SDE-Drag rule)."""
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if distance <= step_size:
        return 1
    m = int(distance // step_size)
    return m + 1 if abs(distance / (m + 1) - step_size) < abs(distance / m - step_size) else m
