"""Drag test bed where the right answer is known (issue 13).

Rendered discs and squares on a lattice of a 32×32 image (:mod:`.data`), and two-object scenes (a disc and a square,
:mod:`.pairs`) → exact isotropic Gaussian mixtures with one component per image (ε closed-form at every noise level)
→ drag tasks that move one object by a lattice displacement (in a two-object scene the other must stay), whose right
answer is itself a data-set image (:mod:`.tasks`) → ``diffsamplers.recipes.drag`` with ``sampler="sde"`` or
``"ode"``, with the exact ε or a small learned UNet per family (:mod:`.learned`, trained on CPU and cached) → exact
measures: position error from the known rendering, NLL under p_0, change outside the mask, distance to the right
answer, the other object's shift, success (:mod:`.measures`); defaults, sweeps and the report in :mod:`.experiment`,
figures in :mod:`.plots`.
CLI: ``python -m toy shapes drag [--quick] --out DIR [--cache DIR]`` (or ``python -m toy.shapes drag ...``).
"""
from .data import KINDS, ShapeConfig, ShapeSet, build_shapes, render
from .experiment import DragSettings, ShapesDragConfig, run_setting, run_shapes_drag
from .learned import LearnedConfig, default_cache_dir, get_learned
from .measures import TemplateBank, measure, nll_data_range
from .pairs import PairConfig, PairMixture, PairSet, build_pairs
from .tasks import DragTask, PairTask, editable_box, exact_model, make_pair_tasks, make_schedule, make_tasks

__all__ = ["KINDS", "ShapeConfig", "ShapeSet", "build_shapes", "render", "DragSettings", "ShapesDragConfig",
           "run_setting", "run_shapes_drag", "LearnedConfig", "default_cache_dir", "get_learned", "TemplateBank",
           "measure", "nll_data_range", "PairConfig", "PairMixture", "PairSet", "build_pairs", "DragTask", "PairTask",
           "editable_box", "exact_model", "make_pair_tasks", "make_schedule", "make_tasks"]
