"""The results page of the main job: ``results/index.html`` and ``results/README.md`` with the same content.

A verdict table first (one row per claim: the numbers, each linked to the JSON file it was read from, and who wins),
then every stage with its figures and a one-line caption saying what to look at.  Each stage of
``scripts.main.stages`` has a section builder here, keyed by the stage name; a stage without one (a new lab)
still gets a section that links its JSON reports and shows its figures, so nothing that ran is left off.

    python -m scripts.results_page [results]      # rebuild the page from an existing results folder
"""
from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["Number", "Row", "Section", "build_sections", "render_markdown", "render_html", "write_page",
           "stage_out_dir"]


@dataclass
class Number:
    """A number on the page and where it comes from: ``json`` (relative to the results folder) and its key path."""

    value: float | int | bool | str
    json: str
    key: tuple
    fmt: str = "{:.3g}"

    @property
    def text(self) -> str:
        if isinstance(self.value, bool) or isinstance(self.value, str):
            return str(self.value)
        return self.fmt.format(self.value)


@dataclass
class Row:
    """One claim of the verdict table."""

    what: str
    setting: str
    numbers: list[Number]
    verdict: str
    template: str = "{0}"  # how the numbers read, e.g. "{0} → {1}"


@dataclass
class Section:
    stage: str
    title: str
    rows: list[Row] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (path relative to results, caption)
    links: list[str] = field(default_factory=list)  # JSON / markdown reports of the stage
    note: str = ""


# ----------------------------------------------------------------------------------------------------- helpers
def _load(results: Path, rel: str) -> Any:
    return json.loads((results / rel).read_text())


def _get(obj: Any, key: Sequence) -> Any:
    for k in key:
        obj = obj[k]
    return obj


def _num(results: Path, rel: str, *key, fmt: str = "{:.3g}") -> Number:
    return Number(_get(_load(results, rel), key), rel, tuple(key), fmt)


def stage_out_dir(command: Sequence[str]) -> str | None:
    """The output of a stage command: the value after ``--out`` (its folder for a file), or None."""
    cmd = list(command)
    if "--out" not in cmd:
        return None
    out = cmd[cmd.index("--out") + 1]
    return str(Path(out).parent) if Path(out).suffix else out


def _rel(results: Path, p: str | Path) -> str:
    p = Path(p)
    try:
        return str(p.resolve().relative_to(results.resolve()))
    except ValueError:
        return str(p)


