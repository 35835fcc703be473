"""Toy laboratory for 'SDE beats ODE' (Nie et al., ICLR 2024): small score models on Gaussian mixtures,
KL curves along the reverse SDE / probability-flow ODE, toy editing tasks and a schedule / η study.

Entry points: ``toy.run_all(out_dir, quick)``, the experiment functions ``toy.klcurves.run_kl_curves``,
``toy.editing.run_editing``, ``toy.study.run_study`` and the CLI ``python -m toy --help``.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["run_all"]


def run_all(out_dir, quick: bool = False) -> dict:
    """Run kl-curves, editing and study into ``out_dir/<name>/``; returns {name: report}."""
    from .editing import EditingConfig, run_editing
    from .klcurves import KLCurvesConfig, run_kl_curves
    from .study import StudyConfig, run_study

    out = Path(out_dir)
    reports = {
        "kl-curves": run_kl_curves(KLCurvesConfig.quick() if quick else KLCurvesConfig(), out / "kl-curves"),
        "editing": run_editing(EditingConfig.quick() if quick else EditingConfig(), out / "editing"),
        "study": run_study(StudyConfig.quick() if quick else StudyConfig(), out / "study"),
    }
    return reports
