"""Figures for the toy experiments.  Every function takes a report dict and returns a matplotlib Figure;
``*_figures(report, out_dir)`` save the PNGs of one experiment and return their file names.

Figures are built with the object API (:class:`matplotlib.figure.Figure`), not pyplot, so no backend is selected
and no global figure state is touched; :func:`toy.io.save_figure` writes them.  ``SDE_COLOR`` / ``ODE_COLOR`` are
the two sampler colours of every toy and digits figure.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .io import save_figure

SDE_COLOR = "tab:red"
ODE_COLOR = "tab:blue"
CYCLE_COLOR = "tab:green"  # the Cycle-SDE curve of the contraction study
COLORS = {"sde": SDE_COLOR, "ode": ODE_COLOR, "cycle": CYCLE_COLOR}
STYLES = {"exact": "-", "learned": "--"}
TIME_LABEL = "diffusion time t (dimensionless, t0 → 0)"


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize=(6, 4), **kw):
    """(Figure, axes) like ``plt.subplots`` but without pyplot (see the module docstring)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def fig_kl_curves(report: dict):
    """KL(q_t ‖ p_t) vs t for exact/learned × SDE/ODE."""
    fig, ax = _subplots(figsize=(6, 4))
    for name in ("exact", "learned"):
        for s in ("sde", "ode"):
            d = report[name][s]
            ax.plot(d["times"], d["kl"], STYLES[name], color=COLORS[s], label=f"{s.upper()}, {name} score")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("KL(q_t ‖ p_t)  [nats]")
    ax.set_title("Edited vs data marginals along the reverse process")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def fig_fisher(report: dict):
    """Fisher integrand ½ g²(t) F(t) vs t (the SDE's KL dissipation rate)."""
    fig, ax = _subplots(figsize=(6, 4))
    for name in ("exact", "learned"):
        for s in ("sde", "ode"):
            d = report[name][s]
            y = 0.5 * np.asarray(d["g2"]) * np.asarray(d["fisher"], dtype=float)
            ax.plot(d["times"], y, STYLES[name], color=COLORS[s], label=f"{s.upper()}, {name} score")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("½ g(t)² F(t)  [nats per unit time]")
    ax.set_title("Fisher integrand (Thm 3.1: dKL/dt = ½ g² F on the SDE)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def cumulative_fisher(times, g2, fisher) -> np.ndarray:
    """∫_t^{t0} ½ g² F dτ along the saved times (trapezoid in log τ, like theory.results)."""
    t = np.asarray(times, dtype=float)
    y = 0.5 * np.asarray(g2, dtype=float) * np.asarray(fisher, dtype=float) * t
    lt = np.log(t)
    inc = 0.5 * (y[1:] + y[:-1]) * np.abs(np.diff(lt))
    return np.concatenate([[0.0], np.cumsum(inc)])


def fig_identity(report: dict):
    """Thm 3.1 check: KL(t0) − KL(t) against ∫_t^{t0} ½ g² F dτ for the SDE (exact and learned drift)."""
    fig, ax = _subplots(figsize=(6, 4))
    for name in ("exact", "learned"):
        d = report[name]["sde"]
        drop = d["kl_start"] - np.asarray(d["kl"])
        ax.plot(d["times"], drop, STYLES[name], color=SDE_COLOR, label=f"KL(t0) − KL(t), {name}")
        ax.plot(d["times"], cumulative_fisher(d["times"], d["g2"], d["fisher"]), STYLES[name], color="k",
                alpha=0.6, label=f"∫ ½ g² F dτ, {name}")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("nats")
    ax.set_title("SDE: KL drop equals the integrated Fisher divergence")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def fig_score_error(err: dict):
    """Relative score error of the learned model vs t."""
    fig, ax = _subplots(figsize=(6, 4))
    ax.plot(err["times"], err["rel_error"], "o-", ms=3, label="learned ε-MLP")
    ax.set_xscale("log")
    ax.set_xlabel("diffusion time t (dimensionless)")
    ax.set_ylabel("relative score error  √(E‖ŝ − s‖² / E‖s‖²)")
    ax.set_title(f"Score error (mean {err['mean_rel_error']:.3f})")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def fig_particles(report: dict):
    """Particle KL of discrete η-DDIM samplers vs steps, with the grid solver's kl_end as reference."""
    fig, axes = _subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, name in zip(axes, ("exact", "learned")):
        for s in ("sde", "ode"):
            pr = report["particles"][name][s]
            ax.errorbar(pr["steps"], pr["kl"], yerr=np.nan_to_num(pr["kl_ci"]), marker="o", color=COLORS[s],
                        capsize=3, label=f"DDIM η={pr['eta']:g} ({s.upper()}), particles")
            ax.plot(pr["steps"], pr["floor"], ":", color=COLORS[s], label=f"η={pr['eta']:g}, started from p (floor)")
            ax.axhline(report[name][s]["kl_end"], color=COLORS[s], ls="--", alpha=0.6, label=f"grid {s.upper()} KL(t_end)")
        ax.set_xscale("log")
        ax.set_xlabel("sampler steps N")
        ax.set_title(f"{name} score")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("KL(q̂_N ‖ p_t_end)  [nats]")
    axes[1].legend(fontsize=7)
    return fig


def kl_curves_figures(report: dict, out_dir) -> list[str]:
    out = Path(out_dir)
    figs = {"kl_curves.png": fig_kl_curves(report), "fisher.png": fig_fisher(report),
            "identity.png": fig_identity(report), "score_error.png": fig_score_error(report["score_error"]),
            "particles.png": fig_particles(report)}
    for name, fig in figs.items():
        save_figure(fig, out / name)
    return sorted(figs)


EDIT_LABELS = {"inpainting": ("kl", "KL(output ‖ p_0) = E KL to exact conditional [nats]"),
               "sdedit": ("kl", "realism: KL(output ‖ p_0) [nats]"),
               "drag": ("success", "drag success rate (fraction)")}


def _method_label(task: str, m: str) -> str:
    if task == "drag":
        return {"sde": "SDE-Drag (Cycle-SDE)", "ode": "ODE-Drag"}.get(m, m)
    return "Cycle-SDE" if m == "cycle" else m.upper()


def fig_editing_task(report: dict, task: str, key: str | None = None, ylabel: str | None = None):
    """Metric vs t0 for each method and step count, with 95% CI error bars."""
    rows = report["tasks"][task]
    key = key or EDIT_LABELS[task][0]
    ylabel = ylabel or EDIT_LABELS[task][1]
    steps = sorted({r["steps"] for r in rows})
    methods = sorted({r["method"] for r in rows}, key=["sde", "ode", "cycle"].index)
    fig, ax = _subplots(figsize=(6, 4))
    for m in methods:
        for j, n in enumerate(steps):
            rr = sorted([r for r in rows if r["method"] == m and r["steps"] == n], key=lambda r: r["t0"])
            ax.errorbar([r["t0"] for r in rr], [r[key] for r in rr], yerr=[np.nan_to_num(r[key + "_ci"]) for r in rr],
                        color=COLORS[m], alpha=0.4 + 0.6 * (j + 1) / len(steps), marker="o", capsize=3,
                        label=f"{_method_label(task, m)}, {n} steps")
    ax.set_xlabel("edit start time t0 (dimensionless)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"toy {task}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def fig_sdedit_tradeoff(report: dict):
    """SDEdit realism (KL to p_0) vs faithfulness (distance to the input), one point per (t0, steps)."""
    rows = report["tasks"]["sdedit"]
    fig, ax = _subplots(figsize=(6, 4))
    for m in ("sde", "ode"):
        rr = [r for r in rows if r["method"] == m]
        ax.scatter([r["distance"] for r in rr], [r["kl"] for r in rr], color=COLORS[m], label=m.upper())
        for r in rr:
            ax.annotate(f"t0={r['t0']:g},N={r['steps']}", (r["distance"], r["kl"]), fontsize=6)
    ax.set_xlabel("faithfulness: mean ‖output − input‖ (data units)")
    ax.set_ylabel("realism: KL(output ‖ p_0) [nats]")
    ax.set_title("SDEdit: realism vs faithfulness")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def editing_figures(report: dict, out_dir) -> list[str]:
    out = Path(out_dir)
    figs = {f"editing_{t}.png": fig_editing_task(report, t) for t in report["tasks"]}
    figs["editing_sdedit_tradeoff.png"] = fig_sdedit_tradeoff(report)
    for name, fig in figs.items():
        save_figure(fig, out / name)
    return sorted(figs)


def fig_schedules(report: dict):
    """Particle KL(q̂_N ‖ p_t_end) vs steps per schedule, η = 0 (ODE) and η = 1 (SDE)."""
    fig, ax = _subplots(figsize=(6, 4))
    ls = {"vp-linear": "-", "vp-cosine": "--", "ve": ":"}
    for name, d in report["schedules"].items():
        for eta, s in ((1.0, "sde"), (0.0, "ode")):
            rr = [r for r in d["rows"] if r["eta"] == eta]
            ax.errorbar([r["steps"] for r in rr], [r["kl"] for r in rr], yerr=[np.nan_to_num(r["kl_ci"]) for r in rr],
                        ls=ls[name], color=COLORS[s], marker="o", capsize=3, label=f"{name}, {s.upper()} (η={eta:g})")
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps N")
    ax.set_ylabel("KL(q̂_N ‖ p_t_end)  [nats]")
    ax.set_title("Schedules (t0, t_end matched by SNR)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def fig_eta(report: dict):
    fig, ax = _subplots(figsize=(6, 4))
    rows = report["eta"]["rows"]
    for N in sorted({r["steps"] for r in rows}):
        rr = sorted([r for r in rows if r["steps"] == N], key=lambda r: r["eta"])
        ax.errorbar([r["eta"] for r in rr], [r["kl"] for r in rr], yerr=[np.nan_to_num(r["kl_ci"]) for r in rr],
                    marker="o", capsize=3, label=f"N = {N} steps")
    ax.set_xlabel("η (0 = DDIM/ODE, 1 = DDPM/SDE)")
    ax.set_ylabel("KL(q̂_N ‖ p_t_end)  [nats]")
    ax.set_title("Edited-output KL vs η (vp-linear)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def fig_cycle(report: dict):
    fig, ax = _subplots(figsize=(6, 4))
    c = report["cycle"]
    for m, lab in (("cycle", "Cycle-SDE (recorded noise)"), ("sde", "SDE (fresh noise)"), ("ode", "ODE (DDIM)")):
        ax.errorbar(c[m]["times"], c[m]["kl"], yerr=np.nan_to_num(c[m]["kl_ci"]), color=COLORS[m], marker="o",
                    capsize=3, label=lab)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("KL(q̂_t ‖ p_t)  [nats]")
    ax.set_title("Cycle-SDE contraction after a latent shift at t0")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def fig_lsi(report: dict):
    fig, axes = _subplots(1, 2, figsize=(10, 4))
    g = report["lsi"]["gaussian"]
    axes[0].plot(g["times"], g["kl"], label="SDE KL(q_t ‖ p_t), grid solver")
    axes[0].plot(g["times"], g["bound"], "--", label="LSI bound exp(−∫ g²/C) KL(t0)")
    axes[0].set_title("Gaussian p_0: exponential rate")
    m = report["lsi"]["mixture"]
    axes[1].plot(m["times"], m["c_eff"], label="effective C = 2 KL / F (mixture path)")
    axes[1].plot(m["times"], m["c_gauss_fit"], "--", label="C of moment-matched Gaussian")
    axes[1].set_title("2-D mixture: effective LSI constant")
    for ax, yl in zip(axes, ("nats", "C (data units²)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(yl)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def study_figures(report: dict, out_dir) -> list[str]:
    out = Path(out_dir)
    figs = {"study_schedules.png": fig_schedules(report), "study_eta.png": fig_eta(report),
            "study_cycle.png": fig_cycle(report), "study_lsi.png": fig_lsi(report)}
    for name, fig in figs.items():
        save_figure(fig, out / name)
    return sorted(figs)