CAPTIONS = {
    "fast_pareto.png": "ε-evaluations per edit against position error, success and NLL: each fast candidate (circles "
                       "DPM-Solver++ 2M, squares DDIM) with its paired interval against the official defaults (stars); "
                       "the ringed point is the chosen setting",
    "kl_curves.png": "KL(q_t‖p_t) against t: the SDE (red) falls towards 0, the ODE (blue) stays flat, with the exact "
                     "and with the learned score",
    "identity.png": "the two sides of the SDE identity, KL drop and ∫½g²F, lie on top of each other",
    "fisher.png": "the Fisher divergence F(t) that the SDE integrates; the ODE gains nothing from it",
    "particles.png": "the same curves from sampled particles (kNN KL): a check that needs no grid",
    "score_error.png": "how far the learned score is from the exact one, along t",
    "editing_inpainting.png": "inpainting: KL to the data per (t0, steps); lower is better, the SDE is below",
    "editing_sdedit.png": "SDEdit: realism (KL to the data) per (t0, steps)",
    "editing_sdedit_tradeoff.png": "SDEdit: realism against faithfulness — the SDE is more realistic, the ODE closer "
                                   "to the input",
    "editing_drag.png": "toy drag: success rate and realism; here the ODE moves the bump more often",
    "study_schedules.png": "final KL per schedule and step count: the SDE needs enough steps to win",
    "study_eta.png": "final KL against η: it falls monotonically from the ODE (η = 0) to the SDE (η = 1)",
    "study_cycle.png": "Cycle-SDE after an edit at t0: KL contracts like the fresh SDE, the ODE keeps it",
    "study_lsi.png": "the SDE KL stays under the log-Sobolev rate bound",
    "inpaint_fd.png": "digit inpainting: classifier FD to the exact conditional against steps; the SDE is lower",
    "inpaint_small_grid.png": "small holes: original, masked, ODE, SDE and exact conditional samples",
    "inpaint_large_grid.png": "large holes: the same grid",
    "translate_curve.png": "SDEdit on digits: realism against faithfulness over t0",
    "translate_grid.png": "SDEdit from stroke-like digits at several t0, ODE and SDE",
    "diffedit_curve.png": "DiffEdit over t0: the ODE's FD grows with t0, Cycle-SDE stays flat",
    "diffedit_grid.png": "DiffEdit class changes: source, mask, ODE and SDE at each t0",
    "drag_grid.png": "drag on digits: original, handle/target, ODE-Drag, SDE-Drag",
    "translate_sde.png": "Stable Diffusion plumbing on the tiny random model: SDEdit output (noise-like by design)",
    "reconstruct.png": "Cycle-SDE reconstruction on the tiny model: equal to the input latent up to float error",
    "drag_sde.png": "SDE-Drag on the tiny model (random weights: checks the code path, not the quality)",
    "examples.png": "drag test bed: input, right answer, ODE-Drag and SDE-Drag on typical tasks",
    "failures.png": "drag test bed: the worst tasks of each method",
    "outcomes.png": "drag test bed: what each method returned (moved, stayed, other object)",
    "heatmap.png": "imperfect score: KL to the data over η and score error; the SDE's advantage ends as the error grows",
    "curves.png": "imperfect score: KL to the data against η, one curve per score-error level",
    "sweeps.png": "drag test bed: position error and success over t0, α, β, steps, distance and mask size",
}


def _caption(path: Path) -> str:
    name = path.name
    if name in CAPTIONS:
        return CAPTIONS[name]
    if name.startswith("kl_") and path.parent.name == "theory":
        case = name[3:-4]
        what = "stays constant" if "_ode" in case else "drops by exactly ∫½g²F"
        return f"theorem, case {case}: KL(q_t‖p_t) {what}"
    return path.stem.replace("_", " ")


def _figures(results: Path, folder: str | None) -> list[tuple[str, str]]:
    if folder is None or not (results / folder).is_dir():
        return []
    pngs = sorted(p for p in (results / folder).rglob("*.png") if "tiny-model" not in p.parts and
                  p.name != "input.png")
    return [(_rel(results, p), _caption(p)) for p in pngs]


def _links(results: Path, folder: str | None) -> list[str]:
    if folder is None or not (results / folder).is_dir():
        return []
    files = sorted(p for p in (results / folder).rglob("*") if p.suffix in (".json", ".md") and
                   "tiny-model" not in p.parts)
    return [_rel(results, p) for p in files]


# ------------------------------------------------------------------------------------------------ per stage
def _theory(results: Path, out: str) -> list[Row]:
    rel = f"{out}/report.json"
    rows = []
    for case, rep in _load(results, rel).items():
        sde = rep.get("sampler") == "sde"
        if sde:
            res = _num(results, rel, case, "relative_residual", fmt="{:.1e}")
            rows.append(Row("theorem (SDE): KL drop = ∫½g²F", f"{case} ({rep['method']})",
                            [_num(results, rel, case, "kl_start", fmt="{:.4g}"),
                             _num(results, rel, case, "kl_end", fmt="{:.4g}"), res],
                            "holds" if res.value <= 1e-3 else "residual above 1e-3",
                            "KL {0} → {1}, relative residual {2}"))
        else:
            drop = _num(results, rel, case, "kl_drop", fmt="{:.1e}")
            ok = abs(drop.value) <= 1e-3 * max(abs(rep["kl_start"]), 1e-12)
            rows.append(Row("theorem (ODE): KL constant", f"{case} ({rep['method']})",
                            [_num(results, rel, case, "kl_start", fmt="{:.4g}"), drop],
                            "holds" if ok else "KL moved", "KL {0}, change {1}"))
    return rows


