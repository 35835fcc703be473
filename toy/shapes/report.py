"""Markdown tables of the shapes drag report (interval formatting and the paired verdict marks are the digits
report's, :mod:`toy.digits.report`)."""
from __future__ import annotations

from ..digits.report import interval_bounds, interval_text, paired_text

__all__ = ["markdown_report", "verdicts", "PRIMARY"]

# (measure, label, lower is better)
PRIMARY: tuple[tuple[str, str, bool], ...] = (("position_error_px", "position error (px)", True),
                                              ("success_rate", "success rate", False), ("nll", "NLL", True))


def _rate(d: dict) -> str:
    lo, hi = d.get("wilson95", (d["lo95"], d["hi95"]))
    return f"{d['mean']:.2f} [{lo:.2f}, {hi:.2f}]"


def verdicts(report: dict) -> list[dict]:
    """One row per setting (defaults, then each sweep value) and primary measure: the paired ODE − SDE interval
    and which method it favours (or neither)."""
    rows = [("defaults", report["defaults"])]
    for name, vals in report["sweeps"].items():
        rows += [(f"{name}={r['value']}", r) for r in vals if r["value"] != report["settings"][name]]
    out = []
    for setting, r in rows:
        for key, label, lower in PRIMARY:
            v, lo, hi = interval_bounds(r["paired_ode_minus_sde"][key])
            win = ("SDE" if (lo > 0) == lower else "ODE") if (lo > 0 or hi < 0) else "neither"
            out.append({"setting": setting, "measure": label, "ode_minus_sde": v, "lo95": lo, "hi95": hi,
                        "favours": win})
    return out


def markdown_report(report: dict) -> str:
    s, d = report["settings"], report["defaults"]
    data, rng = report["data"], report["nll_data_range"]
    lines = [f"# Shapes drag test bed — {report['model']} model\n",
             f"{data['components']} images ({', '.join(data['kinds'])}; sizes {data['sizes']}; centres on a "
             f"stride-{data['lattice_step']} lattice) of {data['side']}×{data['side']} px, one isotropic component each "
             f"(s = {data['iso_std']}). NLL of p0 samples: median {rng['median']:.0f}, max {rng['max']:.0f} "
             f"(the success threshold).\n",
             f"Defaults: t0 = {s['t0']}, α = {s['alpha']}, β = {s['beta']}, {s['steps']}-step {s['schedule']} grid, "
             f"r = {s['r']}, step size {s['step_size']} px ({d['drag_operations']['mean']:.2f} operations on "
             f"average), drag {s['distance']} px per axis, mask margin {s['margin']} px, handle {s['handle']}, "
             f"preset `{s['preset']}`; {d['n_tasks']} tasks in {d['n_groups']} groups.\n",
             "Intervals: mean ± 1.96 s.e. over tasks; rates also [Wilson 95%]. Paired Δ = ODE − SDE per task "
             "(same task, mask and noise seed); **SDE** / **ODE**: the interval excludes 0 in that method's favour.\n",
             "## At the defaults\n",
             "| method | position error (px) | drag fraction | success rate | exact answer | NLL | L2 to answer | "
             "outside-mask change |",
             "|---|---|---|---|---|---|---|---|"]
    for m, v in d["methods"].items():
        lines.append(f"| {m}-Drag | {interval_text(v['position_error_px'])} | {interval_text(v['drag_fraction'])} | "
                     f"{_rate(v['success_rate'])} | "
                     f"{_rate(v['outcome_moved'])} | {interval_text(v['nll'], '{:.0f}')} | {interval_text(v['l2_to_answer'])} | "
                     f"{interval_text(v['outside_mask_change'])} |")
    p = d["paired_ode_minus_sde"]
    lines += ["", f"paired Δ = ODE − SDE: position error {paired_text(p['position_error_px'], True)}; success "
                  f"{paired_text(p['success_rate'], False)}; NLL {paired_text(p['nll'], True, '{:+.0f}')}; L2 to answer "
                  f"{paired_text(p['l2_to_answer'], True)}\n",
              "| method | moved (right answer) | stayed | another image | off the data (NLL out of range) |",
              "|---|---|---|---|---|"]
    for m, v in d["methods"].items():
        lines.append(f"| {m}-Drag | " + " | ".join(f"{v['outcome_' + o]['mean']:.2f}"
                                                 for o in ("moved", "stayed", "other", "off")) + " |")
    lines.append("")
    if report["sweeps"]:
        lines.append("## Sweeps (one setting changed at a time)\n")
    for name, rows in report["sweeps"].items():
        lines += [f"**{name}**\n", f"| {name} | ops | ODE pos. err | SDE pos. err | Δ pos. err | ODE success | "
                                   "SDE success | Δ success | Δ NLL |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            mo, ms, pr = r["methods"]["ODE"], r["methods"]["SDE"], r["paired_ode_minus_sde"]
            mark = " (default)" if r["value"] == s[name] else ""
            lines.append(f"| {r['value']}{mark} | {r['drag_operations']['mean']:.2f} | {interval_text(mo['position_error_px'])} | "
                         f"{interval_text(ms['position_error_px'])} | {paired_text(pr['position_error_px'], True)} | "
                         f"{_rate(mo['success_rate'])} | {_rate(ms['success_rate'])} | {paired_text(pr['success_rate'], False)} | "
                         f"{paired_text(pr['nll'], True, '{:+.0f}')} |")
        lines.append("")
    vs = verdicts(report)
    lines += ["## Verdicts (paired 95% intervals)\n", "| setting | measure | ODE − SDE [95%] | favours |",
              "|---|---|---|---|"]
    lines += [f"| {v['setting']} | {v['measure']} | {v['ode_minus_sde']:+.3g} [{v['lo95']:+.3g}, {v['hi95']:+.3g}] | "
              f"{v['favours']} |" for v in vs]
    counts = {w: sum(1 for v in vs if v["favours"] == w) for w in ("SDE", "ODE", "neither")}
    lines += ["", f"settings × measures favouring SDE: {counts['SDE']}, ODE: {counts['ODE']}, neither: "
                  f"{counts['neither']}\n"]
    return "\n".join(lines)
