"""Figure and markdown of the fast-preset study (:mod:`toy.faststudy`): ε-evaluations per edit against position
error, success and NLL, per cell, with paired 95 % intervals against the official defaults."""
from __future__ import annotations

from pathlib import Path

__all__ = ["pareto_figure", "study_markdown"]

MEASURES = (("position_error_px", "position error (px)"), ("success_rate", "success rate"), ("nll", "NLL"))


def pareto_figure(rep: dict, out: Path) -> dict:
    """``fast_pareto.png``: one column per cell, rows position error / success / NLL against nfe (log x); a point
    per candidate and method (bars: the paired 95 % interval of fast − official, drawn around the reference's mean),
    the reference as a star, the chosen setting ringed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    from .plots import ODE_COLOR, SDE_COLOR

    colors = {"ODE": ODE_COLOR, "SDE": SDE_COLOR}
    cells = list(rep["cells"])
    chosen = rep["decision"]["chosen"] or rep["decision"].get("fallback")
    fig = Figure(figsize=(3.6 * len(cells), 8.4))
    axes = fig.subplots(3, len(cells), squeeze=False)
    for j, cell in enumerate(cells):
        runs = rep["cells"][cell]
        ref = runs["reference"]["values"]
        for i, (key, label) in enumerate(MEASURES):
            ax = axes[i][j]
            for m in ("ODE", "SDE"):
                r0 = ref[m][key]["mean"]
                shift = 0.96 if m == "ODE" else 1.04  # ODE and SDE side by side at the same budget
                ax.scatter([ref[m]["nfe"]["mean"] * shift], [r0], marker="*", s=160, color=colors[m], edgecolor="k",
                           zorder=4, label=f"{m} official" if i == j == 0 else None)
                for name, run in runs.items():
                    if name == "reference":
                        continue
                    p = run["paired_vs_reference"][m][key]
                    x = run["values"][m]["nfe"]["mean"] * shift
                    mk = "o" if name.startswith("dpmpp") else "s"
                    ax.errorbar([x], [r0 + p["mean"]], yerr=[[p["ci95"]], [p["ci95"]]], fmt=mk, ms=4,
                                color=colors[m], alpha=0.75, lw=0.8)
                    if name == chosen:
                        ax.scatter([x], [r0 + p["mean"]], s=140, facecolors="none", edgecolors="k", zorder=5,
                                   label="fast preset" if i == j == 0 and m == "SDE" else None)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator([10, 20, 50, 100, 200, 500, 1000]))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            if i == 0:
                ax.set_title(cell, fontsize=9)
            if i == 2:
                ax.set_xlabel("ε-evaluations per edit")
            if j == 0:
                ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("fast candidates vs official (stars); circles DPM-Solver++ 2M, squares DDIM; bars: paired 95 %",
                 fontsize=9)
    fig.tight_layout()
    path = Path(out) / "fast_pareto.png"
    fig.savefig(path, dpi=110)
    return {"pareto": path.name}


def _fmt(p: dict) -> str:
    return f"{p['mean']:+.3g} [{p['mean'] - p['ci95']:+.3g}, {p['mean'] + p['ci95']:+.3g}]"


def study_markdown(rep: dict) -> str:
    """The study as markdown: rule, decision, the table of every candidate, held-out check and digits."""
    d = rep["decision"]
    ref = rep["reference"]
    lines = ["# Fast preset study (SDE-Drag / ODE-Drag at matched budgets)\n",
             f"Reference: official preset, DDIM / Cycle-SDE, S = {ref['steps']}, step {ref['step_size']} px. "
             f"Rule: {rep['rule']}. Picked on task seed {rep['pick_seed']}.\n",
             f"The `fast` preset runs `{rep['preset_fast']['name']}`.\n",
             f"**Chosen: `{d['chosen']}`**\n" if d["chosen"] else
             "**No candidate meets the rule in every cell.** " + (
                 f"Fallback (every failure within noise, fewest failures, then cheapest): `{d['fallback']}`, which "
                 f"loses: " + "; ".join(next(r["fails"] for r in d["rows"] if r["candidate"] == d["fallback"])) + ".\n"
                 if d.get("fallback") else "No candidate keeps its failures within noise either.\n"),
             "| candidate | cell | method | nfe | ratio | Δ position (px) | Δ success | Δ NLL |",
             "|---|---|---|---|---|---|---|---|"]
    for cell, runs in rep["cells"].items():
        for name, run in runs.items():
            if name == "reference":
                continue
            for m in ("ODE", "SDE"):
                p = run["paired_vs_reference"][m]
                lines.append(f"| {name} | {cell} | {m} | {run['values'][m]['nfe']['mean']:.1f} | "
                             f"{p['nfe_ratio']:.1f} | {_fmt(p['position_error_px'])} | {_fmt(p['success_rate'])} | "
                             f"{_fmt(p['nll'])} |")
    lines += ["", "Candidates passing the rule in every cell: "
              + (", ".join(f"`{r['candidate']}` (ratio {r['min_ratio']:.1f})" for r in d["rows"] if r["passes"])
                 or "none"), "", "What each candidate loses against the rule (ratio: the smallest over cells and "
              "methods):", ""]
    lines += [f"- `{r['candidate']}` (ratio {r['min_ratio']:.1f}): " + ("passes" if r["passes"] else "; ".join(r["fails"]))
              for r in d["rows"]]
    lines.append("")
    if rep["heldout"]:
        lines.append("## Held-out task seeds (the chosen setting and the preset's own)\n")
        for seed, by_cand in rep["heldout"].items():
            for name, cells in by_cand.items():
                for cell, v in cells.items():
                    for m in ("ODE", "SDE"):
                        p = v["paired_vs_reference"][m]
                        lines.append(f"- seed {seed}, `{name}`, {cell}, {m}: ratio {p['nfe_ratio']:.1f}, Δ position "
                                     f"{_fmt(p['position_error_px'])}, Δ success {_fmt(p['success_rate'])}, Δ NLL "
                                     f"{_fmt(p['nll'])}{'' if v['passes'] else ' — **fails the rule**'}")
        lines.append("")
    if rep["digits"]:
        lines.append("## Digits (exact mixture; no known answer: handle distance, log p_0, class kept)\n")
        for seed, runs in rep["digits"].items():
            for name, run in runs.items():
                if name == "reference":
                    continue
                for m in ("ODE", "SDE"):
                    p = run["paired_vs_reference"][m]
                    lines.append(f"- seed {seed}, {name}, {m}: ratio {p['nfe_ratio']:.1f}, Δ handle distance "
                                 f"{_fmt(p['handle_distance'])} px, Δ log p_0 {_fmt(p['logp0'])}, Δ class kept "
                                 f"{_fmt(p['class_kept'])}")
        lines.append("")
    return "\n".join(lines) + "\n"