def _kl_curves(results: Path, out: str) -> list[Row]:
    rel = f"{out}/report.json"
    rows = []
    for model in ("exact", "learned"):
        sde_end = _num(results, rel, model, "sde", "kl_end", fmt="{:.4f}")
        ode_end = _num(results, rel, model, "ode", "kl_end", fmt="{:.4f}")
        rows.append(Row("KL curves: SDE vs ODE", f"{model} score",
                        [_num(results, rel, model, "sde", "kl_start", fmt="{:.4f}"), sde_end, ode_end],
                        "SDE" if sde_end.value < ode_end.value else "ODE",
                        "KL(t0) {0} → SDE {1}, ODE {2}"))
    return rows


def _editing(results: Path, out: str) -> list[Row]:
    rel = f"{out}/report.json"
    s = _load(results, rel)["summary"]
    rows = []
    for task, metric in (("inpainting", "kl"), ("sdedit", "kl"), ("drag", "success")):
        wins = _num(results, rel, "summary", f"{task}_sde_wins")
        sig = _num(results, rel, "summary", f"{task}_sde_wins_nonoverlapping_ci")
        margin = _num(results, rel, "summary", f"{task}_mean_margin_{metric}", fmt="{:+.3f}")
        n_win, n = (int(v) for v in s[f"{task}_sde_wins"].split("/"))
        verdict = "SDE" if 2 * n_win > n else ("ODE" if n_win == 0 else "split")
        rows.append(Row(f"toy {task}", f"primary measure {metric}", [wins, sig, margin], verdict,
                        "SDE better in {0} cells ({1} with non-overlapping intervals), mean margin {2}"))
    return rows


def _study(results: Path, out: str) -> list[Row]:
    rel = f"{out}/report.json"
    rows = []
    for sch in ("vp-linear", "vp-cosine", "ve"):
        a = _num(results, rel, "summary", f"{sch}_N40_kl_sde", fmt="{:.3f}")
        b = _num(results, rel, "summary", f"{sch}_N40_kl_ode", fmt="{:.3f}")
        rows.append(Row("schedule study, 40 steps", sch, [a, b], "SDE" if a.value < b.value else "ODE",
                        "final KL SDE {0} vs ODE {1}"))
    a = _num(results, rel, "summary", "cycle_kl_start", fmt="{:.3f}")
    b = _num(results, rel, "summary", "cycle_kl_end", fmt="{:.3f}")
    c = _num(results, rel, "summary", "ode_kl_end", fmt="{:.3f}")
    rows.append(Row("Cycle-SDE contraction after an edit", "2-D mixture", [a, b, c],
                    "Cycle-SDE" if b.value < c.value else "ODE", "KL {0} → Cycle-SDE {1}, ODE {2}"))
    return rows


def _digits(results: Path, out: str) -> list[Row]:
    from toy.digits.report import verdicts

    rel = f"{out}/report.json"
    reps = _load(results, rel)
    rows = []
    for v in verdicts(reps):
        d = _get(reps, v["path"][:-1])
        key = tuple(v["path"][:-1])
        lo_k, hi_k = ("lo95", "hi95") if "lo95" in d else ("ci95", None)
        nums = [Number(v["ode_minus_sde"], rel, tuple(v["path"]), "{:+.3g}")]
        if hi_k:
            nums += [Number(d[lo_k], rel, key + (lo_k,), "{:+.3g}"), Number(d[hi_k], rel, key + (hi_k,), "{:+.3g}")]
            tpl = "Δ ODE − SDE {0} [{1}, {2}]"
        else:
            nums.append(Number(d["ci95"], rel, key + ("ci95",), "{:.3g}"))
            tpl = "Δ ODE − SDE {0} ± {1}"
        rows.append(Row(f"digits {v['experiment']}: {v['measure']}", v["setting"], nums, v["favours"], tpl))
    return rows


