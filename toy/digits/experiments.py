"""The paper's editing experiments on real digits with an exact (or learned) diffusion model.

Every experiment uses the shared samplers (``diffsamplers``): η-DDIM (η = 0 ODE, η = 1 SDE), DDIM inversion and
Cycle-SDE, with ``post_step`` hooks for inpainting blends and mask resets.  Each returns a JSON-able report with
95% confidence intervals (normal approximation over independent units, or a delete-one-block jackknife over
units for Fréchet distances) and writes PNG figures.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, cycle_encode, cycle_replay, invert_ddim, sample_ddim
from diffsamplers import edits

from .data import DigitData, load_digits
from .metrics import jackknife_ci, gaussian_w2, load_classifier, mean_ci, tv
from .mixture import DigitMixture, MixtureConfig, build_mixture
from .schedules import DiscreteSchedule, ddpm_linear, exact_eps_model

__all__ = ["Context", "make_context", "run_inpaint", "run_translate", "run_diffedit", "run_drag", "run_all",
           "Sizes", "drag_operations", "drag", "inpaint", "sdedit", "diffedit", "copy_paste"]

DT = torch.float64


# --------------------------------------------------------------------------------------------------------------------
@dataclass
class Sizes:
    """How many problems / samples / seeds each experiment uses."""

    inpaint_problems: int = 30
    inpaint_samples: int = 16
    inpaint_steps: tuple = (25, 50, 100)
    translate_images: int = 200
    translate_steps: int = 100
    translate_t0: tuple = (0.2, 0.35, 0.5, 0.65, 0.8)
    diffedit_per_pair: int = 30
    diffedit_steps: int = 50
    diffedit_t0: tuple = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    drag_images: int = 100
    drag_steps: int = 100
    drag_t0: float = 0.6
    n_boot: int = 10   # jackknife blocks for Fréchet-distance intervals

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(inpaint_problems=6, inpaint_samples=8, translate_images=30, translate_steps=50,
                   translate_t0=(0.3, 0.5, 0.7), diffedit_per_pair=6, diffedit_steps=25, diffedit_t0=(0.4, 0.7),
                   drag_images=12, drag_steps=50, n_boot=6)

    @classmethod
    def fast(cls) -> "Sizes":
        """Tiny settings for notebooks in fast mode (SDEODE_FAST=1) and smoke tests."""
        return cls(inpaint_problems=4, inpaint_samples=4, inpaint_steps=(25, 50), translate_images=20,
                   translate_steps=25, translate_t0=(0.3, 0.6), diffedit_per_pair=3, diffedit_steps=20,
                   diffedit_t0=(0.5,), drag_images=8, drag_steps=25, n_boot=4)

    @classmethod
    def learned(cls, quick: bool) -> "Sizes":
        s = cls.quick()
        if not quick:
            s = cls(inpaint_problems=16, inpaint_samples=16, translate_images=80, translate_steps=50,
                    diffedit_per_pair=10, diffedit_steps=50, drag_images=40, drag_steps=50)
        return s

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """Everything an experiment needs: the exact mixture (for measures), the model that samples, data, classifier."""

    mixture: DigitMixture
    schedule: DiscreteSchedule
    model: Callable
    model_name: str
    train: DigitData
    test: DigitData
    classifier: torch.nn.Module
    sizes: Sizes
    seed: int = 0
    learned_meta: dict = field(default_factory=dict)

    def class_model(self, c: int) -> Callable:
        """ε-model of class c: exact sub-mixture, or for the learned UNet, UNet ε + exact noisy-classifier guidance
        (ε_c = ε_θ + ε_exact,c − ε_exact, i.e. ∇log p_t(c | x) from the exact mixture)."""
        sub = self.mixture.of_class(c).to(torch.float32)
        exact_c = exact_eps_model(sub, self.schedule)
        if self.model_name == "exact":
            return exact_c
        exact = exact_eps_model(self.mixture.to(torch.float32), self.schedule)

        def model(x, t):
            return self.model(x, t) + exact_c(x, t) - exact(x, t)

        return model


def make_context(model: str = "exact", quick: bool = False, seed: int = 0, checkpoint: str | None = None,
                 sizes: Sizes | None = None) -> Context:
    data = load_digits()
    mcfg = MixtureConfig()
    train, test = data.split(mcfg.n_test_per_class)
    mix = build_mixture(data, mcfg, DT)
    sched = ddpm_linear()
    meta: dict = {}
    if model == "exact":
        fn = exact_eps_model(mix.to(torch.float32), sched)   # float32 for speed; measures use the float64 mixture
    elif model == "learned":
        from .learned import learned_eps_model, load_learned

        unet, meta = load_learned(checkpoint)
        fn = learned_eps_model(unet)
    else:
        raise ValueError(f"unknown model {model!r}; choose exact or learned")
    if sizes is None:
        sizes = Sizes.quick() if quick and model == "exact" else (Sizes.learned(quick) if model == "learned" else Sizes())
    return Context(mix, sched, fn, model, train, test, load_classifier(), sizes, seed, meta)


def _balanced(test: DigitData, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """n held-out digits, classes balanced (round robin), deterministic in seed."""
    g = torch.Generator().manual_seed(seed)
    per = [torch.nonzero(test.labels == c).flatten() for c in range(10)]
    per = [p[torch.randperm(len(p), generator=g)] for p in per]
    idx = [per[i % 10][i // 10 % len(per[i % 10])] for i in range(n)]
    idx = torch.stack(idx)
    return test.images[idx].to(DT), test.labels[idx]


def _fd_ci(ctx: Context, x: Tensor, ref: Tensor, units: Tensor) -> dict:
    """Classifier-feature Fréchet distance of x vs ref with a jackknife over units (rows grouped by ``units``)."""
    net = ctx.classifier
    with torch.no_grad():
        fx = net.features(x).double().numpy()
        fr = net.features(ref).double().numpy()
    u = units.numpy()
    groups = [np.nonzero(u == k)[0] for k in np.unique(u)]
    paired = len(fr) == len(fx)   # reference rows aligned with output rows: leave the same rows out of both

    def stat(sel):
        rows = np.concatenate([groups[i] for i in sel])
        return gaussian_w2(fx[rows], fr[rows] if paired else fr)

    return jackknife_ci(stat, len(groups), ctx.sizes.n_boot)


def _logp_ci(ctx: Context, x: Tensor) -> dict:
    return mean_ci(ctx.mixture.log_prob(x).numpy())


def _fd_diff_ci(ctx: Context, x_ode: Tensor, x_sde: Tensor, ref: Tensor, units: Tensor) -> dict:
    """Paired FD(ODE) − FD(SDE) (same inputs, seeds and reference rows) with the delete-one-block jackknife over
    units applied to the difference itself; > 0 means SDE is closer to the reference."""
    net = ctx.classifier
    with torch.no_grad():
        fo, fs, fr = (net.features(v).double().numpy() for v in (x_ode, x_sde, ref))
    u = units.numpy()
    groups = [np.nonzero(u == k)[0] for k in np.unique(u)]
    paired = len(fr) == len(fo)

    def stat(sel):
        rows = np.concatenate([groups[i] for i in sel])
        r = fr[rows] if paired else fr
        return gaussian_w2(fo[rows], r) - gaussian_w2(fs[rows], r)

    return jackknife_ci(stat, len(groups), ctx.sizes.n_boot)


def _diff_ci(ode, sde) -> dict:
    """Paired per-unit differences ODE − SDE: mean ± 1.96 s.e."""
    return mean_ci(np.asarray(ode, dtype=np.float64).ravel() - np.asarray(sde, dtype=np.float64).ravel())


def _unit_means(v: Tensor, units: Tensor) -> np.ndarray:
    """Per-unit means of per-row values (rows of one unit share an input, so the unit is the independent draw)."""
    u = units.numpy()
    vv = np.asarray(v, dtype=np.float64)
    return np.array([vv[u == k].mean() for k in np.unique(u)])


def _grid_png(rows: list[Tensor], row_labels: list[str], col_labels: list[str] | None, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import save_figure

    nr, nc = len(rows), rows[0].shape[0]
    fig, axes = plt.subplots(nr, nc, figsize=(0.9 * nc + 1.2, 0.95 * nr + 0.4), squeeze=False)
    for r, imgs in enumerate(rows):
        for c in range(nc):
            ax = axes[r][c]
            ax.imshow(imgs[c].reshape(16, 16).float().clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
            if r == 0 and col_labels:
                ax.set_title(col_labels[c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------------------------------
# inpainting
def rect_mask(size: int, g: torch.Generator) -> Tensor:
    """Known-pixel mask [256] (True = known) with a size×size hole centred in the central 8×8 region."""
    cy, cx = (int(v) for v in torch.randint(4, 12, (2,), generator=g))
    y0 = min(max(cy - size // 2, 0), 16 - size)
    x0 = min(max(cx - size // 2, 0), 16 - size)
    m = torch.ones(16, 16, dtype=torch.bool)
    m[y0:y0 + size, x0:x0 + size] = False
    return m.flatten()


def inpaint(model, grid: Grid, x_known: Tensor, known: Tensor, eta: float, seed: int) -> Tensor:
    """Blended inpainting: after every step the known pixels are set to α_s x + σ_s z (one fixed z per sample)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(x_known.shape, generator=g, dtype=DT)
    x = torch.where(known, float(grid.alphas[0]) * x_known + float(grid.sigmas[0]) * z,
                    float(grid.sigmas[0]) * torch.randn(x_known.shape, generator=g, dtype=DT))

    def post(i, xs):
        a, s = float(grid.alphas[i + 1]), float(grid.sigmas[i + 1])
        return torch.where(known, a * x_known + s * z, xs)

    return sample_ddim(model, x, grid, eta=eta, noise=GaussianNoise(g) if eta > 0 else None, post_step=post)


