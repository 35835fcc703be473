"""Figures of the shapes drag test bed (object API, no pyplot: nothing global is touched; SDE red, ODE blue as
every toy figure, colours from :mod:`toy.plots`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..io import save_figure
from ..plots import ODE_COLOR, SDE_COLOR
from .measures import OUTCOMES
from .plots_mismatch import fig_mismatch, fig_nll_path, fig_pareto
from .report import is_default

__all__ = ["fig_examples", "fig_failures", "fig_outcomes", "fig_sweeps", "fig_score_error", "shapes_figures",
           "SWEEP_LABELS"]

COLORS = {"ODE": ODE_COLOR, "SDE": SDE_COLOR}
SWEEP_LABELS = {"t0": "t0", "alpha": "α (target = α·patch)", "beta": "β (source = β·patch + noise)",
                "steps": "grid steps", "distance": "drag distance (px per axis)", "margin": "mask margin (px)",
                "step_size": "step size (px per operation)", "r": "window half-size r (px)", "handle": "handle",
                "schedule": "schedule", "contrast": "background contrast (textured)"}
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


def _task_rows(results: dict, rows: list[int], side: int, columns: list[tuple[str, str]], title: str) -> Figure:
    """One row per task index; columns ``("input"|"answer", model)`` or ``(method, model)`` from
    ``results[model]`` (SettingResults on the same tasks, the learned one on a prefix)."""
    fig = Figure(figsize=(1.15 * len(columns) + 0.4, 1.45 * len(rows) + 0.5))
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    first = next(iter(results.values()))
    for r, i in enumerate(rows):
        t = first.tasks[i]
        marks = [(t.handle, "c+"), (t.target, "yx")]
        for c, (col, model) in enumerate(columns):
            ax = axes[r][c]
            res = results[model]
            if i >= len(res.tasks):
                ax.axis("off")
                continue
            if col == "input":
                label = f"{t.kind} {t.size}, d={t.displacement}"
                if getattr(t, "other_kind", ""):
                    label = f"{t.kind} moves, {t.other_kind} stays"
                _show(ax, res.inputs[i], side, label, marks)
            elif col == "answer":
                _show(ax, res.answers[i], side, "right answer")
            else:
                v = res.values[col]
                _show(ax, res.outputs[col][i], side,
                      f"{model} {col}\n{v['position_error_px'][i]:.1f} px, "
                      f"{'ok' if v['success_rate'][i] else 'fail'}", marks)
    fig.suptitle(title, fontsize=8)
    return fig


def _columns(results: dict) -> list[tuple[str, str]]:
    first = next(iter(results))
    return [("input", first), ("answer", first)] + [(m, model) for model in results for m in ("ODE", "SDE")]


def fig_examples(results: dict, side: int, n: int, title: str = "typical drags at the defaults") -> Figure:
    """The first tasks of distinct kind × size (typical results at the defaults), every model side by side."""
    first = next(iter(results.values()))
    n_common = min(len(r.tasks) for r in results.values())
    seen, rows = set(), []
    for i, t in enumerate(first.tasks[:n_common]):
        key = (t.kind, t.size, t.group % 2)
        if key not in seen and len(rows) < n:
            seen.add(key)
            rows.append(i)
    return _task_rows(results, rows, side, _columns(results), f"{title} (+ handle, x target)")


def fig_failures(results: dict, side: int, n: int) -> Figure:
    """Per model and method, its worst failures (no success, largest distance to the right answer) among the tasks
    every model ran; all outputs shown."""
    n_common = min(len(r.tasks) for r in results.values())
    rows: list[int] = []
    for res in results.values():
        for m in ("ODE", "SDE"):
            v = res.values[m]
            order = np.lexsort((-v["l2_to_answer"][:n_common], v["success_rate"][:n_common]))
            rows += [int(i) for i in order[:max(1, n // len(results))] if v["success_rate"][i] == 0 and i not in rows]
    if not rows:
        rows = [0]
    return _task_rows(results, rows, side, _columns(results),
                      "worst failures (per model: ODE's, then SDE's; + handle, x target)")


def fig_outcomes(report: dict) -> Figure:
    """Exact outcome shares at the defaults per family × model × method: moved to the right answer / stayed /
    another image / off the data."""
    bars = [(f"{fam}\n{model}\n{m}", report["results"][model][fam]["defaults"]["methods"][m], m)
            for fam in report["families"] for model in report["results"] if fam in report["results"][model]
            for m in ("ODE", "SDE")]
    fig = Figure(figsize=(1.0 + 0.75 * len(bars), 3.4))
    ax = fig.subplots()
    labels = [b[0] for b in bars]
    bottom = np.zeros(len(bars))
    shades = {"moved": "tab:green", "stayed": "tab:gray", "other": "tab:orange", "off": "tab:purple"}
    for o in OUTCOMES:
        v = np.array([b[1][f"outcome_{o}"]["mean"] for b in bars])
        ax.bar(range(len(bars)), v, bottom=bottom, color=shades[o], label=o,
               edgecolor=[COLORS[b[2]] for b in bars], linewidth=1.5)
        bottom += v
    ax.set_xticks(range(len(bars)), labels, fontsize=6)
    ax.set_ylabel("fraction of tasks")
    ax.set_title("exact outcome at the defaults (family / model / method)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def fig_sweeps(report: dict, family: str = "single") -> Figure:
    """One column per sweep of ``family``, rows position error / drag fraction / success / exact answer / NLL:
    mean ± 95% interval, ODE blue, SDE red; exact model solid, learned dashed (where it ran that sweep)."""
    blocks = {model: report["results"][model][family] for model in report["results"]
              if family in report["results"][model]}
    names = []
    for b in blocks.values():
        names += [n for n in b["sweeps"] if n not in names]
    measures = ROW_MEASURES + ((("other_shift_px", "other object's shift (px)"),) if family == "pair" else ())
    fig = Figure(figsize=(2.4 * len(names) + 0.5, 2.1 * len(measures)))
    axes = fig.subplots(len(measures), len(names), squeeze=False)
    for c, name in enumerate(names):
        for model, b in blocks.items():
            if name not in b["sweeps"]:
                continue
            rows = b["sweeps"][name]
            xs = [r["value"] for r in rows]
            numeric = all(isinstance(x, (int, float)) for x in xs)
            pos = xs if numeric else list(range(len(xs)))
            for r, (key, label) in enumerate(measures):
                ax = axes[r][c]
                for m, col in COLORS.items():
                    mean = np.array([row["methods"][m][key]["mean"] for row in rows])
                    half = np.nan_to_num(np.array([row["methods"][m][key]["ci95"] for row in rows]))
                    ax.errorbar(pos, mean, yerr=half, color=col, marker="o" if model == "exact" else "s", ms=3,
                                capsize=2, ls="-" if model == "exact" else "--", label=f"{m}-Drag, {model}")
                dflt = next((x for x, row in zip(xs, rows) if is_default(report, name, row)), None)
                if dflt is not None:
                    ax.axvline(dflt if numeric else xs.index(dflt), color="k", lw=0.5, ls=":")
                if not numeric:
                    ax.set_xticks(pos, [str(x) for x in xs])
                if c == 0:
                    ax.set_ylabel(label, fontsize=8)
                if r == len(measures) - 1:
                    ax.set_xlabel(SWEEP_LABELS.get(name, name), fontsize=8)
                ax.tick_params(labelsize=7)
                ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    for r, (key, _) in enumerate(measures):
        if key == "nll":                                  # the learned model's NLL can be 10× the data's: symlog
            lo, hi = (min(ax.get_ylim()[0] for ax in axes[r]), max(ax.get_ylim()[1] for ax in axes[r]))
            if hi - lo > 2000:
                for ax in axes[r]:
                    ax.set_yscale("symlog", linthresh=100.0)
    fig.suptitle(f"{family} family: sweeps around the defaults\n(dotted: default value; solid exact, dashed "
                 "learned; error bars: 95% intervals)", fontsize=9)
    return fig


def fig_score_error(report: dict) -> Figure:
    """The learned UNets' score error ‖ε_θ − ε_exact‖²/d per timestep (log scale), one line per family."""
    fig = Figure(figsize=(4.6, 3))
    ax = fig.subplots()
    for fam, meta in report["models"].get("learned", {}).items():
        per = meta["score_error"]["per_timestep"]
        ts = sorted(per, key=int)
        ax.plot([int(t) for t in ts], [per[t] for t in ts], marker="o", ms=3,
                label=f"{fam} ({meta.get('steps')} steps)")
        t0 = meta.get("mean_sq_eps_error_at_t0")
        if t0:
            ax.plot([t0["t"]], [t0["value"]], "k*", ms=7)
    ax.set_yscale("log")
    ax.set_xlabel("timestep t (SD scaled-linear schedule; * the drag's t0)", fontsize=8)
    ax.set_ylabel("‖ε_θ − ε_exact‖² / d", fontsize=8)
    ax.set_title("learned UNet: score error", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def shapes_figures(report: dict, defaults: dict, out: Path) -> list[str]:
    """Write the figures; ``defaults`` maps (model, family) to the SettingResult at the defaults.  Returns the
    file names."""
    n = report["config"]["examples"]
    figs = {}
    for fam in report["families"]:
        suffix = "" if fam == "single" else f"_{fam}"
        res = {model: r for (model, f), r in defaults.items() if f == fam}
        if not res:
            continue
        side = next(iter(res.values())).inputs.shape[-1]
        side = int(round(side ** 0.5))
        what = {"pair": "two-object scenes", "single": "one object"}.get(fam, f"{fam} scenes")
        figs[f"examples{suffix}.png"] = fig_examples(res, side, n, f"typical drags at the defaults, {what}")
        figs[f"failures{suffix}.png"] = fig_failures(res, side, n)
        if any(report["results"][m][fam]["sweeps"] for m in report["results"] if fam in report["results"][m]):
            figs[f"sweeps{suffix}.png"] = fig_sweeps(report, fam)
        if any("nll_path" in report["results"][m][fam]["defaults"] for m in report["results"]
               if fam in report["results"][m]):
            figs[f"nll_path{suffix}.png"] = fig_nll_path(report, fam)
            figs[f"mismatch{suffix}.png"] = fig_mismatch(report, fam)
    figs["outcomes.png"] = fig_outcomes(report)
    figs["pareto.png"] = fig_pareto(report)
    if report["models"].get("learned"):
        figs["score_error.png"] = fig_score_error(report)
    for name, fig in figs.items():
        save_figure(fig, Path(out) / name)
    return sorted(figs)