def _shapes(results: Path, out: str) -> list[Row]:
    """Drag test bed with ground truth: paired ODE − SDE at the official defaults, per task family (one object /
    two-object scenes) and score (exact / learned UNet): position, success, realism, and whether the other object
    stayed."""
    rel = f"{out}/report.json"
    rep = _load(results, rel)
    one = (("position_error_px", "position error (px)", True), ("success_rate", "success rate", False),
           ("nll", "NLL under p0", True))
    measures = {"single": one, "textured": one, "shaded": one,
                "pair": (("success_rate", "success rate", False),
                         ("other_shift_px", "other object's shift (px)", True))}
    names = {"single": "one object", "pair": "two objects", "textured": "textured background",
             "shaded": "shaded object"}
    rows = []
    for fam in ("single", "pair", "textured", "shaded"):
        for model in ("exact", "learned"):
            if fam not in rep.get("results", {}).get(model, {}):
                continue
            what = names[fam]
            for key, label, lower_better in measures[fam]:
                res = ("results", model, fam, "defaults")
                base = res + ("paired_ode_minus_sde", key)
                d = _get(rep, base)
                lo, hi = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
                sde_better = (lo > 0) if lower_better else (hi < 0)
                ode_better = (hi < 0) if lower_better else (lo > 0)
                rows.append(Row(f"drag test bed ({what}, {model} score): {label}", "official defaults",
                                [_num(results, rel, *res, "methods", "ODE", key, "mean", fmt="{:.3g}"),
                                 _num(results, rel, *res, "methods", "SDE", key, "mean", fmt="{:.3g}"),
                                 _num(results, rel, *base, "mean", fmt="{:+.3g}"), _num(results, rel, *base, "ci95")],
                                "SDE" if sde_better else ("ODE" if ode_better else "neither"),
                                "ODE {0}, SDE {1}; Δ ODE − SDE {2} ± {3}"))
            mm = ("results", model, fam, "defaults", "mismatch", "nll_advantage")
            c = rep["results"][model][fam]["defaults"].get("mismatch", {}).get("nll_advantage")
            if c is not None and c["pearson_r"] == c["pearson_r"]:          # issue 20: r is NaN when undefined
                rows.append(Row(f"drag test bed ({what}, {model} score): SDE's NLL advantage vs mismatch at t0",
                                "official defaults", [_num(results, rel, *mm, "pearson_r", fmt="{:+.2f}"),
                                                      _num(results, rel, *mm, "lo95", fmt="{:+.2f}"),
                                                      _num(results, rel, *mm, "hi95", fmt="{:+.2f}")],
                                "tracks" if c["lo95"] > 0 else ("opposite" if c["hi95"] < 0 else "n.s."),
                                "Pearson r {0} [{1}, {2}]"))
    return rows


def _fast_study(results: Path, out: str) -> list[Row]:
    """The fast preset against the official defaults: per cell of the study, the nfe ratio and the paired SDE-Drag
    differences (fast − official) of position error and success."""
    rel = f"{out}/report.json"
    rep = _load(results, rel)
    name = rep["preset_fast"]["name"]
    rows = []
    for cell, runs in rep["cells"].items():
        if name not in runs:
            continue
        base = ("cells", cell, name, "paired_vs_reference", "SDE")
        p = _get(rep, base)
        ok = p["position_error_px"]["mean"] <= rep["config"]["max_position"] and \
            p["success_rate"]["mean"] >= -rep["config"]["max_success_drop"] and p["nll"]["lo95"] <= 0
        rows.append(Row(f"fast preset vs official SDE-Drag ({cell})",
                        f"`{name}` vs official at S = {rep['reference']['steps']}",
                        [_num(results, rel, *base, "nfe_ratio", fmt="{:.1f}"),
                         _num(results, rel, *base, "position_error_px", "mean", fmt="{:+.2f}"),
                         _num(results, rel, *base, "position_error_px", "ci95", fmt="{:.2f}"),
                         _num(results, rel, *base, "success_rate", "mean", fmt="{:+.2f}"),
                         _num(results, rel, *base, "success_rate", "ci95", fmt="{:.2f}")],
                        "within bounds" if ok else "loses quality",
                        "{0}x fewer ε-evaluations; Δ position {1} ± {2} px, Δ success {3} ± {4}"))
    return rows


