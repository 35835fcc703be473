"""Figures of the shapes drag test bed (object API, no pyplot: nothing global is touched; SDE red, ODE blue as
every toy figure, colours from :mod:`toy.plots`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..io import save_figure
from ..plots import ODE_COLOR, SDE_COLOR
from .measures import OUTCOMES

__all__ = ["fig_examples", "fig_failures", "fig_outcomes", "fig_sweeps", "shapes_figures", "SWEEP_LABELS"]

COLORS = {"ODE": ODE_COLOR, "SDE": SDE_COLOR}
SWEEP_LABELS = {"t0": "t0", "alpha": "α (target = α·patch)", "beta": "β (source = β·patch + noise)",
                "steps": "grid steps", "distance": "drag distance (px per axis)", "margin": "mask margin (px)",
                "step_size": "step size (px per operation)", "r": "window half-size r (px)", "handle": "handle",
                "schedule": "schedule"}
ROW_MEASURES = (("position_error_px", "position error (px)"), ("drag_fraction", "drag fraction (1 = all)"),
                ("success_rate", "success rate"),
                ("outcome_moved", "exact right answer"), ("nll", "NLL under p0 (nats)"))


def _show(ax, img, side: int, title: str = "", points=None) -> None:
    ax.imshow(np.clip(np.asarray(img, dtype=float).reshape(side, side), -1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])
    for (r, c), style in points or []:
        ax.plot([c], [r], style, ms=4, mew=1)
    if title:
        ax.set_title(title, fontsize=6)


def _task_rows(res, rows: list[int], side: int, columns: list[str], title: str) -> Figure:
    fig = Figure(figsize=(1.15 * len(columns) + 0.4, 1.2 * len(rows) + 0.5))
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, i in enumerate(rows):
        t = res.tasks[i]
        marks = [(t.handle, "c+"), (t.target, "yx")]
        for c, col in enumerate(columns):
            ax = axes[r][c]
            if col == "input":
                _show(ax, res.inputs[i], side, f"{t.kind} {t.size}, d={t.displacement}", marks)
            elif col == "answer":
                _show(ax, res.answers[i], side, "right answer")
            else:
                v = res.values[col]
                _show(ax, res.outputs[col][i], side,
                      f"{col}: {v['position_error_px'][i]:.1f} px, {'ok' if v['success_rate'][i] else 'fail'}", marks)
    fig.suptitle(title, fontsize=8)
    return fig


def fig_examples(res, side: int, n: int) -> Figure:
    """The first tasks of distinct kind × size (typical results at the defaults)."""
    seen, rows = set(), []
    for i, t in enumerate(res.tasks):
        if (t.kind, t.size, t.group % 2) not in seen and len(rows) < n:
            seen.add((t.kind, t.size, t.group % 2))
            rows.append(i)
    return _task_rows(res, rows, side, ["input", "answer", "ODE", "SDE"],
                      "typical drags at the defaults (+ handle, x target)")


def fig_failures(res, side: int, n: int) -> Figure:
    """Per method, its worst failures (no success, largest distance to the right answer); both outputs shown."""
    rows = []
    for m in ("ODE", "SDE"):
        v = res.values[m]
        order = np.lexsort((-v["l2_to_answer"], v["success_rate"]))
        rows += [int(i) for i in order[:n] if v["success_rate"][i] == 0]
    if not rows:
        rows = [0]
    return _task_rows(res, rows, side, ["input", "answer", "ODE", "SDE"],
                      "worst failures: ODE's first, then SDE's (+ handle, x target)")


def fig_outcomes(summary: dict) -> Figure:
    """Exact outcome shares at the defaults: moved to the right answer / stayed / another image / off the data."""
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    methods = list(summary["methods"])
    bottom = np.zeros(len(methods))
    shades = {"moved": "tab:green", "stayed": "tab:gray", "other": "tab:orange", "off": "tab:purple"}
    for o in OUTCOMES:
        v = np.array([summary["methods"][m][f"outcome_{o}"]["mean"] for m in methods])
        ax.bar(methods, v, bottom=bottom, color=shades[o], label=o, edgecolor=[COLORS[m] for m in methods])
        bottom += v
    ax.set_ylabel("fraction of tasks")
    ax.set_title("exact outcome at the defaults", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def fig_sweeps(report: dict) -> Figure:
    """One column per sweep, rows position error / drag fraction / success / exact answer / NLL: mean ± 95% interval,
    ODE blue, SDE red."""
    sweeps = report["sweeps"]
    names = list(sweeps)
    fig = Figure(figsize=(2.4 * len(names) + 0.5, 10.4))
    axes = fig.subplots(len(ROW_MEASURES), len(names), squeeze=False)
    default = report["settings"]
    for c, name in enumerate(names):
        rows = sweeps[name]
        xs = [r["value"] for r in rows]
        numeric = all(isinstance(x, (int, float)) for x in xs)
        pos = xs if numeric else list(range(len(xs)))
        for r, (key, label) in enumerate(ROW_MEASURES):
            ax = axes[r][c]
            for m, col in COLORS.items():
                mean = np.array([row["methods"][m][key]["mean"] for row in rows])
                half = np.nan_to_num(np.array([row["methods"][m][key]["ci95"] for row in rows]))
                ax.errorbar(pos, mean, yerr=half, color=col, marker="o", ms=3, capsize=2, label=f"{m}-Drag")
            ax.axvline(default[name] if numeric else xs.index(default[name]), color="k", lw=0.5, ls=":")
            if not numeric:
                ax.set_xticks(pos, [str(x) for x in xs])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == len(ROW_MEASURES) - 1:
                ax.set_xlabel(SWEEP_LABELS.get(name, name), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("sweeps around the defaults (dotted: default value); error bars: 95% intervals", fontsize=9)
    return fig


def shapes_figures(report: dict, res, side: int, out: Path) -> list[str]:
    """Write the four figures; returns their file names."""
    n = report["config"]["examples"]
    figs = {"examples.png": fig_examples(res, side, n), "failures.png": fig_failures(res, side, n),
            "outcomes.png": fig_outcomes(report["defaults"])}
    if report["sweeps"]:
        figs["sweeps.png"] = fig_sweeps(report)
    for name, fig in figs.items():
        save_figure(fig, Path(out) / name)
    return sorted(figs)
