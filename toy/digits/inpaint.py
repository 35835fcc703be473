"""Inpainting of held-out digits with a square hole, against the exact conditional p_0(x_hole | x_known).

The edit is ``recipes.inpaint(model, x, known, grid, sampler, GaussianNoise(seed), start="noised", fill=0.0)``:
one draw z starts the chain (x_T = α_T x̃ + σ_T z with x̃ = x on known pixels and 0 in the hole), after every step
the known pixels are α_s x + σ_s z with the same z (diffusers' blended inpainting), and x after the last step.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, recipes

from .common import (METHODS, SIDE, Context, balanced, diff_ci, fd_ci, fd_diff_ci, grid_png, logp_ci,
                     method_colors, unit_means)
from .metrics import gaussian_w2, mean_ci, tv

__all__ = ["rect_mask", "inpaint", "run_inpaint", "HOLES"]

HOLES = (("small", 7), ("large", 10))   # name, hole side in pixels


def rect_mask(size: int, g: torch.Generator) -> Tensor:
    """Known-pixel mask [SIDE²] (True = known) with a size×size hole centred in the central (SIDE/2)² region."""
    cy, cx = (int(v) for v in torch.randint(SIDE // 4, 3 * SIDE // 4, (2,), generator=g))
    y0 = min(max(cy - size // 2, 0), SIDE - size)
    x0 = min(max(cx - size // 2, 0), SIDE - size)
    m = torch.ones(SIDE, SIDE, dtype=torch.bool)
    m[y0:y0 + size, x0:x0 + size] = False
    return m.flatten()


def inpaint(model, grid: Grid, x_known: Tensor, known: Tensor, sampler: str, seed: int) -> Tensor:
    """``recipes.inpaint`` (module docstring) of the rows ``x_known`` [B, SIDE²] with ``known`` [B, SIDE²]."""
    return recipes.inpaint(model, x_known, known, grid, sampler, GaussianNoise(seed), start="noised", fill=0.0).x


def run_inpaint(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    mix = ctx.mixture
    g = torch.Generator().manual_seed(ctx.seed)
    imgs, labels = balanced(ctx.test, sz.inpaint_problems, ctx.seed)
    S = sz.inpaint_samples
    report: dict = {"experiment": "inpaint", "model": ctx.model_name, "masks": {},
                    "recipe": "recipes.inpaint(start='noised', fill=0.0, renoise='fixed')"}
    figs = {}
    for mname, size in HOLES:
        masks = torch.stack([rect_mask(size, g) for _ in range(len(imgs))])
        conds = [mix.condition(masks[p], imgs[p]) for p in range(len(imgs))]
        # exact conditional samples: two independent reference sets (second = noise floor)
        refs = []
        for _ in range(2):
            full = imgs.repeat_interleave(S, 0).clone()
            for p, cnd in enumerate(conds):
                full[p * S:(p + 1) * S, ~masks[p]] = cnd.sample(S, g)
            refs.append(full)
        units = torch.arange(len(imgs)).repeat_interleave(S)
        kn = masks.repeat_interleave(S, 0)
        xk = imgs.repeat_interleave(S, 0)
        res: dict = {"hole_fraction": float((~masks).float().mean()), "hole_px": size * size, "rows": []}

        def measures(x: Tensor) -> dict:
            nll, tvs, w2 = [], [], []
            for p, cnd in enumerate(conds):
                xu = x[p * S:(p + 1) * S][:, ~masks[p]]
                nll.append(float(-cnd.log_prob(xu).mean()))
                tvs.append(tv(cnd.responsibilities(xu).mean(0), cnd.weights))
                w2.append(gaussian_w2(xu.numpy(), refs[0][p * S:(p + 1) * S][:, ~masks[p]].numpy()))
            lp = unit_means(mix.log_prob(x).numpy(), units)
            raw[id(x)] = {"cond_nll": nll, "component_tv": tvs, "pixel_w2": w2, "logp0": lp}
            return {"fd": fd_ci(ctx, x, refs[0], units), "cond_nll": mean_ci(nll), "component_tv": mean_ci(tvs),
                    "pixel_w2": mean_ci(w2), "logp0": logp_ci(ctx, x)}

        raw: dict = {}
        res["exact_reference"] = measures(refs[1])
        res["paired"] = []
        for steps in sz.inpaint_steps:
            grid = ctx.schedule.grid(steps)
            for method, sampler in METHODS:
                t1 = time.time()
                x = inpaint(ctx.model, grid, xk, kn, sampler, ctx.seed * 1000 + steps)
                row = {"steps": steps, "method": method, "seconds": time.time() - t1, **measures(x)}
                res["rows"].append(row)
                figs[(mname, steps, method)] = x
            xo, xs_ = figs[(mname, steps, "ODE")], figs[(mname, steps, "SDE")]
            ro, rs = raw[id(xo)], raw[id(xs_)]
            res["paired"].append({"steps": steps, "fd": fd_diff_ci(ctx, xo, xs_, refs[0], units),
                                  **{k: diff_ci(ro[k], rs[k]) for k in ("cond_nll", "component_tv", "pixel_w2", "logp0")}})
        report["masks"][mname] = res
        if out is not None:
            n = min(4, len(imgs))
            rows, labs = [], []
            big = max(sz.inpaint_steps)
            for p in range(n):
                masked = imgs[p].clone()
                masked[~masks[p]] = 0.0
                sl = slice(p * S, p * S + min(3, S))
                rows.append(torch.cat([imgs[p:p + 1], masked[None], figs[(mname, big, "ODE")][sl],
                                       figs[(mname, big, "SDE")][sl], refs[0][sl]]))
                labs.append(f"#{p}")
            k = min(3, S)
            cols = ["original", "masked"] + [f"ODE {i}" for i in range(k)] + [f"SDE {i}" for i in range(k)] + \
                   [f"exact {i}" for i in range(k)]
            grid_png(rows, labs, cols, out / f"inpaint_{mname}_grid.png",
                     f"inpainting, {mname} hole ({size}x{size}), {ctx.model_name} model, {big} steps")
    report["table"] = inpaint_table(report)
    if out is not None:
        inpaint_plot(report, out / "inpaint_fd.png")
    return report


def inpaint_table(rep: dict) -> list[dict]:
    rows = []
    for mname, res in rep["masks"].items():
        for r in res["rows"]:
            rows.append({"mask": mname, "steps": r["steps"], "method": r["method"], "fd": r["fd"]["value"],
                         "fd_lo": r["fd"]["lo95"], "fd_hi": r["fd"]["hi95"], "cond_nll": r["cond_nll"]["mean"],
                         "cond_nll_ci": r["cond_nll"]["ci95"], "component_tv": r["component_tv"]["mean"],
                         "component_tv_ci": r["component_tv"]["ci95"], "pixel_w2": r["pixel_w2"]["mean"],
                         "pixel_w2_ci": r["pixel_w2"]["ci95"]})
        ref = res["exact_reference"]
        rows.append({"mask": mname, "steps": None, "method": "exact", "fd": ref["fd"]["value"], "fd_lo": ref["fd"]["lo95"],
                     "fd_hi": ref["fd"]["hi95"], "cond_nll": ref["cond_nll"]["mean"], "cond_nll_ci": ref["cond_nll"]["ci95"],
                     "component_tv": ref["component_tv"]["mean"], "component_tv_ci": ref["component_tv"]["ci95"],
                     "pixel_w2": ref["pixel_w2"]["mean"], "pixel_w2_ci": ref["pixel_w2"]["ci95"]})
    return rows


def inpaint_plot(rep: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    from ..io import save_figure

    fig = Figure(figsize=(8, 3))
    axes = fig.subplots(1, 2)
    for ax, (mname, res) in zip(axes, rep["masks"].items()):
        for method, c in method_colors().items():
            rr = [r for r in res["rows"] if r["method"] == method]
            st = [r["steps"] for r in rr]
            v = np.array([r["fd"]["value"] for r in rr])
            lo = np.array([r["fd"]["lo95"] for r in rr])
            hi = np.array([r["fd"]["hi95"] for r in rr])
            ax.errorbar(st, v, yerr=[np.maximum(v - lo, 0), np.maximum(hi - v, 0)], marker="o", color=c, label=method,
                        capsize=3)
        ax.axhline(res["exact_reference"]["fd"]["value"], color="k", ls=":", label="exact conditional")
        ax.set_xscale("log")
        ax.set_xticks(st, [str(s) for s in st])
        ax.set_xticks([], minor=True)   # no log-scale minor labels between the step counts
        ax.set_xlabel("steps")
        ax.set_ylabel("classifier FD to exact conditional")
        ax.set_title(f"{mname} holes ({rep['model']} model)")
        ax.legend(fontsize=7)
    save_figure(fig, path)
