"""Drag test bed where the right answer is known (issue 13).

Rendered discs and squares on a lattice of a 32×32 image (:mod:`.data`) → an exact isotropic Gaussian mixture with
one component per image (the digits' :class:`~toy.digits.mixture.DigitMixture`, so ε is closed-form at every noise
level) → drag tasks that move one object by a lattice displacement, whose right answer is itself a data-set image
(:mod:`.tasks`) → ``diffsamplers.recipes.drag`` with ``sampler="sde"`` or ``"ode"`` → exact measures: position error
from the known rendering, NLL under p_0, change outside the mask, distance to the right answer, success
(:mod:`.measures`); defaults, sweeps and the report in :mod:`.experiment`, figures in :mod:`.plots`.
CLI: ``python -m toy shapes drag [--quick] --out DIR`` (or ``python -m toy.shapes drag ...``).
"""
from .data import KINDS, ShapeConfig, ShapeSet, build_shapes, render
from .experiment import DragSettings, ShapesDragConfig, run_setting, run_shapes_drag
from .measures import TemplateBank, measure, nll_data_range
from .tasks import DragTask, editable_box, exact_model, make_schedule, make_tasks

__all__ = ["KINDS", "ShapeConfig", "ShapeSet", "build_shapes", "render", "DragSettings", "ShapesDragConfig",
           "run_setting", "run_shapes_drag", "TemplateBank", "measure", "nll_data_range", "DragTask", "editable_box",
           "exact_model", "make_schedule", "make_tasks"]
