"""One sampler library shared by ``toy`` and ``sdimage``: pure functions over an ε-model, a grid and a noise source.

η = 0 is the probability-flow ODE (DDIM), η = 1 the reverse SDE (DDPM); Cycle-SDE records and replays noises.
Rectified flows (SD3, FLUX) are the path α = 1 − σ (``Grid.from_flow_sigmas``): a velocity model returns
``flow_prediction(x, v, σ)``, the flow Euler step is η = 0 and η = 1 the path's Markov-posterior SDE.
Every editing method (inpaint, SDEdit, DiffEdit, reconstruction, SDE-/ODE-Drag) is composed once, in
:mod:`diffsamplers.recipes`, with the ``"official"`` / ``"clean"`` presets of :mod:`diffsamplers.presets`.
Works on torch tensors of any shape, float32 or float64, CPU or CUDA.
"""
from .continuous import euler_maruyama, probability_flow_euler, probability_flow_heun
from .cycle import SOLVERS, VARIANTS, CycleTrace, check_solver, cycle_encode, cycle_record, cycle_replay, forward_chain, step_parts
from . import presets, recipes
from .edits import PRESETS, check_preset, copy_paste, drag_path, num_drag_ops, num_drag_steps, patch_bounds
from .grid import Grid
from .noise import GaussianNoise, NoiseSource, RecordingNoise, ReplayNoise
from .presets import cosine_ramp, linear_ramp, official_grids, official_num_steps
from .recipes import SAMPLERS, EditResult, check_sampler
from .sampling import EpsModel, PostStep, invert_ddim, invert_dpmpp, sample_ddim, sample_dpmpp
from .steps import (
    ModelOutput,
    Prediction,
    as_eps,
    ddim_noise_for_target,
    ddim_sigma,
    ddim_step,
    dpmpp_noise_for_target,
    dpmpp_step,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    flow_prediction,
    forward_step,
    posterior_step,
    predict_x0,
    split_prediction,
)

__all__ = [
    "Grid", "GaussianNoise", "ReplayNoise", "RecordingNoise", "NoiseSource", "EpsModel", "PostStep",
    "sample_ddim", "sample_dpmpp", "invert_ddim", "invert_dpmpp", "SOLVERS", "check_solver", "step_parts",
    "dpmpp_noise_for_target", "forward_chain", "cycle_record", "cycle_replay", "cycle_encode",
    "CycleTrace", "VARIANTS", "euler_maruyama", "probability_flow_euler", "probability_flow_heun",
    "ddim_step", "ddim_sigma", "ddim_noise_for_target", "dpmpp_step", "forward_step", "posterior_step",
    "predict_x0", "eps_from_v", "eps_from_x0", "eps_from_score", "copy_paste", "patch_bounds", "num_drag_steps",
    "num_drag_ops", "drag_path", "PRESETS", "check_preset", "linear_ramp", "cosine_ramp", "official_grids", "official_num_steps",
    "recipes", "presets", "SAMPLERS", "EditResult", "check_sampler", "Prediction", "ModelOutput", "as_eps",
    "flow_prediction", "split_prediction",
]
