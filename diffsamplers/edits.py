"""The latent edits of SDE-Drag (Nie et al. 2024, Sec. 5): the copy-and-paste at t0, the number of drag operations
and the path of the points.  Spatial positions are index tuples over the last ``k`` dimensions of the state
(``(row, col)`` for images and latents, ``(i,)`` for 1-D signals).

Each rule comes in two versions (:mod:`diffsamplers.presets`; ``"fast"`` uses the clean rules):

- ``"official"`` reproduces the official code (ML-GSAI/SDE-Drag, ``utils/drag.py`` and ``sdedrag_dragbench.py``):
  the window around p is the half-open slice [p − lo, p + hi), i.e. (2r)^k in the interior and not centred on p;
  the number of operations and the intermediate points are computed in float32 as that code does.
- ``"clean"``: the window [p − lo, p + hi] is (2r + 1)^k and centred on p; the path uses exact integer arithmetic.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .noise import NoiseSource

__all__ = ["PRESETS", "check_preset", "patch_bounds", "copy_paste", "num_drag_steps", "num_drag_ops", "drag_path"]

Index = Sequence[int]
PRESETS: tuple[str, ...] = ("official", "clean", "fast")


def check_preset(preset: str) -> str:
    """The one check of a preset name."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    return preset


def patch_bounds(src: Index, tgt: Index, r: int, shape: Sequence[int]) -> list[tuple[int, int]]:
    """Per spatial axis, the extents (below, above) of the window shared by ``src`` and ``tgt``.

    Both presets shrink ``r`` so the window fits around *both* points: below = min(r, s, t),
    above = min(r, n−1−s, n−1−t).  The window around p is [p − below, p + above] ("clean") or
    [p − below, p + above) ("official"), the same shape at source and target.
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
    preset: str = "official",
) -> Tensor:
    """SDE-Drag's copy-and-paste: target window ← α·P, source window ← β·P + √(1−β²)·z, with P the source window.

    Pairs are applied in order; for each, P is read before anything of that pair is written and the target is
    written last, so it wins where the two windows overlap.  ``z = noise(k, P)`` for pair k.  Returns a new tensor.
    """
    check_preset(preset)
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    scale = math.sqrt(max(1.0 - beta * beta, 0.0))
    if noise is None and scale > 0.0:
        raise ValueError("copy_paste needs a noise source when beta < 1")
    end = 0 if preset == "official" else 1
    out = x.clone()
    for k, (src, tgt) in enumerate(zip(sources, targets)):
        src, tgt = tuple(int(v) for v in src), tuple(int(v) for v in tgt)
        spatial = out.shape[out.dim() - len(src):]
        bounds = patch_bounds(src, tgt, int(r), spatial)
        src_sl = (...,) + tuple(slice(p - lo, p + hi + end) for p, (lo, hi) in zip(src, bounds))
        tgt_sl = (...,) + tuple(slice(p - lo, p + hi + end) for p, (lo, hi) in zip(tgt, bounds))
        patch = out[src_sl].clone()
        if patch.numel() == 0:
            continue
        fresh = beta * patch
        if scale > 0.0:
            fresh = fresh + scale * noise(k, patch)  # type: ignore[misc]
        out[src_sl] = fresh
        out[tgt_sl] = alpha * patch
    return out


def num_drag_steps(distance: float, step_size: float) -> int:
    """Number m of drag operations for the largest move ``distance``: 1 if D ≤ step, else ⌊D/step⌋, or ⌊D/step⌋ + 1
    when that makes D/m strictly closer to ``step_size`` (official SDE-Drag rule, in float64)."""
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if distance <= step_size:
        return 1
    m = int(distance // step_size)
    return m + 1 if abs(distance / (m + 1) - step_size) < abs(distance / m - step_size) else m


def _displacements(sources: Sequence[Index], targets: Sequence[Index]) -> Tensor:
    if len(sources) != len(targets) or not sources:
        raise ValueError("need the same, non-zero number of sources and targets")
    return torch.tensor([[int(b) - int(a) for a, b in zip(s, t)] for s, t in zip(sources, targets)], dtype=torch.long)


def num_drag_ops(sources: Sequence[Index], targets: Sequence[Index], step_size: float, preset: str = "official") -> int:
    """Number of drag operations for the largest source→target distance D: :func:`num_drag_steps`, with D and
    the comparisons in float32 as the official code (``torch.norm(d.float())``) or in float64 ("clean")."""
    d = _displacements(sources, targets)
    if check_preset(preset) != "official":
        return num_drag_steps(max(math.hypot(*(float(v) for v in row)) for row in d), step_size)
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    dmax = torch.norm(d.float(), dim=1).max()
    if dmax <= step_size:
        return 1
    m = dmax.div(torch.tensor([step_size]), rounding_mode="trunc")
    if (dmax / m - step_size).abs() > (dmax / (m + 1) - step_size).abs():
        m = m + 1
    return int(m)


def drag_path(sources: Sequence[Index], targets: Sequence[Index], m: int, preset: str = "official"
              ) -> list[tuple[list[tuple[int, ...]], list[tuple[int, ...]]]]:
    """(sources, targets) of each of the m operations: p_i = s + trunc(i/m · d) → p_{i+1}.

    ``"official"``: ``s + (i / m * d).to(torch.int)`` in float32, as the official code (so 15/22 · 44 gives 30,
    where float64 gives 29.999… → 29); ``"clean"``: trunc(i·d/m) in exact integer arithmetic.
    """
    check_preset(preset)
    if m < 1:
        raise ValueError(f"need m >= 1 drag operations, got {m}")
    d = _displacements(sources, targets)
    s = torch.tensor([[int(v) for v in p] for p in sources], dtype=torch.long)

    def at(i: int) -> list[tuple[int, ...]]:
        if preset == "official":
            q = torch.tensor(float(i), dtype=torch.float32) / torch.tensor(float(m), dtype=torch.float32)
            off = (q * d.to(torch.float32)).to(torch.int32).to(torch.long)
        else:
            num = i * d
            off = torch.sign(num) * (num.abs() // m)
        return [tuple(int(v) for v in row) for row in (s + off)]

    return [(at(i), at(i + 1)) for i in range(m)]