def _score_error(results: Path, out: str) -> list[Row]:
    """Imperfect score: per score-error level, KL(output ‖ data) of the ODE (η = 0) and the SDE (η = 1), edited start."""
    rel = f"{out}/report.json"
    rep = _load(results, rel)
    etas = rep["etas"]
    i0, i1 = etas.index(min(etas)), etas.index(max(etas))
    rows = []
    for j, lev in enumerate(rep["levels"]):
        ode = _num(results, rel, "levels", j, "kl_edited", i0, fmt="{:.3f}")
        sde = _num(results, rel, "levels", j, "kl_edited", i1, fmt="{:.3f}")
        err = _num(results, rel, "levels", j, "eps_rms_error", fmt="{:.2g}")
        rows.append(Row("imperfect score: KL(output‖data), edited start", str(lev["level"]), [err, ode, sde],
                        "SDE" if sde.value < ode.value else "ODE", "ε error {0}: ODE {1}, SDE {2}"))
    return rows


def _sdimage(results: Path, stage: str, command: Sequence[str]) -> list[Row]:
    cmd = list(command)
    if "--out" not in cmd:  # set-up steps (the tiny model, the demo image): nothing to report
        return []
    out = cmd[cmd.index("--out") + 1]
    rel = _rel(results, Path(out).with_suffix(".json"))
    if not (results / rel).exists():
        return []
    if "reconstruct" in stage:
        return [Row("Cycle-SDE reconstruction (tiny SD, float64)", "latent max |error|",
                    [_num(results, rel, "latent_max_abs_error", fmt="{:.1e}")], "exact",
                    "{0} (tested ≤ 1e-10)")]
    return [Row(f"{stage} on the tiny random model", "NFE, wall time",
                [_num(results, rel, "nfe", fmt="{}"), _num(results, rel, "wall_s", fmt="{:.1f}")], "runs",
                "NFE {0}, {1} s")]


BUILDERS: dict[str, Callable[..., list[Row]]] = {
    "theory": lambda r, s, c: _theory(r, stage_out_dir(c)),
    "toy kl-curves": lambda r, s, c: _kl_curves(r, stage_out_dir(c)),
    "toy editing": lambda r, s, c: _editing(r, stage_out_dir(c)),
    "toy study": lambda r, s, c: _study(r, stage_out_dir(c)),
    "digits": lambda r, s, c: _digits(r, stage_out_dir(c)),
    "toy shapes drag": lambda r, s, c: _shapes(r, stage_out_dir(c)),
    "toy score-error": lambda r, s, c: _score_error(r, stage_out_dir(c)),
    "toy fast-study": lambda r, s, c: _fast_study(r, stage_out_dir(c)),
    "sdimage": _sdimage,
}
TITLES = {"theory": "The theorem, exactly", "toy kl-curves": "KL curves (exact and learned score)",
          "toy editing": "Toy editing tasks", "toy study": "Schedules, η and Cycle-SDE",
          "digits": "The paper's editing tables on digits (exact model)", "sdimage": "Stable Diffusion code path",
          "toy shapes drag": "Drag test bed with ground truth (shapes)",
          "toy score-error": "The theorem with an imperfect score",
          "toy fast-study": "Fast SDE editing: the fast preset against the official defaults"}


