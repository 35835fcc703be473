"""Markdown tables of the shapes drag report (interval formatting and the paired verdict marks are the digits
report's, :mod:`toy.digits.report`): both task families, exact and learned model side by side."""
from __future__ import annotations

from ..digits.report import interval_bounds, interval_text, paired_text
from .report_mismatch import issue20_lines

__all__ = ["markdown_report", "verdicts", "verdict_counts", "PRIMARY", "PAIR_PRIMARY", "FAMILY_TITLES", "method_label",
           "is_default"]

# (measure, label, lower is better)
PRIMARY: tuple[tuple[str, str, bool], ...] = (("position_error_px", "position error (px)", True),
                                              ("success_rate", "success rate", False), ("nll", "NLL", True))
PAIR_PRIMARY: tuple[tuple[str, str, bool], ...] = (("other_shift_px", "other object's shift (px)", True),)
FAMILY_TITLES = {"single": "one object", "pair": "two-object scenes", "textured": "object over a textured background",
                 "shaded": "shaded / outlined object"}


def method_label(m: str) -> str:
    """``ODE-Drag`` / ``SDE-Drag``; hybrids keep their names (``hybrid-late`` …): :func:`diffsamplers.presets.method_label`."""
    from diffsamplers.presets import method_label as label

    return label("drag", m)


def is_default(report: dict, name: str, row: dict) -> bool:
    """Whether a sweep row is the default setting (rows of data sweeps, e.g. the background contrast, say so)."""
    return bool(row["default"]) if "default" in row else row["value"] == report["settings"].get(name)


def _diff(d: dict, fmt: str = "{:+.3g}") -> str:
    v, lo, hi = interval_bounds(d)
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]" + ("" if lo > 0 or hi < 0 else " (n.s.)")


def _rate(d: dict) -> str:
    lo, hi = d.get("wilson95", (d["lo95"], d["hi95"]))
    return f"{d['mean']:.2f} [{lo:.2f}, {hi:.2f}]"


def _blocks(report: dict):
    """(family, model, block) in family-major order."""
    for fam in report["families"]:
        for model in report["results"]:
            if fam in report["results"][model]:
                yield fam, model, report["results"][model][fam]


def verdicts(report: dict) -> list[dict]:
    """One row per family × model × setting (defaults, then each sweep value) × primary measure: the paired
    ODE − SDE interval and which method it favours (or neither)."""
    out = []
    for fam, model, block in _blocks(report):
        rows = [("defaults", block["defaults"])]
        for name, vals in block["sweeps"].items():
            rows += [(f"{name}={r['value']}", r) for r in vals if not is_default(report, name, r)]
        prim = PRIMARY + (PAIR_PRIMARY if fam == "pair" else ())
        for setting, r in rows:
            for key, label, lower in prim:
                v, lo, hi = interval_bounds(r["paired_ode_minus_sde"][key])
                win = ("SDE" if (lo > 0) == lower else "ODE") if (lo > 0 or hi < 0) else "neither"
                out.append({"family": fam, "model": model, "setting": setting, "measure": label,
                            "ode_minus_sde": v, "lo95": lo, "hi95": hi, "favours": win})
    return out


def verdict_counts(vs: list[dict]) -> dict:
    """{(family, model, measure): {"SDE": n, "ODE": n, "neither": n}}."""
    counts: dict = {}
    for v in vs:
        c = counts.setdefault((v["family"], v["model"], v["measure"]), {"SDE": 0, "ODE": 0, "neither": 0})
        c[v["favours"]] += 1
    return counts


