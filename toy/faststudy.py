"""The study that picks the ``"fast"`` preset (issue 19): SDE-Drag and ODE-Drag at matched budgets on the shapes bed
(exact and learned score, one- and two-object scenes) and on the digits, against the official defaults.

Every candidate is a (solver, grid size S, step size) of ``diffsamplers.recipes.drag`` with the clean rules
(``preset="fast"`` with those three set); the reference is ``preset="official"`` at the paper's S = 200 and step 2.
Both run through :func:`toy.shapes.experiment.run_setting` on the same tasks, masks and noise seeds, so every
difference is paired per task; ``nfe`` is counted from the model calls.  The rule (issue 19): ``fast`` is the
cheapest candidate that uses >= ``min_ratio``× fewer ε-evaluations than the reference and whose paired differences
to it stay within +``max_position`` px position error and −``max_success_drop`` success, with NLL no worse (the
95 % interval of fast − official does not lie above 0), for both methods in every cell.  It is picked on
``seeds[0]`` and checked again on the other seeds' tasks (held out from the choice).

``python -m toy fast-study [--quick] --out DIR [--cache DIR]``
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Candidate", "FastStudyConfig", "run_fast_study", "passes", "choose"]

METHODS = ("ODE", "SDE")


@dataclass(frozen=True)
class Candidate:
    """One fast setting: solver, grid size S (K = int(t0·S) steps per pass) and px per drag operation."""

    solver: str
    steps: int
    step_size: float

    @property
    def name(self) -> str:
        ss = "1op" if math.isinf(self.step_size) else f"step{self.step_size:g}"
        return f"{self.solver}-S{self.steps}-{ss}"

    def to_dict(self) -> dict:
        return {"solver": self.solver, "steps": self.steps,
                "step_size": "inf" if math.isinf(self.step_size) else self.step_size, "name": self.name}


@dataclass
class FastStudyConfig:
    """Candidates, reference, cells and the selection rule (module docstring)."""

    solvers: tuple = ("ddim", "dpmpp")
    steps: tuple = (10, 20, 30)
    step_sizes: tuple = (2.0, math.inf)
    reference_steps: int = 200
    families: tuple = ("single", "pair")
    models: tuple = ("exact", "learned")
    n_groups: int = 16
    pair_groups: int = 16
    learned_groups: int = 8
    seeds: tuple = (0, 1)
    heldout_models: tuple = ("exact",)  # the models rechecked on the held-out seeds
    digits_images: int = 30
    max_position: float = 0.25
    max_success_drop: float = 0.05
    min_ratio: float = 10.0
    quick_learned: bool = False   # the bed's seconds-scale UNet (LearnedConfig.quick)
    learned_steps: int | None = 200   # training steps of the learned UNets (None: the bed's full 600; 200 as
                                      # docs/figures/fast was run, ε error ≈ 0.014 per pixel)

    def __post_init__(self) -> None:
        self.solvers, self.steps, self.families, self.models, self.seeds = (
            tuple(self.solvers), tuple(int(s) for s in self.steps), tuple(self.families), tuple(self.models),
            tuple(int(s) for s in self.seeds))
        self.step_sizes = tuple(float(s) for s in self.step_sizes)
        self.heldout_models = tuple(self.heldout_models)
        from diffsamplers import SOLVERS

        if not self.solvers or set(self.solvers) - set(SOLVERS):
            raise ValueError(f"solvers must be names from {SOLVERS}, got {list(self.solvers)}")
        if not self.steps or any(s < 2 or int(0.6 * s) < 1 or s > 1000 for s in self.steps):
            raise ValueError(f"steps must be integers in [2, 1000], got {list(self.steps)}")
        if not self.step_sizes or any(not s > 0 for s in self.step_sizes):
            raise ValueError(f"step_sizes must be > 0 (inf: one operation), got {list(self.step_sizes)}")
        if not 2 <= int(self.reference_steps) <= 1000:
            raise ValueError(f"reference_steps must be in [2, 1000], got {self.reference_steps}")
        if not self.families or set(self.families) - {"single", "pair"}:
            raise ValueError(f"families must be from ['single', 'pair'], got {list(self.families)}")
        if not self.models or set(self.models) - {"exact", "learned"} or set(self.heldout_models) - set(self.models):
            raise ValueError("models must be from ['exact', 'learned'] and heldout_models a subset of them")
        if len(self.seeds) < 1 or len(set(self.seeds)) < len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        if min(self.n_groups, self.pair_groups, self.learned_groups) < 2 or max(self.n_groups, self.pair_groups) > 256:
            raise ValueError("n_groups, pair_groups and learned_groups must be in [2, 256]")
        if self.learned_steps is not None and not (isinstance(self.learned_steps, int) and
                                                   1 <= self.learned_steps <= 100_000):
            raise ValueError(f"learned_steps must be an integer in [1, 100000] or null, got {self.learned_steps!r}")
        if not 0 <= int(self.digits_images) <= 1000:
            raise ValueError(f"digits_images must be in [0, 1000], got {self.digits_images}")
        for name in ("max_position", "max_success_drop", "min_ratio"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")

    def candidates(self) -> list[Candidate]:
        """The grid of candidates, plus the current ``"fast"`` preset's own setting (so every run reports it)."""
        out = [Candidate(so, st, ss) for so in self.solvers for st in self.steps for ss in self.step_sizes]
        preset = preset_candidate()
        return out if preset in out else out + [preset]

    @classmethod
    def quick(cls) -> "FastStudyConfig":
        """Minutes on 2 cores (the main job's stage): exact score only, a few candidates, small task sets."""
        return cls(solvers=("ddim", "dpmpp"), steps=(10, 20), step_sizes=(2.0, math.inf), reference_steps=100,
                   models=("exact",), n_groups=4, pair_groups=4, seeds=(0, 1), digits_images=6, quick_learned=True,
                   learned_steps=None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["step_sizes"] = ["inf" if math.isinf(s) else s for s in self.step_sizes]
        return d


def preset_candidate() -> Candidate:
    """The (solver, steps, step size) of :data:`diffsamplers.presets.PRESET_DEFAULTS` ``["fast"]``."""
    from diffsamplers.presets import preset_defaults

    f = preset_defaults("fast")
    return Candidate(f.solver, f.drag_steps, f.drag_step_size)


def _cell_values(res) -> dict:
    """method → measure → per-task array (position error, success, NLL, nfe)."""
    keys = ("position_error_px", "success_rate", "nll", "nfe")
    return {m: {k: np.asarray(res.values[m][k], dtype=np.float64) for k in keys} for m in METHODS}


def _paired(fast: dict, ref: dict) -> dict:
    """Paired fast − official per method: position, success, NLL (mean, ci95, lo95, hi95) and the nfe ratio."""
    from .digits.common import diff_ci

    out = {}
    for m in METHODS:
        d = {}
        for k in ("position_error_px", "success_rate", "nll"):
            c = diff_ci(fast[m][k], ref[m][k])
            c["lo95"], c["hi95"] = c["mean"] - c["ci95"], c["mean"] + c["ci95"]
            d[k] = c
        d["nfe_ratio"] = float(ref[m]["nfe"].mean() / fast[m]["nfe"].mean())
        out[m] = d
    return out


def passes(paired: dict, cfg: FastStudyConfig) -> tuple[bool, list[str]]:
    """The selection rule on one cell's paired differences; returns (ok, reasons it fails)."""
    ok, why, _ = _check(paired, cfg)
    return ok, why


def _check(paired: dict, cfg: FastStudyConfig) -> tuple[bool, list[str], bool]:
    """(passes, reasons, every failure is within noise): a failure is significant when its 95 % interval lies wholly
    on the wrong side of 0 (NLL: the rule is already that), or the ratio is short."""
    why, significant = [], False
    for m in METHODS:
        p = paired[m]
        pos, suc, nll = p["position_error_px"], p["success_rate"], p["nll"]
        if pos["mean"] > cfg.max_position:
            why.append(f"{m} position +{pos['mean']:.3f} px > {cfg.max_position} "
                       f"[{pos['mean'] - pos['ci95']:+.2f}, {pos['mean'] + pos['ci95']:+.2f}]")
            significant |= pos["mean"] - pos["ci95"] > 0
        if suc["mean"] < -cfg.max_success_drop:
            why.append(f"{m} success {suc['mean']:+.3f} < -{cfg.max_success_drop} "
                       f"[{suc['mean'] - suc['ci95']:+.2f}, {suc['mean'] + suc['ci95']:+.2f}]")
            significant |= suc["mean"] + suc["ci95"] < 0
        if nll["lo95"] > 0:
            why.append(f"{m} NLL worse ({nll['mean']:+.1f}, interval above 0)")
            significant = True
        if p["nfe_ratio"] < cfg.min_ratio:
            why.append(f"{m} ratio {p['nfe_ratio']:.1f} < {cfg.min_ratio:g}")
            significant = True
    return not why, why, not significant


def choose(table: dict, cfg: FastStudyConfig) -> dict:
    """The cheapest candidate passing the rule in every cell (``table[cand][cell]`` = paired dict; ties: the smaller
    mean SDE position-error change).  When none passes, ``fallback``: among the candidates whose failures are all
    within noise (no interval wholly on the wrong side of 0, ratio met), the one with the fewest failures, then the
    cheapest — reported as not meeting the rule, with what it loses."""
    rows = []
    for name, cells in table.items():
        ok, why, soft = True, [], True
        for cell, p in cells.items():
            c_ok, c_why, c_soft = _check(p, cfg)
            ok &= c_ok
            soft &= c_soft
            why += [f"{cell}: {w}" for w in c_why]
        ratio = min(min(p[m]["nfe_ratio"] for m in METHODS) for p in cells.values())
        dpos = float(np.mean([p["SDE"]["position_error_px"]["mean"] for p in cells.values()]))
        rows.append({"candidate": name, "passes": ok, "failures_within_noise": soft and not ok, "min_ratio": ratio,
                     "mean_sde_position_change": dpos, "fails": why})
    ok_rows = sorted((r for r in rows if r["passes"]),
                     key=lambda r: (-round(r["min_ratio"], 6), r["mean_sde_position_change"]))
    soft_rows = sorted((r for r in rows if r["failures_within_noise"]),
                       key=lambda r: (len(r["fails"]), -round(r["min_ratio"], 6), r["mean_sde_position_change"]))
    return {"chosen": ok_rows[0]["candidate"] if ok_rows else None,
            "fallback": None if ok_rows or not soft_rows else soft_rows[0]["candidate"], "rows": rows,
            "tie_break": "equal ratio: the smaller mean paired SDE position-error change over the cells",
            "fallback_rule": "no candidate passes: among those whose every failure is within noise, the fewest "
                             "failures, then the cheapest"}


def _shapes_cells(cfg: FastStudyConfig, cands: list[Candidate], seed: int, cache_dir: Path, say,
                  models: tuple | None = None, runs_dir: Path | None = None, learned_meta: dict | None = None) -> dict:
    """cell → {"reference": values, cand.name: values} on the shapes bed, tasks of ``seed``; each run's per-task
    values are kept in ``runs_dir`` (if given) and reused, so an interrupted study resumes."""
    from .shapes.experiment import DragSettings, ShapesDragConfig, run_setting
    from .shapes.families import build_family, family_config
    from .shapes.learned import LearnedConfig, get_learned
    from .shapes.measures import TemplateBank, nll_data_range
    from .shapes.tasks import FAMILIES

    lc = LearnedConfig.quick() if cfg.quick_learned else LearnedConfig()
    if cfg.learned_steps is not None:
        lc = dataclasses.replace(lc, steps=int(cfg.learned_steps))
    bed = ShapesDragConfig(learned=lc)
    out: dict = {}
    for fam in cfg.families:
        data = build_family(fam, family_config(fam, bed))
        rng = nll_data_range(data, bed.nll_samples, bed.seed + 1 + FAMILIES.index(fam))
        bank = TemplateBank(data)
        for model in (cfg.models if models is None else models):
            fn = None
            groups = cfg.n_groups if fam == "single" else cfg.pair_groups
            if model == "learned":
                fn, meta = get_learned(fam, data, bed.learned, "sd", cache_dir, say)
                if learned_meta is not None:
                    learned_meta[fam] = {"steps": meta.get("steps"), "score_error": meta.get("score_error"),
                                         "parameters": meta.get("parameters"), "config": asdict(bed.learned)}
                groups = min(groups, cfg.learned_groups)
            cell = out[f"{fam}/{model}"] = {}
            runs = [("reference", DragSettings(preset="official", steps=cfg.reference_steps, step_size=2.0))]
            runs += [(c.name, DragSettings(preset="fast", solver=c.solver, order=2, steps=c.steps,
                                           step_size=c.step_size)) for c in cands]
            for name, s in runs:
                t = time.time()
                keep = None if runs_dir is None else Path(runs_dir) / f"seed{seed}-{fam}-{model}-{name}.json"
                if keep is not None and keep.exists():
                    import json

                    cell[name] = {m: {k: np.asarray(v) for k, v in d.items()}
                                  for m, d in json.loads(keep.read_text()).items()}
                    continue
                res = run_setting(data, bank, s, groups, seed, rng["max"], fn, bed.near)
                cell[name] = _cell_values(res)
                if keep is not None:
                    from .io import write_json

                    keep.parent.mkdir(parents=True, exist_ok=True)
                    write_json(keep, {m: {k: v.tolist() for k, v in d.items()} for m, d in cell[name].items()})
                say(f"seed {seed} {fam}/{model} {name}: {len(res.tasks)} tasks, nfe "
                    f"{cell[name]['SDE']['nfe'].mean():.0f}, {time.time() - t:.1f} s")
    return out


def _digits_cell(cfg: FastStudyConfig, cands: list[Candidate], seed: int, say) -> dict:
    """Digits (exact mixture): handle distance (lower is better), log p_0 (higher), class kept (higher)."""
    from .digits.common import balanced, make_context
    from .digits.drag import drag, drag_problem, handle_distance

    ctx = make_context("exact", quick=True, seed=seed)
    imgs, labels = balanced(ctx.test, cfg.digits_images, seed + 3)
    g = torch.Generator().manual_seed(seed + 33)
    probs = [drag_problem(imgs[i], g) for i in range(len(imgs))]
    edit = torch.stack([p[2] for p in probs])
    out = {}
    runs = [("reference", "official", "ddim", cfg.reference_steps, 1.0)]
    runs += [(c.name, "fast", c.solver, c.steps, c.step_size) for c in cands]
    for name, preset, solver, steps, step in runs:
        grid = ctx.schedule.grid(steps).tail(0.6)
        vals = {}
        for method, sampler in (("ODE", "ode"), ("SDE", "sde")):
            calls = [0]

            def counted(x, t, _m=ctx.model):
                calls[0] += 1
                return _m(x, t)

            t0 = time.time()
            xs = drag(counted, grid, imgs, [p[0] for p in probs], [p[1] for p in probs], edit, sampler,
                      seed * 101, step_size=step, preset=preset, solver=solver)
            with torch.no_grad():
                kept = (ctx.classifier(xs).argmax(1) == labels).double().numpy()
            vals[method] = {
                "handle_distance": np.array([handle_distance(imgs[i], xs[i], probs[i][0], probs[i][1])
                                             for i in range(len(imgs))]),
                "logp0": ctx.mixture.log_prob(xs).numpy().astype(np.float64), "class_kept": kept,
                "nfe": np.full(len(imgs), calls[0] / len(imgs))}
        out[name] = vals
        say(f"seed {seed} digits {name}: nfe {vals['SDE']['nfe'].mean():.0f}, {time.time() - t0:.1f} s")
    return out


def _digits_paired(fast: dict, ref: dict) -> dict:
    from .digits.common import diff_ci

    return {m: {**{k: diff_ci(fast[m][k], ref[m][k]) for k in ("handle_distance", "logp0", "class_kept")},
                "nfe_ratio": float(ref[m]["nfe"].mean() / fast[m]["nfe"].mean())} for m in METHODS}


def _summ(v: dict) -> dict:
    from .shapes.experiment import ci

    return {m: {k: ci(a, k == "success_rate") for k, a in d.items()} for m, d in v.items()}


def run_fast_study(cfg: FastStudyConfig, out: Path | None = None, cache_dir: str | Path | None = None,
                   progress=None, runs_dir: str | Path | None = None) -> dict:
    """Run every candidate and the reference on ``seeds[0]``, choose, then recheck the choice on the other seeds;
    digits for the reference and the chosen setting.  Writes ``report.json``, ``report.md`` and the Pareto figure."""
    from .digits.metrics import mean_ci
    from .io import run_meta, write_json
    from .shapes.learned import default_cache_dir

    t_start = time.time()
    say = progress or (lambda _s: None)
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    cands = cfg.candidates()
    learned_meta: dict = {}
    pick = _shapes_cells(cfg, cands, cfg.seeds[0], cache_dir, say, runs_dir=runs_dir, learned_meta=learned_meta)
    table = {c.name: {cell: _paired(v[c.name], v["reference"]) for cell, v in pick.items()} for c in cands}
    decision = choose(table, cfg)
    chosen = next((c for c in cands if c.name == (decision["chosen"] or decision["fallback"])), None)
    rep: dict = {
        "experiment": "fast-study", "config": cfg.to_dict(),
        "reference": {"preset": "official", "solver": "ddim", "steps": cfg.reference_steps, "step_size": 2.0},
        "candidates": [c.to_dict() for c in cands],
        "rule": (f"cheapest candidate with nfe ratio >= {cfg.min_ratio:g} against the reference and, for ODE and SDE "
                 f"in every cell, paired mean differences fast - official of position error <= +{cfg.max_position} "
                 f"px and success >= -{cfg.max_success_drop}, NLL not worse (95 % interval not above 0)"),
        "pick_seed": cfg.seeds[0], "cells": {}, "decision": decision, "heldout": {}, "digits": {},
        "preset_fast": preset_candidate().to_dict(), "learned": learned_meta,
    }
    for cell, v in pick.items():
        rep["cells"][cell] = {name: {"values": _summ(vals),
                                     **({"paired_vs_reference": table[name][cell]} if name != "reference" else {})}
                              for name, vals in v.items()}
    # held-out task seeds: the chosen setting and the preset's own rechecked on tasks the choice never saw
    check = list(dict.fromkeys(c for c in (chosen, preset_candidate()) if c is not None))
    for seed in cfg.seeds[1:]:
        v = _shapes_cells(cfg, check, seed, cache_dir, say, models=tuple(cfg.heldout_models), runs_dir=runs_dir)
        rep["heldout"][str(seed)] = {
            c.name: {cell: {"paired_vs_reference": _paired(vv[c.name], vv["reference"]),
                            "passes": passes(_paired(vv[c.name], vv["reference"]), cfg)[0]} for cell, vv in v.items()}
            for c in check}
    if cfg.digits_images > 0:
        dc = check
        for seed in cfg.seeds:
            d = _digits_cell(cfg, dc, seed, say)
            rep["digits"][str(seed)] = {name: {"values": {m: {k: mean_ci(a) for k, a in mv.items()}
                                                          for m, mv in vals.items()},
                                               **({"paired_vs_reference": _digits_paired(vals, d["reference"])}
                                                  if name != "reference" else {})}
                                        for name, vals in d.items()}
    rep["meta"] = run_meta(time.time() - t_start)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        from .fastplots import pareto_figure, study_markdown

        try:
            rep["figures"] = pareto_figure(rep, out)
        except Exception as err:  # a figure failure must not lose the report
            rep["figures"] = {"error": f"{type(err).__name__}: {err}"}
        write_json(out / "report.json", rep)
        tmp = out / "report.md.tmp"
        tmp.write_text(study_markdown(rep))
        tmp.replace(out / "report.md")
    return rep