def build_sections(results: Path, summary: list[dict]) -> list[Section]:
    """One section per stage that ran (in order); numbers are read from the stage's JSON reports."""
    results = Path(results)
    sections = []
    for st in summary:
        name, cmd = st["stage"], [str(c) for c in st["command"]]
        if st.get("out") is not None and "--out" in cmd:  # the main job records --out relative to the results folder,
            cmd[cmd.index("--out") + 1] = str(results / st["out"])  # so a moved results folder still resolves
        key = next((k for k in BUILDERS if name == k or name.startswith(k + " ")), None)
        out = stage_out_dir(cmd)
        folder = None if out is None else _rel(results, out)
        title = TITLES.get(key, name) if key != "sdimage" else name
        if key is not None and key != "sdimage" and name != key:  # a variant of a stage (e.g. another schedule)
            title = f"{title}: {name[len(key) + 1:]}"
        sec = Section(name, title)
        if st["exit_code"] != 0:
            sec.note = f"this stage failed (exit code {st['exit_code']}); see the main job's output"
        elif key is not None:
            try:
                sec.rows = BUILDERS[key](results, name, cmd) if key == "sdimage" else \
                    BUILDERS[key](results, name, [c if c != out else folder for c in cmd])
            except (OSError, KeyError, ValueError, json.JSONDecodeError) as err:
                sec.note = f"could not read this stage's report: {err}"
            if key != "sdimage" and name != key:  # a variant's verdicts say which variant
                for row in sec.rows:
                    row.what = f"{row.what} ({name[len(key) + 1:]})"
        if key == "sdimage":
            p = Path(cmd[cmd.index("--out") + 1]) if "--out" in cmd else None
            if p is not None and p.suffix == ".png" and (results / _rel(results, p)).exists():
                sec.figures = [(_rel(results, p), _caption(p))]
                j = p.with_suffix(".json")
                sec.links = [_rel(results, j)] if (results / _rel(results, j)).exists() else []
        else:
            sec.figures = _figures(results, folder)
            sec.links = _links(results, folder)
        if key is None and not sec.note:
            sec.note = "no summary for this stage yet: its reports and figures are linked below"
        if key == "sdimage" and not sec.rows and not sec.note:
            sec.note = "a set-up step for the stages below (no report of its own)" if "--out" not in cmd \
                else "no report found for this stage"
        sections.append(sec)
    return sections


# ------------------------------------------------------------------------------------------------- rendering
def _row_text(row: Row, link: Callable[[Number], str]) -> str:
    return row.template.format(*(link(n) for n in row.numbers))