def _data_lines(report: dict) -> list[str]:
    lines = []
    for fam, info in report["families"].items():
        data, rng = info["data"], info["nll_data_range"]
        if fam in ("textured", "shaded"):
            what = (f"{data['components']} one-object images ({', '.join(data['kinds'])}; sizes "
                    f"{', '.join(map(str, data['sizes']))}) " + (
                        f"over {len(data['variants'])} backgrounds ({', '.join(data['variants'])}; contrast "
                        f"{data['contrast']}: background = {data['background']} + contrast · pattern)"
                        if fam == "textured" else
                        f"in {len(data['variants'])} styles ({', '.join(data['variants'])}; intensities {data['low']} "
                        f"… {data['foreground']})"))
        elif fam == "pair":
            what = (f"{data['components']} two-object scenes (one {data['kinds'][0]} and one {data['kinds'][1]}, "
                    f"sizes {', '.join(map(str, data['sizes']))}, boxes ≥ {data['gap']} px apart; the other object ≤ {data['near']} px "
                    f"from the dragged object's path and inside the mask)")
        else:
            what = (f"{data['components']} one-object images ({', '.join(data['kinds'])}; sizes "
                    f"{', '.join(map(str, data['sizes']))})")
        lines.append(f"- **{fam}**: {what}, centres on a stride-{data['lattice_step']} lattice of "
                     f"{data['side']}×{data['side']} px, one isotropic component each (s = {data['iso_std']}). "
                     f"NLL of p0 samples: median {rng['median']:.0f}, max {rng['max']:.0f} (the success threshold).")
    return lines


def _model_lines(report: dict) -> list[str]:
    lines = []
    for fam, meta in report["models"].get("learned", {}).items():
        lc = meta.get("learned_config", {})
        how = (f"loaded from the cache ({meta.get('load_seconds', 0):.1f} s)" if meta.get("cached") else
               f"trained here in {meta.get('seconds', meta.get('train_seconds', 0)):.0f} s")
        t0 = meta.get("mean_sq_eps_error_at_t0", {})
        lines.append(f"- learned **{fam}**: UNet {tuple(lc.get('channels', ()))}, {meta.get('num_parameters')} "
                     f"parameters, {meta.get('steps')} steps of batch {lc.get('batch_size')} on CPU "
                     f"({meta.get('train_seconds', 0):.0f} s of training; {how}); score error "
                     f"‖ε_θ − ε‖²/d = {meta['score_error']['mean_sq_eps_error']:.4f} over t, "
                     f"{t0.get('value', float('nan')):.4f} at the drag's t0 (t = {t0.get('t')}); ε has unit "
                     f"variance per pixel.")
    return lines


