"""Markdown of the issue-20 parts of the shapes drag report: seams, −log p_t along the chains and its correlation
with the SDE's advantage, and the ODE/SDE hybrids (per family and model, at the defaults)."""
from __future__ import annotations

import math

from ..digits.report import interval_bounds, interval_text

__all__ = ["issue20_lines", "correlation_text", "diff_text"]


def _label(m: str) -> str:
    from .report import method_label

    return method_label(m)


def diff_text(d: dict, fmt: str = "{:+.3g}") -> str:
    v, lo, hi = interval_bounds(d)
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]" + ("" if lo > 0 or hi < 0 else " (n.s.)")


def correlation_text(c: dict) -> str:
    if not math.isfinite(c.get("pearson_r", float("nan"))):
        return f"undefined (n = {c.get('n')})"
    return (f"r = {c['pearson_r']:+.2f} [{c['lo95']:+.2f}, {c['hi95']:+.2f}], Spearman ρ = {c['spearman_rho']:+.2f}, "
            f"n = {c['n']}")


def _blocks(report: dict):
    for fam in report["families"]:
        for model in report["results"]:
            if fam in report["results"][model]:
                yield fam, model, report["results"][model][fam]["defaults"]


def issue20_lines(report: dict) -> list[str]:
    lines: list[str] = []
    blocks = list(_blocks(report))
    if any("l2_source_window" in d["methods"]["ODE"] for _, _, d in blocks):
        lines += ["## Seams: L2 to the right answer where the paste acted (at the defaults)\n",
                  "First operation's source window (the hole), last operation's target window (the landing place, "
                  "with the source's background around the object), and the rest of the editable mask.\n",
                  "| family | model | method | source window | target window | rest of the mask |",
                  "|---|---|---|---|---|---|"]
        for fam, model, d in blocks:
            for m, v in d["methods"].items():
                lines.append(f"| {fam} | {model} | {_label(m)} | {interval_text(v['l2_source_window'])} | "
                             f"{interval_text(v['l2_target_window'])} | {interval_text(v['l2_mask_rest'])} |")
        lines.append("")
    with_path = [(f, mo, d) for f, mo, d in blocks if "nll_path" in d]
    if with_path:
        lines += ["## The theorem's quantity along the chain: −log p_t(x_t) under the exact mixture\n",
                  "Excess over the median −log p_t of draws of p_t at the same level (0 = a typical sample; the "
                  "learned model's chains are scored under the exact p_t too). `nll_t0`: right after the first "
                  "operation's paste; the path is the last operation's chain (its last value is the reported NLL).\n",
                  "| family | model | method | nll_t0 excess | at 25% of the steps | 50% | 75% | end (= NLL − data "
                  "median) |", "|---|---|---|---|---|---|---|---|"]
        for fam, model, d in with_path:
            p = d["nll_path"]
            n = len(p["data_median"])
            picks = [max(int(round(f * n)) - 1, 0) for f in (0.25, 0.5, 0.75, 1.0)]
            for m, v in d["methods"].items():
                pm = p["methods"][m]
                t0 = v["nll_t0"]
                cells = [f"{pm['mean'][i] - p['data_median'][i]:+.0f} ± {pm['ci95'][i]:.0f}" for i in picks]
                lines.append(f"| {fam} | {model} | {_label(m)} | {t0['mean'] - p['data_median_t0']:+.0f} ± "
                             f"{t0['ci95']:.0f} | " + " | ".join(cells) + " |")
        lines += ["", "Does the SDE's final advantage grow with the mismatch at t0? Correlation over tasks of the "
                      "SDE's nll_t0 excess with ODE − SDE (NLL; position error), Fisher-z 95% intervals:\n"]
        for fam, model, d in with_path:
            mm = d["mismatch"]
            lines.append(f"- {fam}, {model}: NLL advantage {correlation_text(mm['nll_advantage'])}; position "
                         f"advantage {correlation_text(mm['position_advantage'])}")
        lines.append("")
    hyb = [(f, mo, d) for f, mo, d in blocks if "hybrids" in d]
    if hyb:
        lines += ["## ODE/SDE hybrids (per-step η through `recipes.drag`, at the defaults)\n",
                  "`hybrid-late`: η = 1 only on the last half of the decoding steps (near t = 0); `hybrid-early`: "
                  "η = 1 only on the first half (near t0); `hybrid-etaX`: η = X at every step. Keeps position / "
                  "realism: the hybrid's mean is at most the upper end of the 95% interval of the better of ODE and "
                  "SDE on that measure.\n",
                  "| family | model | method | position error (px) | NLL | success | Δ position vs ODE | Δ NLL vs SDE "
                  "| keeps position | keeps realism |", "|---|---|---|---|---|---|---|---|---|---|"]
        for fam, model, d in hyb:
            h = d["hybrids"]
            for m, v in d["methods"].items():
                row = h["methods"].get(m)
                extra = (f"{diff_text(row['minus_ode']['position_error_px'])} | "
                         f"{diff_text(row['minus_sde']['nll'], '{:+.0f}')} | {'yes' if row['keeps_position'] else 'no'}"
                         f" | {'yes' if row['keeps_realism'] else 'no'}") if row else "– | – | – | –"
                lines.append(f"| {fam} | {model} | {_label(m)} | {interval_text(v['position_error_px'])} | "
                             f"{interval_text(v['nll'], '{:.0f}')} | {v['success_rate']['mean']:.2f} | {extra} |")
        lines.append("")
        for fam, model, d in hyb:
            both = [m for m, r in d["hybrids"]["methods"].items() if r["keeps_both"]]
            lines.append(f"- {fam}, {model}: better on position {d['hybrids']['better_position']}-Drag, on NLL "
                         f"{d['hybrids']['better_nll']}-Drag; hybrids keeping both: {', '.join(both) or 'none'}")
        lines.append("")
    return lines
