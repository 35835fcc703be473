"""Figures of issue 20 (object API, no pyplot): −log p_t along the chains, the SDE's advantage against the mismatch
at t0, and position error against NLL per method (Pareto), per family, exact and learned."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..plots import ODE_COLOR, SDE_COLOR

__all__ = ["METHOD_STYLE", "fig_nll_path", "fig_mismatch", "fig_pareto"]

METHOD_STYLE = {"ODE": (ODE_COLOR, "o"), "SDE": (SDE_COLOR, "s"), "hybrid-late": ("tab:green", "^"),
                "hybrid-early": ("tab:orange", "v"), "hybrid-eta0.25": ("tab:purple", "D"),
                "hybrid-eta0.5": ("tab:brown", "P")}


def _style(m: str):
    return METHOD_STYLE.get(m, ("tab:gray", "x"))


def _label(m: str) -> str:
    from .report import method_label

    return method_label(m)


def fig_nll_path(report: dict, family: str) -> Figure:
    """One panel per model: mean −log p_t(x_t) − median of p_t draws (95% band) after every decoding step of the
    last operation, per method; the markers at t0 are right after the paste."""
    models = [m for m in report["results"] if family in report["results"][m]
              and "nll_path" in report["results"][m][family]["defaults"]]
    fig = Figure(figsize=(4.6 * max(len(models), 1), 3.4))
    axes = fig.subplots(1, max(len(models), 1), squeeze=False)[0]
    for ax, model in zip(axes, models):
        d = report["results"][model][family]["defaults"]
        p = d["nll_path"]
        ts = np.array(p["timesteps"], dtype=float)
        ts[ts < 0] = 0
        ref = np.array(p["data_median"])
        t0 = float(d["settings"]["t0"]) * 1000
        for m, v in p["methods"].items():
            col, mk = _style(m)
            mean = np.array(v["mean"]) - ref
            half = np.nan_to_num(np.array(v["ci95"]))
            ax.plot(ts, mean, color=col, lw=1.2, label=_label(m))
            ax.fill_between(ts, mean - half, mean + half, color=col, alpha=0.2, lw=0)
            x0 = d["methods"][m]["nll_t0_last"]
            ax.errorbar([t0], [x0["mean"] - p["data_median_t0"]], yerr=[np.nan_to_num(x0["ci95"])], color=col,
                        marker=mk, ms=4, capsize=2)
        ax.axhline(0, color="k", lw=0.5, ls=":")
        ax.invert_xaxis()
        ax.set_yscale("symlog", linthresh=10.0)
        ax.set_xlabel("timestep the step lands on (t0 → 0)", fontsize=8)
        ax.set_ylabel("−log p_t(x_t) − median over p_t draws", fontsize=8)
        ax.set_title(f"{family}, {model} model", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle("the theorem's quantity along the chain (markers at t0: right after the paste)", fontsize=9)
    return fig


def fig_mismatch(report: dict, family: str) -> Figure:
    """Per model: per task, the SDE's mismatch right after the first paste (nll_t0 − data median) against its
    final advantage ODE − SDE in NLL (left) and in position error (right)."""
    models = [m for m in report["results"] if family in report["results"][m]
              and "mismatch" in report["results"][m][family]["defaults"]]
    fig = Figure(figsize=(8.4, 3.2 * max(len(models), 1)))
    axes = fig.subplots(max(len(models), 1), 2, squeeze=False)
    for r, model in enumerate(models):
        d = report["results"][model][family]["defaults"]
        ref = d["mismatch"]["data_median_t0"]
        rows = report["per_task"][model][family]
        x = np.array([t["SDE"]["nll_t0"] - ref for t in rows])
        for c, (key, what, label) in enumerate((("nll", "nll_advantage", "ODE − SDE NLL (> 0: SDE more realistic)"),
                                                ("position_error_px", "position_advantage",
                                                 "ODE − SDE position error (> 0: SDE closer)"))):
            ax = axes[r][c]
            y = np.array([t["ODE"][key] - t["SDE"][key] for t in rows])
            ax.scatter(x, y, s=10, color=SDE_COLOR, alpha=0.7)
            ax.axhline(0, color="k", lw=0.5, ls=":")
            cc = d["mismatch"][what]
            ax.set_title(f"{family}, {model}: r = {cc['pearson_r']:+.2f} [{cc['lo95']:+.2f}, {cc['hi95']:+.2f}]",
                         fontsize=8)
            ax.set_xlabel("SDE's −log p_t0 after the paste − data median", fontsize=7)
            ax.set_ylabel(label, fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle("does the SDE's advantage grow with the mismatch at t0?", fontsize=9)
    return fig


def fig_pareto(report: dict) -> Figure:
    """Rows exact / learned, one column per family: mean position error against mean NLL (95% intervals) of every
    method at the defaults; lower-left is better on both."""
    fams = [f for f in report["families"]]
    models = [m for m in report["results"]]
    fig = Figure(figsize=(3.4 * len(fams) + 0.6, 3.0 * len(models)))
    axes = fig.subplots(len(models), len(fams), squeeze=False)
    for r, model in enumerate(models):
        for c, fam in enumerate(fams):
            ax = axes[r][c]
            if fam not in report["results"][model]:
                ax.axis("off")
                continue
            ms = report["results"][model][fam]["defaults"]["methods"]
            for m, v in ms.items():
                col, mk = _style(m)
                ax.errorbar([v["position_error_px"]["mean"]], [v["nll"]["mean"]],
                            xerr=[np.nan_to_num(v["position_error_px"]["ci95"])], yerr=[np.nan_to_num(v["nll"]["ci95"])],
                            color=col, marker=mk, ms=5, capsize=2, ls="none", label=_label(m))
            ax.set_title(f"{fam}, {model}", fontsize=8)
            ax.set_xlabel("position error (px)", fontsize=7)
            ax.set_ylabel("NLL under p0 (nats)", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("position error vs NLL at the defaults (lower-left is better on both)", fontsize=9)
    return fig
