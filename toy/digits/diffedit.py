"""DiffEdit-style class change inside a mask: source class → target class with the class-conditional ε-models.

Mask: ``recipes.diffedit_mask(source, target, x0, full_grid.tail(0.5), GaussianNoise(g), draws=10,
channel_dims=())`` — |ε_target − ε_source| averaged over 10 noisings at the middle of the grid, clamped at 3× its
per-image mean, scaled to [0, 1], binarised at 0.5 (diffusers' DiffEdit rule; per pixel, no smoothing).
Edit: ``recipes.diffedit(source, target, x0, mask, grid, sampler, GaussianNoise(seed))`` — ODE: DDIM inversion with
the source model → DDIM with the target model; SDE: Cycle-SDE recorded with the source model → replayed with the
target model; outside the mask the state is reset to the encoded trajectory after every step.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, recipes

from .common import DT, METHODS, Context, curve_plot, diff_ci, fd_ci, fd_diff_ci, grid_png, logp_ci
from .metrics import mean_ci

__all__ = ["PAIRS", "MASK_DRAWS", "MASK_T0", "diffedit_mask", "diffedit", "run_diffedit"]

PAIRS = ((1, 7), (7, 9), (3, 8), (5, 6), (4, 9), (9, 4), (6, 5), (8, 3), (0, 6), (2, 3))
MASK_DRAWS = 10     # noisings averaged by the mask rule
MASK_T0 = 0.5       # the mask is computed at the start of full_grid.tail(MASK_T0)


def diffedit_mask(src_model, tgt_model, x0: Tensor, full_grid: Grid, g: torch.Generator) -> Tensor:
    """``recipes.diffedit_mask`` (module docstring) of the rows ``x0`` [B, SIDE²]; True = edit."""
    return recipes.diffedit_mask(src_model, tgt_model, x0, full_grid.tail(MASK_T0), GaussianNoise(g),
                                 draws=MASK_DRAWS, channel_dims=())


def diffedit(src_model, tgt_model, grid: Grid, x0: Tensor, edit: Tensor, sampler: str, seed: int) -> Tensor:
    """``recipes.diffedit`` (module docstring) of the rows ``x0`` [B, SIDE²] inside ``edit``."""
    return recipes.diffedit(src_model, tgt_model, x0, edit, grid, sampler, GaussianNoise(seed)).x


def run_diffedit(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    g = torch.Generator().manual_seed(ctx.seed + 21)
    full = ctx.schedule.grid(sz.diffedit_steps)
    rep: dict = {"experiment": "diffedit", "model": ctx.model_name, "steps": sz.diffedit_steps, "pairs": PAIRS,
                 "recipe": f"recipes.diffedit_mask(grid.tail({MASK_T0}), draws={MASK_DRAWS}, channel_dims=()) + "
                           "recipes.diffedit", "rows": []}
    per_pair = []
    for a, b in PAIRS:
        idx = torch.nonzero(ctx.test.labels == a).flatten()[: sz.diffedit_per_pair]
        x0 = ctx.test.images[idx].to(DT)
        src, tgt = ctx.class_model(a), ctx.class_model(b)
        mask = diffedit_mask(src, tgt, x0, full, g)
        ref = ctx.mixture.of_class(b).sample(len(x0), g)
        per_pair.append((a, b, x0, src, tgt, mask, ref))
    src_all = torch.cat([p[2] for p in per_pair])
    ref_all = torch.cat([p[6] for p in per_pair])
    tgt_lab = torch.cat([torch.full((len(p[2]),), p[1]) for p in per_pair])
    mask_all = torch.cat([p[5] for p in per_pair])
    units = torch.arange(len(src_all))
    rep["mask_fraction"] = mean_ci(mask_all.double().mean(1).numpy())
    outs = {}
    rep["paired"] = []
    for t0 in sz.diffedit_t0:
        grid = full.tail(t0)
        raw_d: dict = {}
        for method, sampler in METHODS:
            x = torch.cat([diffedit(p[3], p[4], grid, p[2], p[5], sampler, ctx.seed * 31 + i)
                           for i, p in enumerate(per_pair)])
            outs[(t0, method)] = x
            with torch.no_grad():
                hit = (ctx.classifier(x).argmax(1) == tgt_lab).double()
            post = ctx.mixture.class_posterior(x)[torch.arange(len(x)), tgt_lab]
            # exact conditional log-density of the edited pixels given the kept ones, under the target class
            cnll, off = [], 0
            for p in per_pair:
                sub = ctx.mixture.of_class(p[1])
                for j in range(len(p[2])):
                    m = mask_all[off + j]
                    cnd = sub.condition(~m, x[off + j])
                    cnll.append(float(-cnd.log_prob(x[off + j:off + j + 1, m])) / max(int(m.sum()), 1))
                off += len(p[2])
            rep["rows"].append({
                "t0": t0, "method": method, "target_class_rate": mean_ci(hit.numpy()),
                "exact_target_posterior": mean_ci(post.numpy()), "fd": fd_ci(ctx, x, ref_all, units),
                "logp0": logp_ci(ctx, x), "target_cond_nll_per_px": mean_ci(cnll),
                "l2_to_source": mean_ci((x - src_all).norm(dim=1).numpy()),
                "max_change_outside_mask": float(((x - src_all).abs() * (~mask_all)).max()),
            })
            raw_d[method] = {"target_class_rate": hit.numpy(), "exact_target_posterior": post.numpy(),
                             "logp0": ctx.mixture.log_prob(x).numpy(), "target_cond_nll_per_px": np.array(cnll),
                             "l2_to_source": (x - src_all).norm(dim=1).numpy()}
        rep["paired"].append({"t0": t0, "fd": fd_diff_ci(ctx, outs[(t0, "ODE")], outs[(t0, "SDE")], ref_all, units),
                              **{k: diff_ci(raw_d["ODE"][k], raw_d["SDE"][k]) for k in raw_d["ODE"]}})
    if out is not None:
        pick = [sum(len(p[2]) for p in per_pair[:k]) for k in range(min(6, len(per_pair)))]
        rows = []
        for i in pick:
            m = src_all[i].clone()
            m[mask_all[i]] = 0.0
            rows.append(torch.cat([src_all[i:i + 1], m[None]] + [outs[(t0, me)][i:i + 1] for t0 in sz.diffedit_t0
                                                                 for me, _ in METHODS]))
        cols = ["source", "mask"] + [f"{me} t0={t0}" for t0 in sz.diffedit_t0 for me, _ in METHODS]
        labs = [f"{per_pair[k][0]}->{per_pair[k][1]}" for k in range(len(pick))]
        grid_png(rows, labs, cols, out / "diffedit_grid.png", f"DiffEdit class change ({ctx.model_name} model)")
        curve_plot(rep["rows"], "target_class_rate", "target-class rate (classifier)", out / "diffedit_curve.png",
                   f"DiffEdit: realism vs edit success ({ctx.model_name})")
    return rep
