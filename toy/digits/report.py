"""Markdown tables from the digit experiment reports."""
from __future__ import annotations

__all__ = ["markdown_report", "verdicts", "interval_text", "interval_bounds", "paired_text"]


def interval_text(d: dict, fmt: str = "{:.3g}") -> str:
    if "value" in d:
        return f"{fmt.format(d['value'])} [{fmt.format(d['lo95'])}, {fmt.format(d['hi95'])}]"
    return f"{fmt.format(d['mean'])} ± {fmt.format(d['ci95'])}"


def interval_bounds(d: dict) -> tuple[float, float, float]:
    if "value" in d:
        return d["value"], d["lo95"], d["hi95"]
    return d["mean"], d["mean"] - d["ci95"], d["mean"] + d["ci95"]


def paired_text(d: dict, lower_better: bool | None, fmt: str = "{:+.3g}") -> str:
    """Paired ODE − SDE difference with its 95% interval and a verdict when the interval excludes 0."""
    v, lo, hi = interval_bounds(d)
    txt = f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"
    if lower_better is None or not (lo > 0 or hi < 0):
        return txt + (" (n.s.)" if lower_better is not None else "")
    sde_wins = (lo > 0) if lower_better else (hi < 0)
    return txt + (" **SDE**" if sde_wins else " **ODE**")


def verdicts(reps: dict) -> list[dict]:
    """One line per setting: which method the paired 95% interval of the primary measure favours (or neither).
    ``path`` is the key path of the interval's dict in ``reps`` (its value under ``"value"`` or ``"mean"``)."""
    out = []

    def add(exp, setting, measure, path, lower_better):
        d = reps
        for k in path:
            d = d[k]
        v, lo, hi = interval_bounds(d)
        win = ("SDE" if (lo > 0) == lower_better else "ODE") if (lo > 0 or hi < 0) else "neither"
        out.append({"experiment": exp, "setting": setting, "measure": measure, "ode_minus_sde": v, "lo95": lo,
                    "hi95": hi, "favours": win, "path": list(path) + ["value" if "value" in d else "mean"]})

    if "inpaint" in reps:
        for mname, res in reps["inpaint"]["masks"].items():
            for i, p in enumerate(res.get("paired", [])):
                base = ("inpaint", "masks", mname, "paired", i)
                add("inpaint", f"{mname} holes, {p['steps']} steps", "FD", base + ("fd",), True)
                add("inpaint", f"{mname} holes, {p['steps']} steps", "cond. NLL", base + ("cond_nll",), True)
    for i, p in enumerate(reps.get("translate", {}).get("paired", [])):
        add("translate", f"t0={p['t0']}", "FD", ("translate", "paired", i, "fd"), True)
        add("translate", f"t0={p['t0']}", "log p0", ("translate", "paired", i, "logp0"), False)
    for i, p in enumerate(reps.get("diffedit", {}).get("paired", [])):
        add("diffedit", f"t0={p['t0']}", "FD", ("diffedit", "paired", i, "fd"), True)
        add("diffedit", f"t0={p['t0']}", "target-class rate", ("diffedit", "paired", i, "target_class_rate"), False)
        add("diffedit", f"t0={p['t0']}", "target cond. NLL/px", ("diffedit", "paired", i, "target_cond_nll_per_px"),
            True)
    if "drag" in reps and "paired" in reps["drag"]:
        add("drag", f"t0={reps['drag']['t0']}", "FD", ("drag", "paired", "fd"), True)
        add("drag", f"t0={reps['drag']['t0']}", "log p0", ("drag", "paired", "logp0"), False)
    return out


