"""SDE-Drag vs ODE-Drag on the shapes test bed: one setting, the sweeps, the report.

Every edit is ``diffsamplers.recipes.drag`` (``preset="official"``) on a [B, 1, side, side] batch of data-set
images that share handle and target, with an ε-model — the exact one of the family's mixture, or the family's
learned UNet (:mod:`.learned`) — a ``schedule.grid(steps).tail(t0)`` grid and per-task editable boxes.  ODE and SDE
see the same tasks, masks and noise seeds (ODE uses the seed only for the paste noise), so every comparison is
paired per task.  Two task families: ``single`` (one object per image, :mod:`.data`) and ``pair`` (two-object
scenes where the other object must stay, :mod:`.pairs`); each has its own exact mixture, its own learned UNet and
its own NLL range.  Each sweep changes one setting of the defaults and reruns both methods on the same tasks (the
tasks depend on the drag distance and handle only); the learned model runs on the first ``learned_groups`` task
groups of the exact model's tasks, so exact and learned are paired per task too.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffsamplers import GaussianNoise, num_drag_ops, recipes

from ..digits.common import diff_ci
from ..digits.metrics import mean_ci
from .data import ShapeConfig
from .families import VARIANT_FAMILIES, build_family, family_config
from .families import family_tasks as _family_tasks
from .hybrids import BASE_METHODS, check_methods, method_kwargs
from .learned import LearnedConfig, default_cache_dir, get_learned, score_error_at
from .measures import OUTCOMES, PAIR_MEASURES, TemplateBank, measure, nll_data_range
from .mismatch import correlation, data_reference, path_summary
from .pairs import PairConfig
from .mismatch import NllRecorder
from .runs import hybrid_summary
from .seams import SEAM_MEASURES, seam_measures
from .shaded import ShadedConfig
from .tasks import FAMILIES, HANDLES, SCHEDULES, DragTask, editable_box, exact_model, make_schedule
from .textured import TexturedConfig

__all__ = ["DragSettings", "ShapesDragConfig", "SettingResult", "run_setting", "run_shapes_drag", "ci",
           "MEASURES", "RATES", "MODELS", "FAMILIES"]

MEASURES: tuple[str, ...] = ("position_error_px", "drag_fraction", "nll", "outside_mask_change", "l2_to_answer",
                             "success_rate")
RATES: tuple[str, ...] = ("success_rate", "in_range") + tuple(f"outcome_{o}" for o in OUTCOMES)
MODELS: tuple[str, ...] = ("exact", "learned")


@dataclass
class DragSettings:
    """One drag setting.  Official SDE-Drag values where they carry over (t0, α, β, preset); r and step_size are
    scaled to the objects (docs/shapes.md: the (2r)² window covers the largest object, half-size 5 → r = 6;
    step 2 px per operation); ``steps`` 100 instead of 200 for CPU time (the steps sweep checks it)."""

    t0: float = 0.6
    alpha: float = 1.1
    beta: float = 0.3
    steps: int | None = None  # None: the preset's (official / clean: the bed's 100; fast: diffsamplers.presets)
    r: int = 6
    step_size: float | None = None  # None: the preset's (2 px; fast: its own); "inf": one operation
    margin: int = 3           # editable box = object at source and target + margin px (>= side: whole image)
    distance: int = 4         # px per axis; displacement = distance × a compass direction (4 or 4√2 px)
    handle: str = "centre"
    schedule: str = "sd"
    preset: str = "official"
    solver: str | None = None  # None: the preset's ("ddim"; fast: its own); or "dpmpp"
    order: int | None = None   # DPM-Solver++ order (None: the preset's)

    def __post_init__(self) -> None:
        from diffsamplers import check_preset, check_solver

        check_preset(self.preset)
        if isinstance(self.step_size, str):
            self.step_size = float(self.step_size)        # JSON has no infinity: "inf" = one operation
        r = self.resolved()
        check_solver(str(r.solver), int(r.order))         # type: ignore[arg-type]
        if not 0.0 < float(self.t0) <= 1.0:
            raise ValueError(f"t0 must be in (0, 1], got {self.t0}")
        if int(r.steps) < 2 or int(r.steps * self.t0) < 1:  # type: ignore[operator]
            raise ValueError(f"steps must be >= 2 with int(t0 * steps) >= 1, got steps={r.steps}, t0={self.t0}")
        if int(self.r) < 1 or not float(r.step_size) > 0 or int(self.margin) < 0:  # type: ignore[arg-type]
            raise ValueError("need r >= 1, step_size > 0 and margin >= 0")
        if not 0.0 <= float(self.beta) <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.handle not in HANDLES:
            raise ValueError(f"handle must be one of {HANDLES}, got {self.handle!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")

    def replace(self, **kw) -> "DragSettings":
        return dataclasses.replace(self, **kw)

    def resolved(self, base_steps: int = 100) -> "DragSettings":
        """The setting with every None taken from the preset (:data:`diffsamplers.presets.PRESET_DEFAULTS`; the
        bed's ``base_steps`` grid for official / clean): a preset sets defaults only, a value given wins."""
        from diffsamplers.presets import preset_defaults

        d = preset_defaults(self.preset)
        kw = {"steps": d.drag_steps if self.preset == "fast" else base_steps, "step_size": d.drag_step_size,
              "solver": d.solver, "order": d.order}
        kw = {k: v for k, v in kw.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **kw) if kw else self

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["step_size"] is not None and math.isinf(d["step_size"]):
            d["step_size"] = "inf"  # one operation (JSON has no infinity)
        return d


def _sweeps_full() -> dict:
    return {"t0": [0.2, 0.3, 0.4, 0.5, 0.7, 0.8], "alpha": [1.0, 1.2, 1.5], "beta": [0.0, 0.6, 1.0],
            "steps": [50, 200], "distance": [2, 6, 8], "margin": [1, 6, 32], "step_size": [1.0, 4.0, 8.0],
            "r": [2, 4, 8], "handle": ["edge"], "schedule": ["ddpm-linear"]}


def _sub(cls, v):
    return cls(**(v if isinstance(v, dict) else asdict(v)))


@dataclass
class ShapesDragConfig:
    """The whole experiment: data of both families, the default setting, task groups, the learned model's training,
    the sweeps (each value reruns both methods; the default value of each swept setting is the default run).

    ``sweeps`` run on the one-object family with the exact model; ``pair_sweeps`` on the two-object family with
    the exact model; ``learned_sweeps`` with the learned model of each family that runs (the learned UNet costs
    ~10× the exact ε per call, so its sweeps are short).  The learned model runs on the first ``learned_groups``
    groups of each family's tasks."""

    shapes: ShapeConfig = field(default_factory=ShapeConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    defaults: DragSettings = field(default_factory=DragSettings)
    base_steps: int = 100         # the grid of the official / clean presets when ``defaults.steps`` is unset
    n_groups: int = 32            # one-object task groups; tasks = n_groups × kinds × sizes
    pair_groups: int = 16         # two-object task groups; tasks = pair_groups × 2 × sizes²
    near: int = 3                 # two-object tasks: the other object's box at most this many px from the path's
    seed: int = 0
    nll_samples: int = 4096       # p_0 draws that define the data's NLL range (per family)
    examples: int = 6             # rows of the example / failure grids
    sweeps: dict = field(default_factory=_sweeps_full)
    families: tuple = ("single", "pair")   # any of FAMILIES: + "textured", "shaded" (issue 20)
    models: tuple = MODELS
    learned: LearnedConfig = field(default_factory=LearnedConfig)
    learned_groups: int = 8
    pair_sweeps: dict = field(default_factory=lambda: {"t0": [0.4, 0.8], "margin": [32]})
    learned_sweeps: dict = field(default_factory=lambda: {"t0": [0.4, 0.8]})
    # issue 20: textured / shaded families, ODE/SDE hybrids (at the defaults), −log p_t along every chain
    textured: TexturedConfig = field(default_factory=TexturedConfig)
    shaded: ShadedConfig = field(default_factory=ShadedConfig)
    variant_groups: int = 8       # textured / shaded task groups; tasks = variant_groups × kinds × sizes
    variant_sweeps: dict = field(default_factory=lambda: {"t0": [0.4, 0.8]})
    contrast_sweep: list = field(default_factory=lambda: [0.25, 1.0])   # textured, exact model: background contrast
    methods: tuple = BASE_METHODS  # at the defaults; sweeps run ODE and SDE; hybrids: toy.shapes.hybrids.HYBRIDS
    switch: float = 0.5           # hybrid-late / hybrid-early: fraction of the decoding steps before the switch
    record_nll: bool = True       # −log p_t (exact mixture) after the paste and after every decoding step

    def __post_init__(self) -> None:
        # rebuilt from plain values, so fields merged in from a JSON config are validated too
        self.shapes = _sub(ShapeConfig, self.shapes)
        self.pairs = _sub(PairConfig, self.pairs)
        self.textured = _sub(TexturedConfig, self.textured)
        self.shaded = _sub(ShadedConfig, self.shaded)
        self.methods = check_methods(self.methods)
        if not 0.0 < float(self.switch) < 1.0:
            raise ValueError(f"switch must be in (0, 1), got {self.switch}")
        if not isinstance(self.contrast_sweep, (list, tuple)):
            raise ValueError("contrast_sweep must be a list of background contrasts")
        for c in self.contrast_sweep:                   # every contrast must make a valid textured data set
            _sub(TexturedConfig, {**asdict(self.textured), "contrast": c})
        if int(self.examples) < 1:
            raise ValueError(f"examples must be >= 1 (rows of the example figures), got {self.examples}")
        self.defaults = _sub(DragSettings, self.defaults)
        if len(self.methods) > 2 and self.defaults.resolved(self.base_steps).solver != "ddim":
            raise ValueError("the hybrid methods are per-step eta schedules of the ddim solver: set "
                             "defaults.solver to 'ddim' (the fast preset uses 'dpmpp') or drop the hybrids")
        self.learned = _sub(LearnedConfig, self.learned)
        self.families, self.models = tuple(self.families), tuple(self.models)
        known = {f.name for f in dataclasses.fields(DragSettings)}
        for what, sw in (("sweeps", self.sweeps), ("pair_sweeps", self.pair_sweeps),
                         ("learned_sweeps", self.learned_sweeps), ("variant_sweeps", self.variant_sweeps)):
            if not isinstance(sw, dict) or not all(isinstance(v, (list, tuple)) for v in sw.values()):
                raise ValueError(f"{what} must be an object {{setting: [values]}}")
            bad = sorted(set(sw) - known)
            if bad:
                raise ValueError(f"unknown {what} setting(s) {bad}; sweepable: {sorted(known)}")
            for name, vals in sw.items():               # every swept value must make a valid setting
                for v in vals:
                    self.defaults.replace(**{name: v})
        if not self.families or set(self.families) - set(FAMILIES) or len(set(self.families)) < len(self.families):
            raise ValueError(f"families must be distinct names from {FAMILIES}, got {list(self.families)}")
        if not self.models or set(self.models) - set(MODELS) or len(set(self.models)) < len(self.models):
            raise ValueError(f"models must be distinct names from {MODELS}, got {list(self.models)}")
        if "schedule" in self.learned_sweeps:
            raise ValueError("the learned UNet knows only the schedule it was trained on: no schedule sweep")
        if min(self.n_groups, self.pair_groups, self.learned_groups, self.variant_groups) < 2:
            raise ValueError("n_groups, pair_groups, variant_groups and learned_groups must be >= 2 (intervals need "
                             "several tasks)")
        if self.near < self.pairs.gap:
            raise ValueError(f"near ({self.near}) must be >= the pair gap ({self.pairs.gap})")

    @classmethod
    def quick(cls) -> "ShapesDragConfig":
        """Under two minutes on 2 cores, training the (tiny, quick) learned UNets included."""
        return cls(base_steps=50, n_groups=6, pair_groups=4, nll_samples=1024, examples=4,
                   sweeps={"t0": [0.4, 0.8], "margin": [32]}, learned=LearnedConfig.quick(), learned_groups=2,
                   pair_sweeps={"margin": [32]}, learned_sweeps={}, variant_groups=2, variant_sweeps={},
                   contrast_sweep=[1.0])

    @classmethod
    def fast(cls) -> "ShapesDragConfig":
        """Seconds-scale settings for the notebook in fast mode (SDEODE_FAST=1) and smoke tests."""
        return cls(base_steps=30, n_groups=3, pair_groups=2, nll_samples=512, examples=3,
                   sweeps={"t0": [0.4]}, learned=LearnedConfig(steps=10, warmup=5, channels=(8, 16, 16),
                                                               eval_samples=64),
                   learned_groups=2, pair_sweeps={}, learned_sweeps={}, variant_groups=2, variant_sweeps={},
                   contrast_sweep=[])

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SettingResult:
    """Both methods on one setting: tasks, inputs, masks, outputs and per-task measures (method → name → array)."""

    settings: DragSettings
    tasks: list[DragTask]
    inputs: torch.Tensor
    answers: torch.Tensor
    masks: torch.Tensor
    outputs: dict
    values: dict
    ops: list[int]
    seconds: float
    paths: dict = field(default_factory=dict)      # method → [n_steps, n_tasks] −log p_t of the last operation
    reference: object = None                       # median −log p_t of p_t draws at t0 and after every step
    timesteps: list = field(default_factory=list)  # the level each decoding step lands on

    @property
    def measures(self) -> tuple[str, ...]:
        return MEASURES + tuple(k for k in PAIR_MEASURES + SEAM_MEASURES + ("nll_t0", "nll_t0_last")
                                if k in self.values["ODE"])

    def summary(self) -> dict:
        out = {"settings": self.settings.to_dict(), "n_tasks": len(self.tasks),
               "n_groups": len({t.group for t in self.tasks}),
               "drag_operations": mean_ci(self.ops), "seconds": round(self.seconds, 2),
               "methods": {m: {k: ci(v, k in RATES) for k, v in vals.items()} for m, vals in self.values.items()},
               "paired_ode_minus_sde": {k: diff_ci(self.values["ODE"][k], self.values["SDE"][k])
                                        for k in self.measures + ("in_range", "outcome_moved")}}
        if self.paths:                                 # issue 20: the theorem's quantity along the chains
            out["nll_path"] = path_summary(self.paths, self.reference, self.timesteps)
            ref0 = float(self.reference[0])
            sde, ode = self.values["SDE"], self.values["ODE"]
            out["mismatch"] = {
                "x": "SDE's nll_t0 − median −log p_t0 of p_t0 draws (the mismatch the paste created)",
                "data_median_t0": ref0,
                "nll_advantage": correlation(sde["nll_t0"] - ref0, ode["nll"] - sde["nll"]),
                "position_advantage": correlation(sde["nll_t0"] - ref0,
                                                  ode["position_error_px"] - sde["position_error_px"])}
        if len(self.values) > 2:
            out["hybrids"] = hybrid_summary(self.values, out["methods"])
        return out


def ci(values, rate: bool = False) -> dict:
    """mean, 95% half-width ``ci95`` (normal approximation, as everywhere in toy), ``lo95``/``hi95``; for rates also
    the Wilson interval (which stays informative at 0 and 1)."""
    d = mean_ci(values)
    d["lo95"], d["hi95"] = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    if rate:
        n, p, z = d["n"], d["mean"], 1.96
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        d["wilson95"] = [c - h, c + h]
    return d


def family_tasks(data, s: DragSettings, n_groups: int, seed: int, near: int = 3) -> list[DragTask]:
    """The tasks of a setting: one-object, two-object or variant (textured / shaded) tasks."""
    return _family_tasks(data, s.distance, s.handle, n_groups, seed, near)


def run_setting(shapes, bank: TemplateBank, s: DragSettings, n_groups: int, seed: int, nll_max: float,
                model=None, near: int = 3, methods: tuple = BASE_METHODS, switch: float = 0.5,
                record_nll: bool = False) -> SettingResult:
    """The methods (ODE, SDE, hybrids: :mod:`.hybrids`) on the tasks of setting ``s`` (batched by shared
    handle/target), measured exactly.  ``shapes``: a ShapeSet, PairSet or VariantSet; ``model``: an ε-model
    ``model(x, t)`` on the labels of ``s.schedule`` (default: the exact model of ``shapes``); ``record_nll``:
    −log p_t of every chain under the exact mixture (:mod:`.mismatch`)."""
    t_start = time.time()
    s = s.resolved()
    tasks = family_tasks(shapes, s, n_groups, seed, near)
    masks = torch.stack([editable_box(shapes, t, s.margin) for t in tasks])
    inputs = shapes.images_of([t.source_index for t in tasks])
    schedule = make_schedule(s.schedule)
    grid = schedule.grid(s.steps).tail(s.t0)
    base_model = exact_model(shapes, schedule, torch.float32) if model is None else model
    calls = [0]

    def model(x, t):  # counts the model calls: ``nfe`` per task = the calls made on its batch
        calls[0] += 1
        return base_model(x, t)

    batches: dict = {}
    for i, t in enumerate(tasks):
        batches.setdefault((t.handle, t.target), []).append(i)
    outputs, values, paths = {}, {}, {}
    ops = [num_drag_ops([t.handle], [t.target], s.step_size, s.preset) for t in tasks]
    answers = shapes.images_of([t.answer_index for t in tasks])
    for method in methods:
        out = torch.empty_like(inputs)
        nll0, nll0_last = np.zeros(len(tasks)), np.zeros(len(tasks))
        path = np.zeros((grid.num_steps, len(tasks)))
        nfe = np.zeros(len(tasks))
        for b, ((h, tg), idx) in enumerate(batches.items()):
            x = shapes.as_image(inputs[idx]).unsqueeze(1).to(torch.float32)
            calls[0] = 0
            rec = NllRecorder(shapes.mixture, grid, len(idx)) if record_nll else None
            res = recipes.drag(model, x, grid, [h], [tg], noise=GaussianNoise(seed * 100_003 + b),
                               mask=masks[idx].unsqueeze(1), preset=s.preset, r=s.r, alpha=s.alpha, beta=s.beta,
                               step_size=s.step_size, solver=s.solver, order=s.order, on_step=rec,
                               **method_kwargs(method, grid.num_steps, switch))
            out[idx] = res.x.reshape(len(idx), -1).to(out.dtype)
            nfe[idx] = calls[0]
            if rec is not None:
                nll0[idx], nll0_last[idx], path[:, idx] = rec.nll_t0, rec.nll_t0_last, rec.path
        outputs[method] = out
        values[method] = measure(shapes, bank, tasks, inputs, out, masks.reshape(len(tasks), -1), nll_max)
        values[method]["nfe"] = nfe               # ε-evaluations per edit, counted from the model calls
        values[method].update(seam_measures(tasks, out, answers, masks, s.r, s.step_size, s.preset, shapes.side))
        if record_nll:
            values[method].update({"nll_t0": nll0, "nll_t0_last": nll0_last})
            paths[method] = path
    ref = data_reference(shapes.mixture, grid) if record_nll else None
    levels = [int(grid.timesteps[i + 1]) for i in range(grid.num_steps)]
    return SettingResult(s, tasks, inputs, answers, masks, outputs, values, ops, time.time() - t_start, paths, ref,
                         levels)


def _paired_models(learned: SettingResult, exact: SettingResult) -> dict:
    """Per method, paired learned − exact over the learned run's tasks (a prefix of the exact run's tasks)."""
    n = len(learned.tasks)
    assert learned.tasks == exact.tasks[:n]
    return {m: {k: diff_ci(learned.values[m][k], exact.values[m][k][:n])
                for k in learned.measures + ("in_range", "outcome_moved")} for m in learned.values}


def _family_info(name: str, data, rng: dict, cfg: ShapesDragConfig) -> dict:
    c = data.config
    info = {"data": {**c.to_dict(), "components": len(data), "dim": data.dim, "lattice": c.centres()},
            "nll_data_range": rng}
    if name == "pair":
        info["data"]["near"] = cfg.near
        info["tasks"] = ("one object moves, the other (box gap … near px from the path) must stay; the mask covers "
                         "both")
        info["n_groups"] = cfg.pair_groups
    elif name in VARIANT_FAMILIES:
        info["data"]["variants"] = list(c.variants())
        info["tasks"] = ("one object moves over its background, which stays" if name == "textured" else
                         "one shaded / outlined object moves")
        info["n_groups"] = cfg.variant_groups
    else:
        info["tasks"] = "one object moves"
        info["n_groups"] = cfg.n_groups
    return info


def _groups(cfg: ShapesDragConfig, fam: str) -> int:
    return {"single": cfg.n_groups, "pair": cfg.pair_groups}.get(fam, cfg.variant_groups)


def run_shapes_drag(cfg: ShapesDragConfig, out: Path | None = None, progress=None,
                    cache_dir: str | Path | None = None) -> dict:
    """Defaults + sweeps, for each family and model; writes ``report.json``, ``report.md`` and the figures into
    ``out`` (if given).  ``progress``: optional callable(str) for one line per setting; ``cache_dir``: where the
    learned UNets are cached (default :func:`~toy.shapes.learned.default_cache_dir`)."""
    from ..io import run_meta, write_json
    from .plots import shapes_figures
    from .report import markdown_report

    t_start = time.time()
    base = cfg.defaults.resolved(cfg.base_steps)  # the preset's steps / step size / solver where unset
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    say = progress or (lambda _s: None)
    data = {}
    for fam in cfg.families:
        d = build_family(fam, family_config(fam, cfg))
        rng = nll_data_range(d, cfg.nll_samples, cfg.seed + 1 + FAMILIES.index(fam))
        data[fam] = (d, TemplateBank(d), rng)
    rep: dict = {
        "experiment": "shapes-drag",
        "recipe": f"diffsamplers.recipes.drag(preset={base.preset!r}, solver={base.solver!r}), batched per shared "
                  "handle/target",
        "families": {fam: _family_info(fam, d, rng, cfg) for fam, (d, _, rng) in data.items()},
        "models": {},
        "success_rule": "position error <= 1 px and NLL <= the family's nll_data_range.max (two-object scenes: "
                        "and the other object's shift <= 1 px)",
        "settings": base.to_dict(), "config": cfg.to_dict(), "seed": cfg.seed,
        "results": {}, "methods": {}, "per_task": {},
    }
    models: dict = {}
    for name in cfg.models:
        for fam, (d, _, _) in data.items():
            if name == "exact":
                models[(name, fam)] = None
                rep["models"].setdefault("exact", {})[fam] = {
                    "what": "closed-form ε of the family's mixture", "mean_sq_eps_error": 0.0}
                continue
            fn, meta = get_learned(fam, d, cfg.learned, base.schedule, cache_dir, say)
            schedule = make_schedule(base.schedule)
            t0_label = int(schedule.grid(base.steps).tail(base.t0).timesteps[0])
            meta["mean_sq_eps_error_at_t0"] = {"t": t0_label,
                                               "value": score_error_at(fn, d.mixture, schedule, t0_label,
                                                                       n=min(256, cfg.learned.eval_samples))}
            say(f"learned {fam}: {'loaded' if meta['cached'] else 'trained'} "
                f"({meta.get('steps')} steps), ε error {meta['score_error']['mean_sq_eps_error']:.4f}, "
                f"at t0 {meta['mean_sq_eps_error_at_t0']['value']:.4f}")
            models[(name, fam)] = fn
            rep["models"].setdefault("learned", {})[fam] = meta
    defaults: dict = {}
    for (name, fam), fn in models.items():
        d, bank, rng = data[fam]
        groups = _groups(cfg, fam)
        if name == "learned":
            groups = min(groups, cfg.learned_groups)
        swept = (cfg.learned_sweeps if name == "learned" else cfg.sweeps if fam == "single" else
                 cfg.pair_sweeps if fam == "pair" else cfg.variant_sweeps)

        def run(s: DragSettings, label: str, methods: tuple = BASE_METHODS, data=(d, bank, rng)):
            res = run_setting(data[0], data[1], s, groups, cfg.seed, data[2]["max"], fn, cfg.near, methods,
                              cfg.switch, cfg.record_nll)
            say(f"{name} {fam} {label}: {len(res.tasks)} tasks, {res.seconds:.1f} s")
            return res

        default = defaults[(name, fam)] = run(base, "defaults", cfg.methods)
        summ = default.summary()
        if name == "learned" and ("exact", fam) in defaults:
            summ["paired_learned_minus_exact"] = _paired_models(default, defaults[("exact", fam)])
        block = {"defaults": summ, "sweeps": {}}
        for sw, vals in swept.items():
            rows = []
            for v in sorted(set(vals) | {getattr(base, sw)}, key=lambda u: (isinstance(u, str), u)):
                res = default if v == getattr(base, sw) else run(base.replace(**{sw: v}), f"{sw}={v}")
                rows.append({"value": v, **res.summary()})
            block["sweeps"][sw] = rows
        if fam == "textured" and name == "exact" and cfg.contrast_sweep:   # the data changes: rebuilt per value
            rows = []
            for v in sorted(set(cfg.contrast_sweep) | {cfg.textured.contrast}):
                if v == cfg.textured.contrast:
                    res = default
                else:
                    dv = build_family(fam, dataclasses.replace(cfg.textured, contrast=v))
                    rv = nll_data_range(dv, cfg.nll_samples, cfg.seed + 1 + FAMILIES.index(fam))
                    res = run(base, f"contrast={v}", data=(dv, TemplateBank(dv), rv))
                rows.append({"value": v, "default": v == cfg.textured.contrast, **res.summary()})
            block["sweeps"]["contrast"] = rows
        rep["results"].setdefault(name, {})[fam] = block
        rep["methods"].setdefault(name, {})[fam] = summ["methods"]
        rep["per_task"].setdefault(name, {})[fam] = [
            {**t.to_dict(), **{m: {k: float(v[i]) for k, v in default.values[m].items()} for m in default.values}}
            for i, t in enumerate(default.tasks)]
    rep["meta"] = run_meta(time.time() - t_start)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)

        def write() -> None:
            write_json(out / "report.json", rep)
            tmp = out / "report.md.tmp"
            tmp.write_text(markdown_report(rep))
            tmp.replace(out / "report.md")

        write()                                   # the numbers first: a failing figure cannot lose them
        try:
            rep["figures"] = shapes_figures(rep, defaults, out)
        except Exception as e:                    # keep the report, say what failed, then fail loudly
            rep["figure_error"] = f"{type(e).__name__}: {e}"
            write()
            raise RuntimeError(f"figures failed ({rep['figure_error']}); the report was written to "
                               f"{out / 'report.json'}") from e
        rep["meta"] = run_meta(time.time() - t_start)
        write()
    return rep