def run_inpaint(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    mix = ctx.mixture
    g = torch.Generator().manual_seed(ctx.seed)
    imgs, labels = _balanced(ctx.test, sz.inpaint_problems, ctx.seed)
    S = sz.inpaint_samples
    report: dict = {"experiment": "inpaint", "model": ctx.model_name, "masks": {}}
    figs = {}
    for mname, size in (("small", 7), ("large", 10)):
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
            lp = _unit_means(mix.log_prob(x).numpy(), units)
            raw[id(x)] = {"cond_nll": nll, "component_tv": tvs, "pixel_w2": w2, "logp0": lp}
            return {"fd": _fd_ci(ctx, x, refs[0], units), "cond_nll": mean_ci(nll), "component_tv": mean_ci(tvs),
                    "pixel_w2": mean_ci(w2), "logp0": _logp_ci(ctx, x)}

        raw: dict = {}
        res["exact_reference"] = measures(refs[1])
        res["paired"] = []
        for steps in sz.inpaint_steps:
            grid = ctx.schedule.grid(steps)
            for method, eta in (("ODE", 0.0), ("SDE", 1.0)):
                t1 = time.time()
                x = inpaint(ctx.model, grid, xk, kn, eta, ctx.seed * 1000 + steps)
                row = {"steps": steps, "method": method, "seconds": time.time() - t1, **measures(x)}
                res["rows"].append(row)
                figs[(mname, steps, method)] = x
            xo, xs_ = figs[(mname, steps, "ODE")], figs[(mname, steps, "SDE")]
            ro, rs = raw[id(xo)], raw[id(xs_)]
            res["paired"].append({"steps": steps, "fd": _fd_diff_ci(ctx, xo, xs_, refs[0], units),
                                  **{k: _diff_ci(ro[k], rs[k]) for k in ("cond_nll", "component_tv", "pixel_w2", "logp0")}})
        report["masks"][mname] = res
        if out is not None:
            n = min(4, len(imgs))
            rows, labs = [], []
            for p in range(n):
                masked = imgs[p].clone()
                masked[~masks[p]] = 0.0
                big = max(sz.inpaint_steps)
                sl = slice(p * S, p * S + min(3, S))
                rows.append(torch.cat([imgs[p:p + 1], masked[None], figs[(mname, big, "ODE")][sl],
                                       figs[(mname, big, "SDE")][sl], refs[0][sl]]))
                labs.append(f"#{p}")
            k = min(3, S)
            cols = ["original", "masked"] + [f"ODE {i}" for i in range(k)] + [f"SDE {i}" for i in range(k)] + \
                   [f"exact {i}" for i in range(k)]
            _grid_png(rows, labs, cols, out / f"inpaint_{mname}_grid.png",
                      f"inpainting, {mname} hole ({size}x{size}), {ctx.model_name} model, {max(sz.inpaint_steps)} steps")
    report["table"] = _inpaint_table(report)
    if out is not None:
        _inpaint_plot(report, out / "inpaint_fd.png")
    return report


def _inpaint_table(rep: dict) -> list[dict]:
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


def _inpaint_plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, (mname, res) in zip(axes, rep["masks"].items()):
        for method, c in (("ODE", "tab:blue"), ("SDE", "tab:red")):
            rr = [r for r in res["rows"] if r["method"] == method]
            st = [r["steps"] for r in rr]
            v = np.array([r["fd"]["value"] for r in rr])
            lo = np.array([r["fd"]["lo95"] for r in rr])
            hi = np.array([r["fd"]["hi95"] for r in rr])
            ax.errorbar(st, v, yerr=[np.maximum(v - lo, 0), np.maximum(hi - v, 0)], marker="o", color=c, label=method, capsize=3)
        ax.axhline(res["exact_reference"]["fd"]["value"], color="k", ls=":", label="exact conditional")
        ax.set_xscale("log")
        ax.set_xticks(st, [str(s) for s in st])
        ax.set_xlabel("steps")
        ax.set_ylabel("classifier FD to exact conditional")
        ax.set_title(f"{mname} holes ({rep['model']} model)")
        ax.legend(fontsize=7)
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------------------------------
# SDEdit translation from stroke-like digits
def strokify(x: Tensor) -> Tensor:
    """A crude 'stroke' version of a digit: 2×2 block average, binarised at 0, nearest upsampled (blocky, binary)."""
    im = x.reshape(-1, 1, 16, 16)
    small = torch.nn.functional.avg_pool2d(im, 2)
    binar = torch.where(small > -0.2, 1.0, -1.0).to(x.dtype)
    return torch.nn.functional.interpolate(binar, scale_factor=2, mode="nearest").reshape(x.shape)


def sdedit(model, grid: Grid, x_in: Tensor, eta: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = float(grid.alphas[0]) * x_in + float(grid.sigmas[0]) * torch.randn(x_in.shape, generator=g, dtype=x_in.dtype)
    return sample_ddim(model, x, grid, eta=eta, noise=GaussianNoise(g) if eta > 0 else None)


def run_translate(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    imgs, labels = _balanced(ctx.test, sz.translate_images, ctx.seed + 1)
    strokes = strokify(imgs)
    g = torch.Generator().manual_seed(ctx.seed + 11)
    ref = ctx.mixture.sample(len(imgs), g)
    units = torch.arange(len(imgs))
    full = ctx.schedule.grid(sz.translate_steps)
    rep: dict = {"experiment": "translate", "model": ctx.model_name, "input": "strokify(held-out digit)",
                 "steps": sz.translate_steps, "rows": [],
                 "input_measures": {"fd": _fd_ci(ctx, strokes, ref, units), "logp0": _logp_ci(ctx, strokes)},
                 "data_measures": {"fd": _fd_ci(ctx, imgs, ref, units), "logp0": _logp_ci(ctx, imgs)}}
    outs, raw_t = {}, {}
    rep["paired"] = []
    for t0 in sz.translate_t0:
        grid = full.tail(t0)
        for method, eta in (("ODE", 0.0), ("SDE", 1.0)):
            x = sdedit(ctx.model, grid, strokes, eta, ctx.seed * 7919 + int(1000 * t0))
            outs[(t0, method)] = x
            with torch.no_grad():
                acc = (ctx.classifier(x).argmax(1) == labels).double()
            cls = ctx.mixture.class_posterior(x)
            rep["rows"].append({
                "t0": t0, "method": method, "fd": _fd_ci(ctx, x, ref, units), "logp0": _logp_ci(ctx, x),
                "l2_to_input": mean_ci((x - strokes).norm(dim=1).numpy()),
                "l2_to_original": mean_ci((x - imgs).norm(dim=1).numpy()),
                "class_kept": mean_ci(acc.numpy()),
                "exact_class_posterior_of_source": mean_ci(cls[torch.arange(len(x)), labels].numpy()),
                "class_tv_vs_true": tv(cls.mean(0), ctx.mixture.class_weights()),
            })
            raw_t[(t0, method)] = {"logp0": ctx.mixture.log_prob(x).numpy(), "l2_to_input": (x - strokes).norm(dim=1).numpy(),
                                   "class_kept": acc.numpy()}
        ro, rs = raw_t[(t0, "ODE")], raw_t[(t0, "SDE")]
        rep["paired"].append({"t0": t0, "fd": _fd_diff_ci(ctx, outs[(t0, "ODE")], outs[(t0, "SDE")], ref, units),
                              **{k: _diff_ci(ro[k], rs[k]) for k in ro}})
    if out is not None:
        n = min(6, len(imgs))
        rows = [torch.cat([imgs[i:i + 1], strokes[i:i + 1]] + [outs[(t0, m)][i:i + 1] for t0 in sz.translate_t0
                                                               for m in ("ODE", "SDE")]) for i in range(n)]
        cols = ["original", "stroke input"] + [f"{m} t0={t0}" for t0 in sz.translate_t0 for m in ("ODE", "SDE")]
        _grid_png(rows, [f"#{i}" for i in range(n)], cols, out / "translate_grid.png",
                  f"SDEdit from stroke-like digits ({ctx.model_name} model)")
        _curve_plot(rep["rows"], "l2_to_input", "faithfulness: L2 to stroke input", out / "translate_curve.png",
                    f"SDEdit realism vs faithfulness ({ctx.model_name})")
    return rep


def _curve_plot(rows, xkey, xlabel, path, title) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for method, c in (("ODE", "tab:blue"), ("SDE", "tab:red")):
        rr = [r for r in rows if r["method"] == method]
        xs = [r[xkey]["mean"] for r in rr]
        fd = np.array([r["fd"]["value"] for r in rr])
        lo = np.array([r["fd"]["lo95"] for r in rr])
        hi = np.array([r["fd"]["hi95"] for r in rr])
        axes[0].errorbar(xs, fd, yerr=[np.maximum(fd - lo, 0), np.maximum(hi - fd, 0)], marker="o", color=c, label=method, capsize=3)
        for r, x_, y_ in zip(rr, xs, fd):
            axes[0].annotate(f"{r['t0']}", (x_, y_), fontsize=6)
        t0s = [r["t0"] for r in rr]
        lp = [r["logp0"]["mean"] for r in rr]
        axes[1].errorbar(t0s, lp, yerr=[r["logp0"]["ci95"] for r in rr], marker="o", color=c, label=method, capsize=3)
    axes[0].set_xlabel(xlabel)
    axes[0].set_ylabel("realism: classifier FD (lower better)")
    axes[1].set_xlabel("t0")
    axes[1].set_ylabel("exact log p0(x) (higher better)")
    for a in axes:
        a.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------------------------------
# DiffEdit-style class change inside a mask
PAIRS = ((1, 7), (7, 9), (3, 8), (5, 6), (4, 9), (9, 4), (6, 5), (8, 3), (0, 6), (2, 3))


def diffedit_mask(src_model, tgt_model, x: Tensor, schedule: DiscreteSchedule, g: torch.Generator, n: int = 8,
                  t: int = 500) -> Tensor:
    """DiffEdit mask: mean |ε_tgt − ε_src| over n noisings at t, 3×3 smoothed, scaled to [0, 1], binarised at 0.5."""
    a, s = schedule.alpha_sigma(t)
    acc = torch.zeros_like(x)
    for _ in range(n):
        xt = a * x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
        tt = torch.tensor(t)
        acc += (tgt_model(xt, tt) - src_model(xt, tt)).abs()
    m = torch.nn.functional.avg_pool2d(acc.reshape(-1, 1, 16, 16), 3, 1, 1).reshape(x.shape)
    m = m / m.amax(1, keepdim=True).clamp_min(1e-12)
    return m > 0.5


def diffedit(src_model, tgt_model, grid: Grid, x0: Tensor, edit: Tensor, method: str, seed: int) -> Tensor:
    """ODE: DDIM inversion (source) → DDIM (target); SDE: Cycle-SDE record (source) → replay (target).
    Outside the mask the state is reset to the recorded/inverted latent after every step."""
    if method == "ODE":
        traj = invert_ddim(src_model, x0, grid)
        post = lambda i, x: torch.where(edit, x, traj[i + 1])  # noqa: E731
        return sample_ddim(tgt_model, traj[0], grid, eta=0.0, post_step=post)
    trace = cycle_encode(src_model, x0, grid, GaussianNoise(seed), variant="markov", eta=1.0)
    post = lambda i, x: torch.where(edit, x, trace.chain[i + 1])  # noqa: E731
    return cycle_replay(tgt_model, trace.chain[0], grid, trace.noises, eta=1.0, post_step=post)


def run_diffedit(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    g = torch.Generator().manual_seed(ctx.seed + 21)
    full = ctx.schedule.grid(sz.diffedit_steps)
    rep: dict = {"experiment": "diffedit", "model": ctx.model_name, "steps": sz.diffedit_steps, "pairs": PAIRS,
                 "rows": []}
    per_pair = []
    for a, b in PAIRS:
        idx = torch.nonzero(ctx.test.labels == a).flatten()[: sz.diffedit_per_pair]
        x0 = ctx.test.images[idx].to(DT)
        src, tgt = ctx.class_model(a), ctx.class_model(b)
        mask = diffedit_mask(src, tgt, x0, ctx.schedule, g)
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
        for method in ("ODE", "SDE"):
            x = torch.cat([diffedit(p[3], p[4], grid, p[2], p[5], method, ctx.seed * 31 + i)
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
                "exact_target_posterior": mean_ci(post.numpy()), "fd": _fd_ci(ctx, x, ref_all, units),
                "logp0": _logp_ci(ctx, x), "target_cond_nll_per_px": mean_ci(cnll), "l2_to_source": mean_ci((x - src_all).norm(dim=1).numpy()),
                "max_change_outside_mask": float(((x - src_all).abs() * (~mask_all)).max()),
            })
            raw_d[method] = {"target_class_rate": hit.numpy(), "exact_target_posterior": post.numpy(),
                             "logp0": ctx.mixture.log_prob(x).numpy(), "target_cond_nll_per_px": np.array(cnll),
                             "l2_to_source": (x - src_all).norm(dim=1).numpy()}
        rep["paired"].append({"t0": t0, "fd": _fd_diff_ci(ctx, outs[(t0, "ODE")], outs[(t0, "SDE")], ref_all, units),
                              **{k: _diff_ci(raw_d["ODE"][k], raw_d["SDE"][k]) for k in raw_d["ODE"]}})
    if out is not None:
        pick = [sum(len(p[2]) for p in per_pair[:k]) for k in range(min(6, len(per_pair)))]
        rows = []
        for i in pick:
            m = src_all[i].clone()
            m[mask_all[i]] = 0.0
            rows.append(torch.cat([src_all[i:i + 1], m[None]] + [outs[(t0, me)][i:i + 1] for t0 in sz.diffedit_t0
                                                                 for me in ("ODE", "SDE")]))
        cols = ["source", "mask"] + [f"{me} t0={t0}" for t0 in sz.diffedit_t0 for me in ("ODE", "SDE")]
        labs = [f"{per_pair[k][0]}->{per_pair[k][1]}" for k in range(len(pick))]
        _grid_png(rows, labs, cols, out / "diffedit_grid.png", f"DiffEdit class change ({ctx.model_name} model)")
        _curve_plot(rep["rows"], "target_class_rate", "target-class rate (classifier)", out / "diffedit_curve.png",
                    f"DiffEdit: realism vs edit success ({ctx.model_name})")
    return rep


# --------------------------------------------------------------------------------------------------------------------
# SDE-Drag vs ODE-Drag
def drag_operations(distance: float, step_size: float) -> int:
    """SDE-Drag's rule (:func:`diffsamplers.num_drag_steps`): 1 if D ≤ step, else ⌊D/step⌋ or one more, whichever
    makes D/m closer to the step size."""
    return edits.num_drag_steps(distance, step_size)


def copy_paste(lat: Tensor, src: tuple[int, int], dst: tuple[int, int], r: int, alpha: float, beta: float,
               g: torch.Generator) -> Tensor:
    """Paper's rule at t0 on 16×16 images (:func:`diffsamplers.copy_paste`, points (row, col)): target window =
    α·source window, source window = β·source + √(1 − β²)·noise; the window shrinks at borders to fit both points."""
    im = lat.reshape(-1, 16, 16)
    return edits.copy_paste(im, [src], [dst], r, alpha, beta, GaussianNoise(g)).reshape(lat.shape)


def drag(model, grid: Grid, x: Tensor, handles, targets, editable: Tensor, method: str, seed: int,
         step_size: float = 1.0, r: int = 1, alpha: float = 1.1, beta: float = 0.3) -> Tensor:
    """Move handle i to target i in row i of x [B, 256] in m_i operations (SDE-Drag's rule), each a full
    noise → copy-paste → denoise cycle; ODE: DDIM inversion/DDIM, SDE: Cycle-SDE; outside ``editable`` the state is
    reset to the recorded latent after every step.  Rows are batched; a row with fewer operations stays unchanged."""
    g = torch.Generator().manual_seed(seed)
    ms = [drag_operations(math.hypot(t[0] - h[0], t[1] - h[1]), step_size) for h, t in zip(handles, targets)]
    x = x.clone()
    for k in range(max(ms)):
        active = torch.tensor([k < m for m in ms])
        if method == "ODE":
            traj = invert_ddim(model, x, grid)
            chain0, ref = traj[0], traj
        else:
            trace = cycle_encode(model, x, grid, GaussianNoise(g), variant="markov", eta=1.0)
            chain0, ref = trace.chain[0], trace.chain
        lat = chain0.clone()
        for i, (h, t) in enumerate(zip(handles, targets)):
            if k < ms[i]:
                src = (round(h[0] + (t[0] - h[0]) * k / ms[i]), round(h[1] + (t[1] - h[1]) * k / ms[i]))
                dst = (round(h[0] + (t[0] - h[0]) * (k + 1) / ms[i]), round(h[1] + (t[1] - h[1]) * (k + 1) / ms[i]))
                lat[i:i + 1] = copy_paste(chain0[i:i + 1], src, dst, r, alpha, beta, g)
        post = lambda i, z, ref=ref: torch.where(editable, z, ref[i + 1])  # noqa: E731
        if method == "ODE":
            new = sample_ddim(model, lat, grid, eta=0.0, post_step=post)
        else:
            new = cycle_replay(model, lat, grid, trace.noises, eta=1.0, post_step=post)
        x = torch.where(active[:, None], new, x)
    return x


def _drag_problem(x: Tensor, g: torch.Generator) -> tuple[tuple[int, int], tuple[int, int], Tensor]:
    """A handle on the stroke (bright pixel away from the border), a target 2–3 px away, an editable box around both."""
    im = x.reshape(16, 16)
    cand = torch.nonzero(im[3:13, 3:13] > 0.3) + 3
    if len(cand) == 0:
        cand = torch.nonzero(im[3:13, 3:13] >= im[3:13, 3:13].max()) + 3
    h = cand[torch.randint(0, len(cand), (1,), generator=g)].flatten().tolist()
    for _ in range(100):
        dy, dx = (int(v) for v in torch.randint(-3, 4, (2,), generator=g))
        if 2 <= math.hypot(dy, dx) <= 3.2 and 2 <= h[0] + dy <= 13 and 2 <= h[1] + dx <= 13:
            break
    t = [h[0] + dy, h[1] + dx]
    m = torch.zeros(16, 16, dtype=torch.bool)
    m[max(min(h[0], t[0]) - 3, 0):max(h[0], t[0]) + 4, max(min(h[1], t[1]) - 3, 0):max(h[1], t[1]) + 4] = True
    return (h[0], h[1]), (t[0], t[1]), m.flatten()


def handle_distance(orig: Tensor, out: Tensor, handle, target, r: int = 1, window: int = 4) -> float:
    """'Mean Distance' analogue: best L2 match of the original handle patch in the output (within ± window of the
    handle), Euclidean distance of that match to the target."""
    o, y = orig.reshape(16, 16), out.reshape(16, 16)
    pad_o = torch.nn.functional.pad(o, (r, r, r, r), value=-1.0)
    pad_y = torch.nn.functional.pad(y, (r, r, r, r), value=-1.0)
    p = pad_o[handle[0]:handle[0] + 2 * r + 1, handle[1]:handle[1] + 2 * r + 1]
    best, bpos = float("inf"), handle
    for cy in range(max(handle[0] - window, 0), min(handle[0] + window, 15) + 1):
        for cx in range(max(handle[1] - window, 0), min(handle[1] + window, 15) + 1):
            d = float(((pad_y[cy:cy + 2 * r + 1, cx:cx + 2 * r + 1] - p) ** 2).sum())
            if d < best:
                best, bpos = d, (cy, cx)
    return math.hypot(bpos[0] - target[0], bpos[1] - target[1])


def run_drag(ctx: Context, out: Path | None = None) -> dict:
    sz = ctx.sizes
    imgs, labels = _balanced(ctx.test, sz.drag_images, ctx.seed + 3)
    g = torch.Generator().manual_seed(ctx.seed + 33)
    probs = [_drag_problem(imgs[i], g) for i in range(len(imgs))]
    grid = ctx.schedule.grid(sz.drag_steps).tail(sz.drag_t0)
    ref = ctx.mixture.sample(len(imgs), g)
    units = torch.arange(len(imgs))
    rep: dict = {"experiment": "drag", "model": ctx.model_name, "steps": sz.drag_steps, "t0": sz.drag_t0,
                 "alpha": 1.1, "beta": 0.3, "step_size_px": 1.0, "patch_half_size": 1, "rows": [],
                 "input_measures": {"fd": _fd_ci(ctx, imgs, ref, units), "logp0": _logp_ci(ctx, imgs),
                                    "handle_distance": mean_ci([math.hypot(h[0] - t[0], h[1] - t[1]) for h, t, _ in probs])}}
    outs, raw_g = {}, {}
    for method in ("ODE", "SDE"):
        xs = drag(ctx.model, grid, imgs, [p[0] for p in probs], [p[1] for p in probs],
                  torch.stack([p[2] for p in probs]), method, ctx.seed * 101)
        outs[method] = xs
        with torch.no_grad():
            kept = (ctx.classifier(xs).argmax(1) == labels).double()
        hd = [handle_distance(imgs[i], xs[i], probs[i][0], probs[i][1]) for i in range(len(imgs))]
        raw_g[method] = {"logp0": ctx.mixture.log_prob(xs).numpy(), "class_kept": kept.numpy(), "handle_distance": hd,
                         "l2_change": (xs - imgs).norm(dim=1).numpy()}
        rep["rows"].append({
            "method": method, "fd": _fd_ci(ctx, xs, ref, units), "logp0": _logp_ci(ctx, xs),
            "class_kept": mean_ci(kept.numpy()), "handle_distance": mean_ci(hd),
            "l2_change": mean_ci((xs - imgs).norm(dim=1).numpy()),
        })
    rep["paired"] = {"fd": _fd_diff_ci(ctx, outs["ODE"], outs["SDE"], ref, units),
                     **{k: _diff_ci(raw_g["ODE"][k], raw_g["SDE"][k]) for k in raw_g["ODE"]}}
    if out is not None:
        n = min(8, len(imgs))
        rows = []
        for i in range(n):
            mark = imgs[i].clone().reshape(16, 16)
            h, t, _ = probs[i]
            mark[h] = -0.3
            mark[t] = 0.3
            rows.append(torch.cat([imgs[i:i + 1], mark.reshape(1, -1), outs["ODE"][i:i + 1], outs["SDE"][i:i + 1]]))
        _grid_png(rows, [f"#{i}" for i in range(n)], ["original", "handle/target", "ODE-Drag", "SDE-Drag"],
                  out / "drag_grid.png", f"drag ({ctx.model_name} model)")
    return rep


# --------------------------------------------------------------------------------------------------------------------
RUNNERS = {"inpaint": run_inpaint, "translate": run_translate, "diffedit": run_diffedit, "drag": run_drag}


def run_experiment(name: str, ctx: Context, out: Path) -> dict:
    from ..io import run_meta, write_json

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rep = RUNNERS[name](ctx, out)
    rep["sizes"] = ctx.sizes.to_dict()
    rep["seed"] = ctx.seed
    rep["mixture"] = {**MixtureConfig().to_dict(), "components": ctx.mixture.num_components}
    rep["schedule"] = "ddpm_linear(T=1000, beta 1e-4..0.02); evenly spaced timesteps; eta-DDIM (0 = ODE, 1 = SDE)"
    if ctx.learned_meta:
        rep["learned_model"] = ctx.learned_meta
    rep["meta"] = run_meta(time.time() - t0)
    write_json(out / f"{name}.json", rep)
    return rep


def run_all(ctx: Context, out: Path) -> dict:
    from ..io import write_json

    reps = {name: run_experiment(name, ctx, out) for name in RUNNERS}
    write_json(out / "report.json", reps)
    from .report import markdown_report

    md = markdown_report(reps)
    tmp = out / "report.md.tmp"
    tmp.write_text(md)
    tmp.replace(out / "report.md")
    return reps