def markdown_report(reps: dict) -> str:
    lines: list[str] = []
    model = next(iter(reps.values()))["model"]
    lines.append(f"# Digits test bed — {model} model\n")
    lines.append("95% intervals: FD = value ± 1.96 s.e. of a delete-one-block jackknife over problems/images; others mean ± 1.96 s.e.\n")
    lines.append("Paired tables: Δ = ODE − SDE on the same inputs and seeds, per input (problem/image), mean ± 1.96 s.e.; "
                 "for FD the jackknife is applied to the difference.  **SDE** / **ODE**: the 95% interval excludes 0 in "
                 "that method's favour; (n.s.): it does not.\n")
    if "inpaint" in reps:
        r = reps["inpaint"]
        lines.append("## Inpainting (classifier FD to exact conditional samples; lower is better)\n")
        for mname, res in r["masks"].items():
            lines.append(f"**{mname} holes** ({res['hole_px']} px, {100 * res['hole_fraction']:.0f}% of the image)\n")
            lines.append("| steps | method | FD [95%] | cond. NLL | component TV | pixel W2² |")
            lines.append("|---|---|---|---|---|---|")
            for row in res["rows"]:
                lines.append(f"| {row['steps']} | {row['method']} | {interval_text(row['fd'])} | {interval_text(row['cond_nll'])} | "
                             f"{interval_text(row['component_tv'])} | {interval_text(row['pixel_w2'])} |")
            ref = res["exact_reference"]
            lines.append(f"| — | exact conditional (2nd draw) | {interval_text(ref['fd'])} | {interval_text(ref['cond_nll'])} | "
                         f"{interval_text(ref['component_tv'])} | {interval_text(ref['pixel_w2'])} |\n")
            if res.get("paired"):
                lines.append(f"paired Δ = ODE − SDE, {mname} holes (> 0: SDE better on all four)\n")
                lines.append("| steps | Δ FD | Δ cond. NLL | Δ component TV | Δ pixel W2² |")
                lines.append("|---|---|---|---|---|")
                for p in res["paired"]:
                    lines.append(f"| {p['steps']} | {paired_text(p['fd'], True)} | {paired_text(p['cond_nll'], True)} | "
                                 f"{paired_text(p['component_tv'], True)} | {paired_text(p['pixel_w2'], True)} |")
                lines.append("")
    if "translate" in reps:
        r = reps["translate"]
        lines.append("## SDEdit from stroke-like digits (realism vs faithfulness)\n")
        lines.append(f"stroke inputs: FD {interval_text(r['input_measures']['fd'])}, log p0 {interval_text(r['input_measures']['logp0'])}; "
                     f"real held-out digits: FD {interval_text(r['data_measures']['fd'])}, log p0 {interval_text(r['data_measures']['logp0'])}\n")
        lines.append("| t0 | method | FD to p0 [95%] | log p0 | L2 to input | class kept |")
        lines.append("|---|---|---|---|---|---|")
        for row in r["rows"]:
            lines.append(f"| {row['t0']} | {row['method']} | {interval_text(row['fd'])} | {interval_text(row['logp0'])} | "
                         f"{interval_text(row['l2_to_input'])} | {interval_text(row['class_kept'])} |")
        lines.append("")
        if r.get("paired"):
            lines.append("paired Δ = ODE − SDE (FD: > 0 SDE more realistic; log p0: < 0 SDE more realistic; "
                         "L2 to input: > 0 SDE more faithful)\n")
            lines.append("| t0 | Δ FD | Δ log p0 | Δ L2 to input | Δ class kept |")
            lines.append("|---|---|---|---|---|")
            for p in r["paired"]:
                lines.append(f"| {p['t0']} | {paired_text(p['fd'], True)} | {paired_text(p['logp0'], False)} | "
                             f"{paired_text(p['l2_to_input'], True)} | {paired_text(p['class_kept'], False)} |")
            lines.append("")
    if "diffedit" in reps:
        r = reps["diffedit"]
        lines.append("## DiffEdit class change inside a mask (ODE: DDIM inversion; SDE: Cycle-SDE)\n")
        lines.append(f"mask fraction {interval_text(r['mask_fraction'])}\n")
        lines.append("| t0 | method | target-class rate | exact p(target) | FD to target class [95%] | "
                     "target cond. NLL / edited px |")
        lines.append("|---|---|---|---|---|---|")
        for row in r["rows"]:
            lines.append(f"| {row['t0']} | {row['method']} | {interval_text(row['target_class_rate'])} | "
                         f"{interval_text(row['exact_target_posterior'])} | {interval_text(row['fd'])} | {interval_text(row['target_cond_nll_per_px'])} |")
        lines.append("")
        if r.get("paired"):
            lines.append("paired Δ = ODE − SDE (rates/posteriors: < 0 SDE better; FD, NLL: > 0 SDE better)\n")
            lines.append("| t0 | Δ target-class rate | Δ exact p(target) | Δ FD | Δ target cond. NLL / px |")
            lines.append("|---|---|---|---|---|")
            for p in r["paired"]:
                lines.append(f"| {p['t0']} | {paired_text(p['target_class_rate'], False)} | {paired_text(p['exact_target_posterior'], False)} | "
                             f"{paired_text(p['fd'], True)} | {paired_text(p['target_cond_nll_per_px'], True)} |")
            lines.append("")
    if "drag" in reps:
        r = reps["drag"]
        preset = f", preset `{r['preset']}`" if "preset" in r else ""
        lines.append(f"## Drag (copy-paste α = {r['alpha']}, β = {r['beta']}, t0 = {r['t0']}, {r['steps']}-step grid"
                     f"{preset})\n")
        im = r["input_measures"]
        lines.append(f"inputs: FD {interval_text(im['fd'])}, log p0 {interval_text(im['logp0'])}, handle→target {interval_text(im['handle_distance'])} px\n")
        lines.append("| method | FD to p0 [95%] | log p0 | handle distance (px) | class kept |")
        lines.append("|---|---|---|---|---|")
        for row in r["rows"]:
            lines.append(f"| {row['method']} | {interval_text(row['fd'])} | {interval_text(row['logp0'])} | {interval_text(row['handle_distance'])} | "
                         f"{interval_text(row['class_kept'])} |")
        lines.append("")
        if r.get("paired"):
            p = r["paired"]
            lines.append("paired Δ = ODE − SDE: "
                         f"FD {paired_text(p['fd'], True)}; log p0 {paired_text(p['logp0'], False)}; "
                         f"handle distance {paired_text(p['handle_distance'], True)}; class kept {paired_text(p['class_kept'], False)}\n")
    vs = verdicts(reps)
    if vs:
        lines.append("## Verdicts (paired 95% intervals of the primary measures)\n")
        lines.append("| experiment | setting | measure | ODE − SDE [95%] | favours |")
        lines.append("|---|---|---|---|---|")
        for v in vs:
            lines.append(f"| {v['experiment']} | {v['setting']} | {v['measure']} | {v['ode_minus_sde']:+.3g} "
                         f"[{v['lo95']:+.3g}, {v['hi95']:+.3g}] | {v['favours']} |")
        lines.append("")
    return "\n".join(lines)
