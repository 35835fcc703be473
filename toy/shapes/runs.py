"""Summaries of the ODE/SDE hybrids of one setting (issue 20): is there a schedule that keeps ODE-Drag's position
error and SDE-Drag's realism?

For each hybrid: paired Δ = hybrid − ODE and hybrid − SDE per task (same tasks, masks and noise seeds) on the
primary measures, and the two criteria of the issue, each "within the interval of the better method": the
hybrid's mean position error is at most the upper end of the 95% interval of the better of ODE / SDE on position,
and its mean NLL at most the upper end of the better one's NLL interval.  ``keeps_both`` when both hold.
"""
from __future__ import annotations

from ..digits.common import diff_ci

__all__ = ["HYBRID_MEASURES", "hybrid_summary"]

HYBRID_MEASURES: tuple[str, ...] = ("position_error_px", "nll", "success_rate", "l2_to_answer", "l2_source_window",
                                    "l2_target_window", "l2_mask_rest")


def _better(methods: dict, key: str) -> str:
    """ODE or SDE, whichever has the lower mean of ``key`` (lower is better for position error and NLL)."""
    return "ODE" if methods["ODE"][key]["mean"] <= methods["SDE"][key]["mean"] else "SDE"


def hybrid_summary(values: dict, methods: dict) -> dict:
    """``values``: method → measure → per-task array; ``methods``: method → measure → interval dict (``ci``)."""
    out: dict = {"criterion": "hybrid mean <= hi95 of the better of ODE/SDE, on position error and on NLL",
                 "better_position": _better(methods, "position_error_px"), "better_nll": _better(methods, "nll"),
                 "methods": {}}
    bp, bn = out["better_position"], out["better_nll"]
    for h in values:
        if not h.startswith("hybrid"):
            continue
        keys = [k for k in HYBRID_MEASURES if k in values[h]]
        pos_ok = methods[h]["position_error_px"]["mean"] <= methods[bp]["position_error_px"]["hi95"]
        nll_ok = methods[h]["nll"]["mean"] <= methods[bn]["nll"]["hi95"]
        out["methods"][h] = {
            "minus_ode": {k: diff_ci(values[h][k], values["ODE"][k]) for k in keys},
            "minus_sde": {k: diff_ci(values[h][k], values["SDE"][k]) for k in keys},
            "keeps_position": bool(pos_ok), "keeps_realism": bool(nll_ok), "keeps_both": bool(pos_ok and nll_ok)}
    return out
