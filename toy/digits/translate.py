"""SDEdit from stroke-like digits: realism vs faithfulness.  The edit is ``recipes.sdedit`` (x_t0 = α y + σ z with
z the first draw of ``GaussianNoise(seed)``, then DDPM (SDE) or DDIM (ODE) to the end of the grid)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, recipes

from .common import (METHODS, SIDE, Context, balanced, curve_plot, diff_ci, fd_ci, fd_diff_ci, grid_png,
                     logp_ci)
from .metrics import mean_ci, tv

__all__ = ["strokify", "sdedit", "run_translate"]


def strokify(x: Tensor) -> Tensor:
    """A crude 'stroke' version of a digit: 2×2 block average, binarised at 0, nearest upsampled (blocky, binary)."""
    im = x.reshape(-1, 1, SIDE, SIDE)
    small = torch.nn.functional.avg_pool2d(im, 2)
    binar = torch.where(small > -0.2, 1.0, -1.0).to(x.dtype)
    return torch.nn.functional.interpolate(binar, scale_factor=2, mode="nearest").reshape(x.shape)


def sdedit(model, grid: Grid, x_in: Tensor, sampler: str, seed: int) -> Tensor:
    """``recipes.sdedit`` of the rows ``x_in`` [B, SIDE²] from grid point 0."""
    return recipes.sdedit(model, x_in, grid, sampler, GaussianNoise(seed)).x


def run_translate(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    imgs, labels = balanced(ctx.test, sz.translate_images, ctx.seed + 1)
    strokes = strokify(imgs)
    g = torch.Generator().manual_seed(ctx.seed + 11)
    ref = ctx.mixture.sample(len(imgs), g)
    units = torch.arange(len(imgs))
    full = ctx.schedule.grid(sz.translate_steps)
    rep: dict = {"experiment": "translate", "model": ctx.model_name, "input": "strokify(held-out digit)",
                 "recipe": "recipes.sdedit", "steps": sz.translate_steps, "rows": [],
                 "input_measures": {"fd": fd_ci(ctx, strokes, ref, units), "logp0": logp_ci(ctx, strokes)},
                 "data_measures": {"fd": fd_ci(ctx, imgs, ref, units), "logp0": logp_ci(ctx, imgs)}}
    outs, raw_t = {}, {}
    rep["paired"] = []
    for t0 in sz.translate_t0:
        grid = full.tail(t0)
        for method, sampler in METHODS:
            x = sdedit(ctx.model, grid, strokes, sampler, ctx.seed * 7919 + int(1000 * t0))
            outs[(t0, method)] = x
            with torch.no_grad():
                acc = (ctx.classifier(x).argmax(1) == labels).double()
            cls = ctx.mixture.class_posterior(x)
            rep["rows"].append({
                "t0": t0, "method": method, "fd": fd_ci(ctx, x, ref, units), "logp0": logp_ci(ctx, x),
                "l2_to_input": mean_ci((x - strokes).norm(dim=1).numpy()),
                "l2_to_original": mean_ci((x - imgs).norm(dim=1).numpy()),
                "class_kept": mean_ci(acc.numpy()),
                "exact_class_posterior_of_source": mean_ci(cls[torch.arange(len(x)), labels].numpy()),
                "class_tv_vs_true": tv(cls.mean(0), ctx.mixture.class_weights()),
            })
            raw_t[(t0, method)] = {"logp0": ctx.mixture.log_prob(x).numpy(),
                                   "l2_to_input": (x - strokes).norm(dim=1).numpy(), "class_kept": acc.numpy()}
        ro, rs = raw_t[(t0, "ODE")], raw_t[(t0, "SDE")]
        rep["paired"].append({"t0": t0, "fd": fd_diff_ci(ctx, outs[(t0, "ODE")], outs[(t0, "SDE")], ref, units),
                              **{k: diff_ci(ro[k], rs[k]) for k in ro}})
    if out is not None:
        n = min(6, len(imgs))
        rows = [torch.cat([imgs[i:i + 1], strokes[i:i + 1]] + [outs[(t0, m)][i:i + 1] for t0 in sz.translate_t0
                                                               for m, _ in METHODS]) for i in range(n)]
        cols = ["original", "stroke input"] + [f"{m} t0={t0}" for t0 in sz.translate_t0 for m, _ in METHODS]
        grid_png(rows, [f"#{i}" for i in range(n)], cols, out / "translate_grid.png",
                 f"SDEdit from stroke-like digits ({ctx.model_name} model)")
        curve_plot(rep["rows"], "l2_to_input", "faithfulness: L2 to stroke input", out / "translate_curve.png",
                   f"SDEdit realism vs faithfulness ({ctx.model_name})")
    return rep