def in_short(sections: list[Section]) -> str:
    """One sentence: how many verdicts favour the SDE, the ODE or neither, and whether the theorem held."""
    rows = [r for sec in sections for r in sec.rows]
    theorem = [r for r in rows if r.what.startswith("theorem")]
    edits = [r for r in rows if not r.what.startswith("theorem") and r.verdict in ("SDE", "ODE", "neither", "split",
                                                                                   "Cycle-SDE")]
    count = lambda *v: sum(r.verdict in v for r in edits)  # noqa: E731
    failed = [sec.stage for sec in sections if sec.note.startswith("this stage failed")]
    text = (f"In short: the theorem holds in {sum(r.verdict == 'holds' for r in theorem)} of {len(theorem)} cases; of "
            f"{len(edits)} SDE-vs-ODE comparisons, {count('SDE', 'Cycle-SDE')} favour the SDE, {count('ODE')} the "
            f"ODE and {count('neither', 'split')} neither (95 % intervals where the lab has them).")
    return text + (f" Failed stages: {', '.join(failed)}." if failed else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(sections: list[Section], summary: list[dict]) -> str:
    md = lambda n: f"[{n.text}]({n.json})"  # noqa: E731
    lines = ["# Results of the main job", "",
             "Every number links to the JSON report it was read from. Verdicts first, then every stage's figures.",
             "", f"**{in_short(sections)}**", "", "## Verdicts", "", "| claim | setting | numbers | verdict |", "|---|---|---|---|"]
    for sec in sections:
        for row in sec.rows:
            lines.append(f"| {_cell(row.what)} | {_cell(row.setting)} | {_cell(_row_text(row, md))} | **{row.verdict}** |")
    lines += ["", "## Stages", "", "| stage | exit code | seconds |", "|---|---|---|"]
    for st in summary:
        lines.append(f"| {st['stage']} | {st['exit_code']} | {st['seconds']} |")
    for sec in sections:
        lines += ["", f"## {sec.title}" + (f" (`{sec.stage}`)" if sec.title != sec.stage else ""), ""]
        if sec.note:
            lines += [f"*{sec.note}*", ""]
        if sec.links:
            lines += ["Reports: " + ", ".join(f"[{p}]({p})" for p in sec.links), ""]
        for path, cap in sec.figures:
            lines += [f"![{cap}]({path})", f"*{cap}*", ""]
    return "\n".join(lines) + "\n"


def render_html(sections: list[Section], summary: list[dict]) -> str:
    e = html.escape

    def link(n: Number) -> str:
        key = ".".join(str(k) for k in n.key)
        return (f'<a class="num" href="{e(n.json)}" data-json="{e(n.json)}" data-key="{e(key)}" '
                f'title="{e(n.json)} : {e(key)}">{e(n.text)}</a>')

    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Results of the main job</title>",
           "<style>body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
           "figure{display:inline-block;width:30em;margin:.5em;vertical-align:top}figure img{width:100%}"
           ".SDE{color:#b00}.ODE{color:#00b}</style></head><body>",
           "<h1>Results of the main job</h1>",
           "<p>Every number links to the JSON report it was read from. Verdicts first, then every stage's figures.</p>",
           f"<p><b>{e(in_short(sections))}</b></p>",
           "<h2>Verdicts</h2><table><tr><th>claim</th><th>setting</th><th>numbers</th><th>verdict</th></tr>"]
    for sec in sections:
        for row in sec.rows:
            out.append(f"<tr><td>{e(row.what)}</td><td>{e(row.setting)}</td><td>{_row_text(row, link)}</td>"
                       f"<td class='{e(row.verdict)}'><b>{e(row.verdict)}</b></td></tr>")
    out.append("</table><h2>Stages</h2><table><tr><th>stage</th><th>exit code</th><th>seconds</th></tr>")
    for st in summary:
        out.append(f"<tr><td class='stage'>{e(st['stage'])}</td><td>{st['exit_code']}</td><td>{st['seconds']}</td></tr>")
    out.append("</table>")
    for sec in sections:
        out.append(f"<h2 class='section' data-stage='{e(sec.stage)}'>{e(sec.title)}</h2>")
        if sec.note:
            out.append(f"<p><i>{e(sec.note)}</i></p>")
        if sec.links:
            out.append("<p>Reports: " + ", ".join(f"<a href='{e(p)}'>{e(p)}</a>" for p in sec.links) + "</p>")
        for path, cap in sec.figures:
            out.append(f"<figure><img src='{e(path)}' alt='{e(cap)}'><figcaption>{e(cap)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_page(results: Path, summary: list[dict]) -> Path:
    """Write ``results/index.html`` and ``results/README.md``; returns the HTML path."""
    results = Path(results)
    sections = build_sections(results, summary)
    for name, text in (("index.html", render_html(sections, summary)), ("README.md", render_markdown(sections, summary))):
        tmp = results / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(results / name)
    return results / "index.html"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    results = Path(args[0] if args else "results")
    summary_path = results / "summary.json"
    if not summary_path.is_file():
        print(f"error: {summary_path} not found (run ./run.sh first)", file=sys.stderr)
        return 2
    print(f"results page: {write_page(results, json.loads(summary_path.read_text()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
