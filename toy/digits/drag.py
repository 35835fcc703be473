"""SDE-Drag vs ODE-Drag on digits: move a handle on the stroke 2–3 px, an editable box around handle and target.

The edit is ``recipes.drag`` per image, on the image as a [1, 1, SIDE, SIDE] state with points (row, col),
``mask`` = the editable box, window half-size r = 1, α = 1.1, β = 0.3, ``step_size`` = 1 px and
``preset="official"`` (the official SDE-Drag code's rules: half-open (2r)² paste window, number of operations and
intermediate points in float32).  SDE = Cycle-SDE encode/replay, ODE = DDIM inversion/DDIM; outside the box the
state is reset to the encoded trajectory after every step.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, recipes

from .common import METHODS, SIDE, Context, as_image, as_rows, balanced, diff_ci, fd_ci, fd_diff_ci, grid_png, logp_ci
from .metrics import mean_ci

__all__ = ["drag", "drag_problem", "handle_distance", "run_drag", "PRESET", "STEP_SIZE", "HALF_SIZE", "ALPHA", "BETA"]

PRESET = "official"
STEP_SIZE = 1.0     # px per drag operation
HALF_SIZE = 1       # r: paste window half-size in px
ALPHA, BETA = 1.1, 0.3
MARGIN = 3          # handles and targets stay this far from the border


def drag(model, grid: Grid, x: Tensor, handles, targets, editable: Tensor, sampler: str, seed: int,
         step_size: float = STEP_SIZE, r: int = HALF_SIZE, alpha: float = ALPHA, beta: float = BETA,
         preset: str = PRESET, solver: str = "ddim", order: int = 2) -> Tensor:
    """``recipes.drag`` of each row of ``x`` [B, SIDE²] (module docstring): handle i → target i, points (row, col),
    ``editable`` [B, SIDE²] the mask; image i draws its noise from ``GaussianNoise(seed + i)``; ``preset`` /
    ``solver`` / ``order`` as :func:`diffsamplers.recipes.drag`."""
    out = []
    for i in range(len(x)):
        res = recipes.drag(model, as_image(x[i])[None, None], grid, [tuple(handles[i])], [tuple(targets[i])],
                           sampler=sampler, noise=GaussianNoise(seed + i), mask=as_image(editable[i]), r=r,
                           alpha=alpha, beta=beta, step_size=step_size, preset=preset, solver=solver, order=order)
        out.append(as_rows(res.x[0, 0]))
    return torch.stack(out)


def drag_problem(x: Tensor, g: torch.Generator) -> tuple[tuple[int, int], tuple[int, int], Tensor]:
    """A handle on the stroke (bright pixel away from the border), a target 2–3.2 px away, an editable box (3 px
    around both) as a [SIDE²] mask."""
    im = as_image(x)
    inner = im[MARGIN:SIDE - MARGIN, MARGIN:SIDE - MARGIN]
    cand = torch.nonzero(inner > 0.3) + MARGIN
    if len(cand) == 0:
        cand = torch.nonzero(inner >= inner.max()) + MARGIN
    h = cand[torch.randint(0, len(cand), (1,), generator=g)].flatten().tolist()
    for _ in range(100):
        dy, dx = (int(v) for v in torch.randint(-3, 4, (2,), generator=g))
        if 2 <= math.hypot(dy, dx) <= 3.2 and 2 <= h[0] + dy <= SIDE - MARGIN and 2 <= h[1] + dx <= SIDE - MARGIN:
            break
    t = [h[0] + dy, h[1] + dx]
    m = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    m[max(min(h[0], t[0]) - 3, 0):max(h[0], t[0]) + 4, max(min(h[1], t[1]) - 3, 0):max(h[1], t[1]) + 4] = True
    return (h[0], h[1]), (t[0], t[1]), m.flatten()


def handle_distance(orig: Tensor, out: Tensor, handle, target, r: int = 1, window: int = 4) -> float:
    """'Mean Distance' analogue: best L2 match of the original handle patch in the output (within ± window of the
    handle), Euclidean distance of that match to the target."""
    o, y = as_image(orig), as_image(out)
    pad_o = torch.nn.functional.pad(o, (r, r, r, r), value=-1.0)
    pad_y = torch.nn.functional.pad(y, (r, r, r, r), value=-1.0)
    p = pad_o[handle[0]:handle[0] + 2 * r + 1, handle[1]:handle[1] + 2 * r + 1]
    best, bpos = float("inf"), handle
    for cy in range(max(handle[0] - window, 0), min(handle[0] + window, SIDE - 1) + 1):
        for cx in range(max(handle[1] - window, 0), min(handle[1] + window, SIDE - 1) + 1):
            d = float(((pad_y[cy:cy + 2 * r + 1, cx:cx + 2 * r + 1] - p) ** 2).sum())
            if d < best:
                best, bpos = d, (cy, cx)
    return math.hypot(bpos[0] - target[0], bpos[1] - target[1])


def run_drag(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    imgs, labels = balanced(ctx.test, sz.drag_images, ctx.seed + 3)
    g = torch.Generator().manual_seed(ctx.seed + 33)
    probs = [drag_problem(imgs[i], g) for i in range(len(imgs))]
    grid = ctx.schedule.grid(sz.drag_steps).tail(sz.drag_t0)
    ref = ctx.mixture.sample(len(imgs), g)
    units = torch.arange(len(imgs))
    rep: dict = {"experiment": "drag", "model": ctx.model_name, "steps": sz.drag_steps, "t0": sz.drag_t0,
                 "alpha": ALPHA, "beta": BETA, "step_size_px": STEP_SIZE, "patch_half_size": HALF_SIZE,
                 "preset": PRESET, "recipe": f"recipes.drag(preset={PRESET!r}) per image", "rows": [],
                 "input_measures": {"fd": fd_ci(ctx, imgs, ref, units), "logp0": logp_ci(ctx, imgs),
                                    "handle_distance": mean_ci([math.hypot(h[0] - t[0], h[1] - t[1])
                                                                for h, t, _ in probs])}}
    outs, raw_g = {}, {}
    for method, sampler in METHODS:
        xs = drag(ctx.model, grid, imgs, [p[0] for p in probs], [p[1] for p in probs],
                  torch.stack([p[2] for p in probs]), sampler, ctx.seed * 101)
        outs[method] = xs
        with torch.no_grad():
            kept = (ctx.classifier(xs).argmax(1) == labels).double()
        hd = [handle_distance(imgs[i], xs[i], probs[i][0], probs[i][1]) for i in range(len(imgs))]
        raw_g[method] = {"logp0": ctx.mixture.log_prob(xs).numpy(), "class_kept": kept.numpy(), "handle_distance": hd,
                         "l2_change": (xs - imgs).norm(dim=1).numpy()}
        rep["rows"].append({
            "method": method, "fd": fd_ci(ctx, xs, ref, units), "logp0": logp_ci(ctx, xs),
            "class_kept": mean_ci(kept.numpy()), "handle_distance": mean_ci(hd),
            "l2_change": mean_ci((xs - imgs).norm(dim=1).numpy()),
        })
    rep["paired"] = {"fd": fd_diff_ci(ctx, outs["ODE"], outs["SDE"], ref, units),
                     **{k: diff_ci(raw_g["ODE"][k], raw_g["SDE"][k]) for k in raw_g["ODE"]}}
    if out is not None:
        n = min(8, len(imgs))
        rows = []
        for i in range(n):
            mark = as_image(imgs[i].clone())
            h, t, _ = probs[i]
            mark[h] = -0.3
            mark[t] = 0.3
            rows.append(torch.cat([imgs[i:i + 1], as_rows(mark)[None], outs["ODE"][i:i + 1], outs["SDE"][i:i + 1]]))
        grid_png(rows, [f"#{i}" for i in range(n)], ["original", "handle/target", "ODE-Drag", "SDE-Drag"],
                 out / "drag_grid.png", f"drag ({ctx.model_name} model)")
    return rep
