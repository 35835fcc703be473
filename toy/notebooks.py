"""Generate the toy notebooks with nbformat: ``python -m toy.notebooks [DIR]`` (default ``notebooks/``).

Each notebook only calls the package.  ``SDEODE_FAST=1`` in the environment selects seconds-scale settings
(``tiny()`` configs); otherwise the full configs run (minutes)."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = """%matplotlib inline
import os
import torch
torch.set_num_threads(1)
FAST = os.environ.get("SDEODE_FAST", "0") == "1"
print("fast mode" if FAST else "full mode")"""

NOTEBOOKS = {
    "toy_kl_curves.ipynb": [
        "# KL curves: SDE vs ODE, exact and learned score\n\nEdited distribution q and data p evolved from t0 "
        "under the same reverse dynamics (Fokker–Planck grid solver, `theory.fokker_planck`). Thm 3.1: the SDE "
        "KL decreases; Thm 3.2: the ODE KL is constant. Set `SDEODE_FAST=1` for a seconds-scale run.",
        SETUP,
        "from toy.klcurves import KLCurvesConfig, run_kl_curves\n"
        "cfg = KLCurvesConfig.tiny() if FAST else KLCurvesConfig()\n"
        "report = run_kl_curves(cfg, out_dir=None)\nreport['summary']",
        "from toy import plots\nplots.fig_kl_curves(report)",
        "plots.fig_score_error(report['score_error'])",
        "## Particle cross-check\nDiscrete DDIM η = 1 (SDE) and η = 0 (ODE) samplers with N steps; "
        "KL estimated by kNN against the exact p at t_end.",
        "plots.fig_particles(report)",
    ],
    "toy_fisher_identity.ipynb": [
        "# The Fisher integrand and the KL identity (Thm 3.1)\n\nKL(q_s‖p_s) = KL(q_t‖p_t) − ∫ ½ g² F dτ "
        "along the SDE, for the exact and the learned drift alike.",
        SETUP,
        "from toy.klcurves import KLCurvesConfig, run_kl_curves\n"
        "cfg = KLCurvesConfig.tiny() if FAST else KLCurvesConfig()\n"
        "cfg.particle_steps, cfg.particle_steps_learned, cfg.particle_seeds = [10], [10], 2\n"
        "report = run_kl_curves(cfg, out_dir=None)",
        "from toy import plots\nplots.fig_fisher(report)",
        "plots.fig_identity(report)",
        "{name: {s: (report[name][s]['kl_start'] - report[name][s]['kl_end'], report[name][s]['fisher_integral'],"
        " report[name][s]['residual']) for s in ('sde', 'ode')} for name in ('exact', 'learned')}",
    ],
    "toy_editing.ipynb": [
        "# Toy editing tasks: SDE vs ODE\n\nInpainting (vs the exact conditional), SDEdit "
        "(realism vs faithfulness) and dragging (SDE-Drag = Cycle-SDE vs ODE-Drag), each one call of "
        "`diffsamplers.recipes` (`inpaint`, `sdedit`, `drag`), swept over t0 and steps; error bars are 95% CIs.",
        SETUP,
        "from toy.editing import EditingConfig, run_editing\n"
        "cfg = EditingConfig.tiny() if FAST else EditingConfig()\n"
        "report = run_editing(cfg, out_dir=None)\nreport['summary']",
        "from toy import plots\nplots.fig_editing_task(report, 'inpainting')",
        "plots.fig_editing_task(report, 'sdedit')",
        "plots.fig_sdedit_tradeoff(report)",
        "plots.fig_editing_task(report, 'drag')",
    ],
    "toy_schedule_eta_study.ipynb": [
        "# Schedule, η and steps study; Cycle-SDE contraction; log-Sobolev rate\n",
        SETUP,
        "from toy.study import StudyConfig, run_study\n"
        "cfg = StudyConfig.tiny() if FAST else StudyConfig()\n"
        "report = run_study(cfg, out_dir=None)\nreport['summary']",
        "from toy import plots\nplots.fig_schedules(report)",
        "plots.fig_eta(report)",
        "plots.fig_cycle(report)",
        "plots.fig_lsi(report)",
    ],
    "score_error.ipynb": [
        "# The theorem with an imperfect score\n\nThm 3.1 shrinks KL(q‖p̂) towards the *model's* marginal p̂; what "
        "matters is KL(output ‖ p_data). η-DDIM (η = 0 ODE … 1 SDE) × score error (exact, exact + a smooth "
        "perturbation, DSM-trained MLPs), edited and unedited starts (`toy.scoreerror`). Set `SDEODE_FAST=1` for a "
        "seconds-scale run.",
        SETUP,
        "from toy.scoreerror import ScoreErrorConfig, run_score_error, fig_heatmap, fig_curves\n"
        "cfg = ScoreErrorConfig.tiny() if FAST else ScoreErrorConfig.quick()\n"
        "report = run_score_error(cfg, out_dir=None)\nreport['summary']",
        "fig_heatmap(report)",
        "fig_curves(report)",
        "[(r['level'], round(r['eps_rms_error'], 3), r['best_eta_edited'], r['sde_wins_edited']) "
        "for r in report['levels']]",
    ],
}


def build(cells: list[str]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(c) if c.startswith("#") else new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_notebooks(out_dir: str | Path = "notebooks") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, cells in NOTEBOOKS.items():
        p = out / name
        nbformat.write(build(cells), p)
        paths.append(p)
    return paths


if __name__ == "__main__":  # pragma: no cover
    for p in write_notebooks(sys.argv[1] if len(sys.argv) > 1 else "notebooks"):
        print(p)
