"""The seam measure: how far the output is from the right answer *where the paste acted*.

SDE-Drag's copy-and-paste writes α·patch into the target window and β·patch + noise into the source window of
every operation (``diffsamplers.edits.copy_paste``, windows from ``patch_bounds`` and the preset's path
``drag_path``).  On a textured or shaded scene those windows are where the seams, the hole and the carried-over
background are.  Per task, L2 norms of output − right answer over:

- ``l2_source_window``: the first operation's source window (the object's original place: the hole);
- ``l2_target_window``: the last operation's target window (where the object must land, with the source's
  background around it);
- ``l2_mask_rest``: the editable mask minus every operation's windows (kept apart from the seams).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffsamplers import num_drag_ops
from diffsamplers.edits import drag_path, patch_bounds

__all__ = ["SEAM_MEASURES", "paste_windows", "seam_measures"]

SEAM_MEASURES: tuple[str, ...] = ("l2_source_window", "l2_target_window", "l2_mask_rest")


def _window(point, other, r: int, side: int, preset: str) -> Tensor:
    end = 0 if preset == "official" else 1
    bounds = patch_bounds(tuple(point), tuple(other), int(r), (side, side))
    w = torch.zeros(side, side, dtype=torch.bool)
    (py, px), ((ly, hy), (lx, hx)) = point, bounds
    w[max(py - ly, 0):py + hy + end, max(px - lx, 0):px + hx + end] = True
    return w


def paste_windows(handle, target, r: int, step_size: float, preset: str, side: int) -> tuple[Tensor, Tensor, Tensor]:
    """Bool [side, side] masks: (first source window, last target window, union of every operation's windows) of
    the drag handle → target with the recipe's operations and windows."""
    m = num_drag_ops([handle], [target], step_size, preset)
    ops = drag_path([handle], [target], m, preset)
    every = torch.zeros(side, side, dtype=torch.bool)
    for srcs, tgts in ops:
        s, t = srcs[0], tgts[0]
        every |= _window(s, t, r, side, preset) | _window(t, s, r, side, preset)
    first_src = _window(ops[0][0][0], ops[0][1][0], r, side, preset)
    last_tgt = _window(ops[-1][1][0], ops[-1][0][0], r, side, preset)
    return first_src, last_tgt, every


def seam_measures(tasks, outputs: Tensor, answers: Tensor, masks: Tensor, r: int, step_size: float, preset: str,
                  side: int) -> dict[str, np.ndarray]:
    """Per task (arrays of len(tasks)): L2 of output − answer over the first source window, the last target
    window, and the rest of the editable ``masks`` [N, side²] (bool)."""
    y = outputs.reshape(len(tasks), -1).to(torch.float64)
    diff = y - answers.reshape(len(tasks), -1).to(torch.float64)
    out = {k: np.zeros(len(tasks)) for k in SEAM_MEASURES}
    cache: dict = {}
    for i, t in enumerate(tasks):
        key = (tuple(t.handle), tuple(t.target))
        if key not in cache:
            cache[key] = [w.reshape(-1) for w in paste_windows(t.handle, t.target, r, step_size, preset, side)]
        src, tgt, every = cache[key]
        rest = masks.reshape(len(tasks), -1)[i] & ~every
        out["l2_source_window"][i] = float(diff[i][src].norm())
        out["l2_target_window"][i] = float(diff[i][tgt].norm())
        out["l2_mask_rest"][i] = float(diff[i][rest].norm())
    return out
