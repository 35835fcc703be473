"""What every digit experiment shares: sizes, the context (models, data, classifier), image reshaping, the measures
with their 95% intervals and the figures.

The experiments themselves (:mod:`.inpaint`, :mod:`.translate`, :mod:`.diffedit`, :mod:`.drag`) only build inputs,
masks and points, call :mod:`diffsamplers.recipes` and measure; :mod:`.suite` runs them and writes the reports.
Each returns a JSON-able report with 95% confidence intervals (normal approximation over independent units, or a
delete-one-block jackknife over units for Fréchet distances) and writes PNG figures.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .data import SIDE, DigitData, load_digits
from .metrics import gaussian_w2, jackknife_ci, load_classifier, mean_ci
from .mixture import DigitMixture, MixtureConfig, build_mixture
from .schedules import DiscreteSchedule, ddpm_linear, exact_eps_model

__all__ = ["DT", "SIDE", "METHODS", "Sizes", "Context", "make_context", "as_image", "as_rows", "balanced",
           "fd_ci", "fd_diff_ci", "logp_ci", "diff_ci", "unit_means", "method_colors", "grid_png", "curve_plot"]

DT = torch.float64
# report label → recipe sampler; the reports and Markdown tables keep the labels "ODE" / "SDE"
METHODS: tuple[tuple[str, str], ...] = (("ODE", "ode"), ("SDE", "sde"))


def as_image(x: Tensor) -> Tensor:
    """Rows [..., SIDE²] → images [..., SIDE, SIDE] (row-major, as the data are stored)."""
    return x.reshape(*x.shape[:-1], SIDE, SIDE)


def as_rows(x: Tensor) -> Tensor:
    """Images [..., SIDE, SIDE] → rows [..., SIDE²]."""
    return x.reshape(*x.shape[:-2], SIDE * SIDE)


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


def balanced(test: DigitData, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """n held-out digits, classes balanced (round robin), deterministic in seed."""
    g = torch.Generator().manual_seed(seed)
    per = [torch.nonzero(test.labels == c).flatten() for c in range(10)]
    per = [p[torch.randperm(len(p), generator=g)] for p in per]
    idx = [per[i % 10][i // 10 % len(per[i % 10])] for i in range(n)]
    idx = torch.stack(idx)
    return test.images[idx].to(DT), test.labels[idx]


# --------------------------------------------------------------------------------------------------------------------
# measures
def fd_ci(ctx: Context, x: Tensor, ref: Tensor, units: Tensor) -> dict:
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


def logp_ci(ctx: Context, x: Tensor) -> dict:
    return mean_ci(ctx.mixture.log_prob(x).numpy())


def fd_diff_ci(ctx: Context, x_ode: Tensor, x_sde: Tensor, ref: Tensor, units: Tensor) -> dict:
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


def diff_ci(ode, sde) -> dict:
    """Paired per-unit differences ODE − SDE: mean ± 1.96 s.e."""
    return mean_ci(np.asarray(ode, dtype=np.float64).ravel() - np.asarray(sde, dtype=np.float64).ravel())


def unit_means(v: Tensor, units: Tensor) -> np.ndarray:
    """Per-unit means of per-row values (rows of one unit share an input, so the unit is the independent draw)."""
    u = units.numpy()
    vv = np.asarray(v, dtype=np.float64)
    return np.array([vv[u == k].mean() for k in np.unique(u)])


# --------------------------------------------------------------------------------------------------------------------
# figures (object API, no pyplot: nothing global is touched; toy.plots holds the SDE / ODE colours)
def method_colors() -> dict[str, str]:
    from ..plots import ODE_COLOR, SDE_COLOR

    return {"ODE": ODE_COLOR, "SDE": SDE_COLOR}


def grid_png(rows: list[Tensor], row_labels: list[str], col_labels: list[str] | None, path: Path,
             title: str = "") -> None:
    """An image grid (one row of SIDE² vectors per entry of ``rows``) saved as PNG."""
    from matplotlib.figure import Figure

    from ..io import save_figure

    nr, nc = len(rows), rows[0].shape[0]
    fig = Figure(figsize=(0.9 * nc + 1.2, 0.95 * nr + 0.4))
    axes = fig.subplots(nr, nc, squeeze=False)
    for r, imgs in enumerate(rows):
        for c in range(nc):
            ax = axes[r][c]
            ax.imshow(as_image(imgs[c]).float().clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
            if r == 0 and col_labels:
                ax.set_title(col_labels[c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def curve_plot(rows, xkey, xlabel, path, title) -> None:
    """FD vs ``xkey`` (annotated with t0) and exact log p_0 vs t0, one curve per method."""
    from matplotlib.figure import Figure

    from ..io import save_figure

    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    for method, c in method_colors().items():
        rr = [r for r in rows if r["method"] == method]
        xs = [r[xkey]["mean"] for r in rr]
        fd = np.array([r["fd"]["value"] for r in rr])
        lo = np.array([r["fd"]["lo95"] for r in rr])
        hi = np.array([r["fd"]["hi95"] for r in rr])
        axes[0].errorbar(xs, fd, yerr=[np.maximum(fd - lo, 0), np.maximum(hi - fd, 0)], marker="o", color=c,
                         label=method, capsize=3)
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
