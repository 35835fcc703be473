"""SDE-Drag vs ODE-Drag on the shapes test bed: one setting, the sweeps, the report.

Every edit is ``diffsamplers.recipes.drag`` (``preset="official"``) on a [B, 1, side, side] batch of data-set
images that share handle and target, with the exact ε-model of the mixture, a ``schedule.grid(steps).tail(t0)``
grid and per-task editable boxes.  ODE and SDE see the same tasks, masks and noise seeds (ODE uses the seed only
for the paste noise), so every comparison is paired per task.  Each sweep changes one setting of the defaults and
reruns both methods on the same tasks (the tasks depend on the drag distance and handle only).
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

from ..digits.common import METHODS, diff_ci
from ..digits.metrics import mean_ci
from .data import ShapeConfig, ShapeSet, build_shapes
from .measures import OUTCOMES, TemplateBank, measure, nll_data_range
from .tasks import HANDLES, SCHEDULES, DragTask, editable_box, exact_model, make_schedule, make_tasks

__all__ = ["DragSettings", "ShapesDragConfig", "SettingResult", "run_setting", "run_shapes_drag", "ci",
           "MEASURES", "RATES"]

MEASURES: tuple[str, ...] = ("position_error_px", "drag_fraction", "nll", "outside_mask_change", "l2_to_answer",
                             "success_rate")
RATES: tuple[str, ...] = ("success_rate", "in_range") + tuple(f"outcome_{o}" for o in OUTCOMES)


@dataclass
class DragSettings:
    """One drag setting.  Official SDE-Drag values where they carry over (t0, α, β, preset); r and step_size are
    scaled to the objects (docs/shapes.md: the (2r)² window covers the largest object, half-size 5 → r = 6;
    step 2 px per operation); ``steps`` 100 instead of 200 for CPU time (the steps sweep checks it)."""

    t0: float = 0.6
    alpha: float = 1.1
    beta: float = 0.3
    steps: int = 100
    r: int = 6
    step_size: float = 2.0
    margin: int = 3           # editable box = object at source and target + margin px (>= side: whole image)
    distance: int = 4         # px per axis; displacement = distance × a compass direction (4 or 4√2 px)
    handle: str = "centre"
    schedule: str = "sd"
    preset: str = "official"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.t0) <= 1.0:
            raise ValueError(f"t0 must be in (0, 1], got {self.t0}")
        if int(self.steps) < 2 or int(self.steps * self.t0) < 1:
            raise ValueError(f"steps must be >= 2 with int(t0 * steps) >= 1, got steps={self.steps}, t0={self.t0}")
        if int(self.r) < 1 or not float(self.step_size) > 0 or int(self.margin) < 0:
            raise ValueError("need r >= 1, step_size > 0 and margin >= 0")
        if not 0.0 <= float(self.beta) <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.handle not in HANDLES:
            raise ValueError(f"handle must be one of {HANDLES}, got {self.handle!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")

    def replace(self, **kw) -> "DragSettings":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


def _sweeps_full() -> dict:
    return {"t0": [0.2, 0.3, 0.4, 0.5, 0.7, 0.8], "alpha": [1.0, 1.2, 1.5], "beta": [0.0, 0.6, 1.0],
            "steps": [50, 200], "distance": [2, 6, 8], "margin": [1, 6, 32], "step_size": [1.0, 4.0, 8.0],
            "r": [2, 4, 8], "handle": ["edge"], "schedule": ["ddpm-linear"]}


@dataclass
class ShapesDragConfig:
    """The whole experiment: data, default setting, number of task groups, sweeps (each value reruns both methods;
    the default value of each swept setting is the default run)."""

    shapes: ShapeConfig = field(default_factory=ShapeConfig)
    defaults: DragSettings = field(default_factory=DragSettings)
    n_groups: int = 32            # task groups; tasks = n_groups × kinds × sizes
    seed: int = 0
    nll_samples: int = 4096       # p_0 draws that define the data's NLL range
    examples: int = 6             # rows of the example / failure grids
    sweeps: dict = field(default_factory=_sweeps_full)

    def __post_init__(self) -> None:
        # rebuilt from plain values, so fields merged in from a JSON config are validated too
        self.shapes = ShapeConfig(**(self.shapes if isinstance(self.shapes, dict) else asdict(self.shapes)))
        self.defaults = DragSettings(**(self.defaults if isinstance(self.defaults, dict) else asdict(self.defaults)))
        known = {f.name for f in dataclasses.fields(DragSettings)}
        bad = sorted(set(self.sweeps) - known)
        if bad:
            raise ValueError(f"unknown sweep setting(s) {bad}; sweepable: {sorted(known)}")
        if self.n_groups < 2:
            raise ValueError(f"n_groups must be >= 2 (intervals need several tasks), got {self.n_groups}")

    @classmethod
    def quick(cls) -> "ShapesDragConfig":
        return cls(n_groups=6, nll_samples=2048, examples=4,
                   sweeps={"t0": [0.4, 0.8], "beta": [1.0], "distance": [8], "margin": [32], "step_size": [8.0],
                           "r": [3]})

    @classmethod
    def fast(cls) -> "ShapesDragConfig":
        """Seconds-scale settings for the notebook in fast mode (SDEODE_FAST=1) and smoke tests."""
        return cls(defaults=DragSettings(steps=50), n_groups=3, nll_samples=1024, examples=3,
                   sweeps={"t0": [0.4], "r": [3]})

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

    def summary(self) -> dict:
        return {"settings": self.settings.to_dict(), "n_tasks": len(self.tasks),
                "n_groups": len({t.group for t in self.tasks}),
                "drag_operations": mean_ci(self.ops), "seconds": round(self.seconds, 2),
                "methods": {m: {k: ci(v, k in RATES) for k, v in vals.items()} for m, vals in self.values.items()},
                "paired_ode_minus_sde": {k: diff_ci(self.values["ODE"][k], self.values["SDE"][k])
                                         for k in MEASURES + ("in_range", "outcome_moved")}}


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


def run_setting(shapes: ShapeSet, bank: TemplateBank, s: DragSettings, n_groups: int, seed: int,
                nll_max: float) -> SettingResult:
    """Both methods on the tasks of setting ``s`` (batched by shared handle/target), measured exactly."""
    t_start = time.time()
    tasks = make_tasks(shapes, n_groups, s.distance, seed, s.handle)
    masks = torch.stack([editable_box(shapes, t, s.margin) for t in tasks])
    inputs = shapes.images[[t.source_index for t in tasks]]
    schedule = make_schedule(s.schedule)
    grid = schedule.grid(s.steps).tail(s.t0)
    model = exact_model(shapes, schedule, torch.float32)
    batches: dict = {}
    for i, t in enumerate(tasks):
        batches.setdefault((t.handle, t.target), []).append(i)
    outputs, values = {}, {}
    ops = [num_drag_ops([t.handle], [t.target], s.step_size, s.preset) for t in tasks]
    for method, sampler in METHODS:
        out = torch.empty_like(inputs)
        for b, ((h, tg), idx) in enumerate(batches.items()):
            x = shapes.as_image(inputs[idx]).unsqueeze(1).to(torch.float32)
            res = recipes.drag(model, x, grid, [h], [tg], sampler=sampler, noise=GaussianNoise(seed * 100_003 + b),
                               mask=masks[idx].unsqueeze(1), preset=s.preset, r=s.r, alpha=s.alpha, beta=s.beta,
                               step_size=s.step_size)
            out[idx] = res.x.reshape(len(idx), -1).to(out.dtype)
        outputs[method] = out
        values[method] = measure(shapes, bank, tasks, inputs, out, masks.reshape(len(tasks), -1), nll_max)
    answers = shapes.images[[t.answer_index for t in tasks]]
    return SettingResult(s, tasks, inputs, answers, masks, outputs, values, ops, time.time() - t_start)


def run_shapes_drag(cfg: ShapesDragConfig, out: Path | None = None, progress=None) -> dict:
    """Defaults + every sweep; writes ``report.json``, ``report.md`` and the figures into ``out`` (if given).
    ``progress``: optional callable(str) for one line per setting."""
    from ..io import run_meta, write_json
    from .plots import shapes_figures
    from .report import markdown_report

    t_start = time.time()
    shapes = build_shapes(cfg.shapes)
    bank = TemplateBank(shapes)
    rng = nll_data_range(shapes, cfg.nll_samples, cfg.seed + 1)
    default = run_setting(shapes, bank, cfg.defaults, cfg.n_groups, cfg.seed, rng["max"])
    if progress:
        progress(f"defaults: {default.seconds:.1f} s")
    rep: dict = {
        "experiment": "shapes-drag", "model": "exact",
        "recipe": f"diffsamplers.recipes.drag(preset={cfg.defaults.preset!r}), batched per shared handle/target",
        "data": {**cfg.shapes.to_dict(), "components": len(shapes), "dim": shapes.dim,
                 "lattice": cfg.shapes.centres()},
        "nll_data_range": rng, "success_rule": "position error <= 1 px and NLL <= nll_data_range.max",
        "settings": cfg.defaults.to_dict(), "config": cfg.to_dict(), "seed": cfg.seed,
        "defaults": default.summary(),
        "methods": None,   # filled below: the defaults' per-method measures, for direct access
        "per_task": [{**t.to_dict(), **{m: {k: float(v[i]) for k, v in default.values[m].items()}
                                       for m in default.values}} for i, t in enumerate(default.tasks)],
        "sweeps": {},
    }
    rep["methods"] = rep["defaults"]["methods"]
    for name, vals in cfg.sweeps.items():
        rows = []
        for v in sorted(set(vals) | {getattr(cfg.defaults, name)}, key=lambda u: (isinstance(u, str), u)):
            if v == getattr(cfg.defaults, name):
                res = default
            else:
                res = run_setting(shapes, bank, cfg.defaults.replace(**{name: v}), cfg.n_groups, cfg.seed, rng["max"])
                if progress:
                    progress(f"{name}={v}: {res.seconds:.1f} s")
            rows.append({"value": v, **res.summary()})
        rep["sweeps"][name] = rows
    rep["meta"] = run_meta(time.time() - t_start)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        rep["figures"] = shapes_figures(rep, default, shapes.side, out)
        rep["meta"] = run_meta(time.time() - t_start)
        write_json(out / "report.json", rep)
        tmp = out / "report.md.tmp"
        tmp.write_text(markdown_report(rep))
        tmp.replace(out / "report.md")
    return rep