def markdown_report(report: dict) -> str:
    s = report["settings"]
    models = list(report["results"])
    lines = [f"# Shapes drag test bed — {' and '.join(models)} model{'s' if len(models) > 1 else ''}\n",
             *_data_lines(report), *(_model_lines(report) or []), "",
             f"Defaults: t0 = {s['t0']}, α = {s['alpha']}, β = {s['beta']}, {s['steps']}-step {s['schedule']} grid, "
             f"r = {s['r']}, step size {s['step_size']} px, drag {s['distance']} px per axis, mask margin "
             f"{s['margin']} px, handle {s['handle']}, preset `{s['preset']}`.\n",
             "Intervals: mean ± 1.96 s.e. over tasks; rates also [Wilson 95%]. Paired Δ = ODE − SDE per task "
             "(same task, mask and noise seed); **SDE** / **ODE**: the interval excludes 0 in that method's favour. "
             "The learned model runs on the first task groups of the exact model's tasks (paired learned − exact).\n",
             "## At the defaults: exact and learned score side by side\n",
             "| family | model | method | tasks | ops | position error (px) | drag fraction | success rate "
             "| exact answer | NLL | L2 to answer | outside-mask change | other object's shift (px) "
             "| other object's change |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fam, model, block in _blocks(report):
        d = block["defaults"]
        for m, v in d["methods"].items():
            other = (f"{interval_text(v['other_shift_px'])} | {interval_text(v['other_change'])}"
                     if "other_shift_px" in v else "– | –")
            lines.append(f"| {fam} | {model} | {method_label(m)} | {d['n_tasks']} | {d['drag_operations']['mean']:.2f} | "
                         f"{interval_text(v['position_error_px'])} | {interval_text(v['drag_fraction'])} | "
                         f"{_rate(v['success_rate'])} | {_rate(v['outcome_moved'])} | "
                         f"{interval_text(v['nll'], '{:.0f}')} | {interval_text(v['l2_to_answer'])} | "
                         f"{interval_text(v['outside_mask_change'])} | {other} |")
    lines += ["", "Paired Δ = ODE − SDE at the defaults:\n"]
    for fam, model, block in _blocks(report):
        p = block["defaults"]["paired_ode_minus_sde"]
        extra = f"; other object's shift {paired_text(p['other_shift_px'], True)}" if "other_shift_px" in p else ""
        lines.append(f"- {fam}, {model}: position error {paired_text(p['position_error_px'], True)}; success "
                     f"{paired_text(p['success_rate'], False)}; NLL {paired_text(p['nll'], True, '{:+.0f}')}; L2 to "
                     f"answer {paired_text(p['l2_to_answer'], True)}{extra}")
    paired_models = [(fam, block["defaults"]["paired_learned_minus_exact"]) for fam, model, block in _blocks(report)
                     if "paired_learned_minus_exact" in block["defaults"]]
    if paired_models:
        lines += ["", "Paired Δ = learned − exact (same tasks and seeds; n.s.: the interval contains 0):\n"]
        for fam, pm in paired_models:
            for m, p in pm.items():
                lines.append(f"- {fam}, {method_label(m)}: position error {_diff(p['position_error_px'])}; "
                             f"success {_diff(p['success_rate'])}; NLL {_diff(p['nll'], '{:+.0f}')}")
    lines += ["", "| family | model | method | moved (right answer) | stayed | another image "
                  "| off the data (NLL out of range) |", "|---|---|---|---|---|---|---|"]
    for fam, model, block in _blocks(report):
        for m, v in block["defaults"]["methods"].items():
            lines.append(f"| {fam} | {model} | {method_label(m)} | " + " | ".join(
                f"{v['outcome_' + o]['mean']:.2f}" for o in ("moved", "stayed", "other", "off")) + " |")
    lines.append("")
    if any(block["sweeps"] for _, _, block in _blocks(report)):
        lines.append("## Sweeps (one setting changed at a time)\n")
    for fam, model, block in _blocks(report):
        if not block["sweeps"]:
            continue
        lines.append(f"### {FAMILY_TITLES.get(fam, fam)} ({fam}), {model} model\n")
        for name, rows in block["sweeps"].items():
            lines += [f"**{name}**\n", f"| {name} | ops | ODE pos. err | SDE pos. err | Δ pos. err | ODE success | "
                                       "SDE success | Δ success | Δ NLL |", "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                mo, ms, pr = r["methods"]["ODE"], r["methods"]["SDE"], r["paired_ode_minus_sde"]
                mark = " (default)" if is_default(report, name, r) else ""
                lines.append(f"| {r['value']}{mark} | {r['drag_operations']['mean']:.2f} | "
                             f"{interval_text(mo['position_error_px'])} | {interval_text(ms['position_error_px'])} | "
                             f"{paired_text(pr['position_error_px'], True)} | {_rate(mo['success_rate'])} | "
                             f"{_rate(ms['success_rate'])} | {paired_text(pr['success_rate'], False)} | "
                             f"{paired_text(pr['nll'], True, '{:+.0f}')} |")
            lines.append("")
    lines += issue20_lines(report)
    vs = verdicts(report)
    lines += ["## Verdicts (paired 95% intervals)\n",
              "| family | model | setting | measure | ODE − SDE [95%] | favours |", "|---|---|---|---|---|---|"]
    lines += [f"| {v['family']} | {v['model']} | {v['setting']} | {v['measure']} | {v['ode_minus_sde']:+.3g} "
              f"[{v['lo95']:+.3g}, {v['hi95']:+.3g}] | {v['favours']} |" for v in vs]
    lines += ["", "Settings favouring each method, per family, model and measure:\n",
              "| family | model | measure | SDE | ODE | neither |", "|---|---|---|---|---|---|"]
    for (fam, model, label), c in verdict_counts(vs).items():
        lines.append(f"| {fam} | {model} | {label} | {c['SDE']} | {c['ODE']} | {c['neither']} |")
    lines.append("")
    return "\n".join(lines)
