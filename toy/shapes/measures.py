"""Exact measures of a drag output against its known right answer.

- ``position_error_px``: where the dragged object ended up, found by the best L2 match among renderings of the
  task's object at *every* integer centre where it fits (the analogue of DragBench's mean distance, computed from
  the known rendering, not a feature tracker), Euclidean distance to the right answer's centre;
- ``drag_fraction``: how much of the displacement the located object made (projection on d / |d|; 1 = all,
  0 = it stayed, < 1 = undershoot);
- ``nll``: −log p_0(output) under the exact mixture (realism); ``in_range``: NLL not above the largest NLL of
  ``nll_samples`` draws of p_0 (the data's range);
- ``outside_mask_change``: L2 norm of output − input outside the editable mask;
- ``l2_to_answer``: L2 distance to the right answer;
- ``success_rate`` (per task 0 or 1): position error ≤ 1 px and NLL in the data's range;
- the exact outcome: the most responsible component at t = 0 is (has the image of) the answer (``moved``), the
  input (``stayed``) or another image (``other``); an output with NLL out of range is ``off`` (not an image of
  the data set).

Variant scenes (:class:`~toy.shapes.scenes.VariantTask`, the ``textured`` and ``shaded`` families): the object is
located among renderings of its kind, size *and variant* (its background or style) at every integer centre.

Two-object scenes (:class:`~toy.shapes.tasks.PairTask`): both objects are located jointly (the best L2 match among
sums of one rendering of each at every pair of integer centres), so the moving object is not mistaken for the other
one; two more measures say whether the other object stayed: ``other_shift_px`` (distance of the located other
object from where it was) and ``other_change`` (L2 norm of output − input over the other object's box, 1 px
around); success also needs ``other_shift_px`` ≤ 1 px.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .data import render
from .tasks import DragTask, PairTask

__all__ = ["OUTCOMES", "PAIR_MEASURES", "TemplateBank", "nll_data_range", "measure"]

OUTCOMES: tuple[str, ...] = ("moved", "stayed", "other", "off")
PAIR_MEASURES: tuple[str, ...] = ("other_shift_px", "other_change")
SUCCESS_PX = 1.0


@dataclass
class TemplateBank:
    """Renderings of each (kind, size) at every integer centre where the object fits (built lazily)."""

    shapes: object                   # ShapeSet or PairSet (anything with .config.reach and the render settings)
    _bank: dict = field(default_factory=dict)
    _cross: dict = field(default_factory=dict)

    def templates(self, kind: str, size: int, variant: str | None = None) -> tuple[Tensor, Tensor]:
        """(centres [P, 2] long, images [P, side²] float64); ``variant``: the background / style of a
        :class:`~toy.shapes.scenes.VariantSet` (rendered by its ``render_object``)."""
        key = (kind, int(size), variant)
        if key not in self._bank:
            cfg = self.shapes.config
            ry, rx = cfg.reach(kind, size)
            pos = list(itertools.product(range(ry, cfg.side - ry), range(rx, cfg.side - rx)))
            if variant is None:
                imgs = torch.stack([render(kind, size, p, cfg.side, cfg.foreground, cfg.background, cfg.supersample)
                                    for p in pos]).reshape(len(pos), -1)
            else:
                imgs = torch.stack([self.shapes.render_object(kind, size, variant, p) for p in pos]).to(torch.float64)
            self._bank[key] = (torch.tensor(pos, dtype=torch.long), imgs)
        return self._bank[key]

    def locate(self, x: Tensor, kind: str, size: int, variant: str | None = None) -> Tensor:
        """Centres [B, 2] of the best-matching rendering of ``kind``/``size`` (in ``variant``) in each row of
        ``x`` [B, side²]."""
        pos, imgs = self.templates(kind, size, variant)
        d2 = (imgs * imgs).sum(-1)[None, :] - 2.0 * x.to(torch.float64) @ imgs.T
        return pos[d2.argmin(-1)]

    def locate_pair(self, x: Tensor, first: tuple, second: tuple) -> tuple[Tensor, Tensor]:
        """Centres [B, 2] of ``first`` = (kind, size) and of ``second`` in each row of ``x`` [B, side²]: the best L2
        match among background + one rendering of each (supports summed) over every pair of integer centres."""
        bg = self.shapes.config.background
        (p1, t1), (p2, t2) = self.templates(*first), self.templates(*second)
        d1, d2 = t1 - bg, t2 - bg                                            # objects without background
        key = (first, second)
        if key not in self._cross:
            self._cross[key] = (d1 * d1).sum(-1)[:, None] + (d2 * d2).sum(-1)[None, :] + 2.0 * d1 @ d2.T
        base = self._cross[key]                                              # [P1, P2]
        y = x.to(torch.float64) - bg
        l1, l2 = y @ d1.T, y @ d2.T                                          # [B, P1], [B, P2]
        best = torch.stack([(base - 2.0 * l1[b][:, None] - 2.0 * l2[b][None, :]).argmin() for b in range(len(y))])
        return p1[best // len(p2)], p2[best % len(p2)]


def nll_data_range(shapes, n: int, seed: int) -> dict:
    """NLL of ``n`` draws of p_0 (seeded): min, median, max; ``max`` is the success threshold."""
    x = shapes.mixture.sample(n, torch.Generator().manual_seed(int(seed)))
    v = (-shapes.mixture.log_prob(x)).numpy()
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max()), "n": int(n), "seed": int(seed)}


def _best_component(mix, y: Tensor) -> np.ndarray:
    if hasattr(mix, "best_component"):                                       # pairs: no dense [N, K] posterior
        return mix.best_component(y).numpy()
    return mix.responsibilities(y).argmax(-1).numpy()


def measure(shapes, bank: TemplateBank, tasks: list[DragTask], inputs: Tensor, outputs: Tensor,
            masks: Tensor, nll_max: float) -> dict[str, np.ndarray]:
    """Per-task measures (arrays of length len(tasks)) of ``outputs`` [N, side²] for ``inputs`` [N, side²] with
    editable ``masks`` [N, side²] (bool).  ``shapes``: the :class:`ShapeSet` of one-object tasks or the
    :class:`~toy.shapes.pairs.PairSet` of :class:`PairTask` s (then with the measures of the other object)."""
    y = outputs.reshape(len(tasks), -1).to(torch.float64)
    x = inputs.reshape(len(tasks), -1).to(torch.float64)
    m = masks.reshape(len(tasks), -1)
    mix = shapes.mixture
    nll = (-mix.log_prob(y)).numpy()
    best = _best_component(mix, y)
    pair = bool(tasks) and isinstance(tasks[0], PairTask)
    pos, frac, shift, ochange = (np.zeros(len(tasks)) for _ in range(4))
    side = shapes.side

    def key_of(t: DragTask) -> tuple:
        if pair:
            return (t.kind, t.size, t.other_kind, t.other_size)
        return (t.kind, t.size) + ((t.variant,) if hasattr(t, "variant") else ())

    for key in {key_of(t) for t in tasks}:
        rows = [i for i, t in enumerate(tasks) if key_of(t) == key]
        if pair:
            found, other = bank.locate_pair(y[rows], key[:2], key[2:])
            was = torch.tensor([tasks[i].other_centre for i in rows], dtype=torch.float64)
            shift[rows] = (other.to(torch.float64) - was).norm(dim=-1).numpy()
            for i in rows:
                t = tasks[i]
                oy, ox = shapes.config.reach(t.other_kind, t.other_size)
                (cy, cx), box = t.other_centre, torch.zeros(side, side, dtype=torch.bool)
                box[max(cy - oy - 1, 0):cy + oy + 2, max(cx - ox - 1, 0):cx + ox + 2] = True
                ochange[i] = float(((y[i] - x[i]) * box.reshape(-1)).norm())
        else:
            found = bank.locate(y[rows], *key)
        found = found.to(torch.float64)
        ans = torch.tensor([tasks[i].answer_centre for i in rows], dtype=torch.float64)
        src = torch.tensor([tasks[i].source_centre for i in rows], dtype=torch.float64)
        pos[rows] = (found - ans).norm(dim=-1).numpy()
        d = ans - src
        frac[rows] = (((found - src) * d).sum(-1) / (d * d).sum(-1)).numpy()
    answers = shapes.images_of([t.answer_index for t in tasks]).to(torch.float64)
    in_range = nll <= nll_max
    # by image, not by id: a data set may hold one image twice (textured at contrast 0: every background is flat)
    best_imgs = shapes.images_of([int(b) for b in best]).to(torch.float64)
    same_ans = ((best_imgs - answers).abs().amax(-1) <= 1e-9).numpy()
    same_src = ((best_imgs - x).abs().amax(-1) <= 1e-9).numpy()
    outcome = np.array([("off" if not ok else "moved" if a else "stayed" if b else "other")
                        for a, b, ok in zip(same_ans, same_src, in_range)])
    ok = (pos <= SUCCESS_PX) & in_range & ((shift <= SUCCESS_PX) if pair else True)
    out = {
        "position_error_px": pos,
        "drag_fraction": frac,
        "nll": nll,
        "in_range": in_range.astype(np.float64),
        "outside_mask_change": ((y - x) * (~m)).norm(dim=-1).numpy(),
        "l2_to_answer": (y - answers).norm(dim=-1).numpy(),
        "success_rate": ok.astype(np.float64),
        **{f"outcome_{o}": (outcome == o).astype(np.float64) for o in OUTCOMES},
    }
    if pair:
        out.update({"other_shift_px": shift, "other_change": ochange})
    return out
