"""Samplers over a model callable ``model(x, t) -> ε`` on a :class:`Grid`: DDIM with η, DPM-Solver++ (ODE/SDE),
DDIM inversion.  Pure functions in the style of k-diffusion's ``sampling.py``: no global state, every random draw
from the injected noise source.  ``post_step(i, x) -> x`` runs after step i (inpainting blends, mask resets).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .grid import Grid
from .noise import NoiseSource
from .progress import ProgressArg, progress_steps
from .steps import (ModelOutput, _dpmpp_parts, as_eps, ddim_step, dpmpp_lambda, predict_x0, split_prediction,
                    step_parts)

__all__ = ["EpsModel", "PostStep", "sample_ddim", "sample_dpmpp", "invert_ddim", "invert_dpmpp"]

EpsModel = Callable[..., ModelOutput]  # model(x, t) -> ε, or a Prediction(ε, x̂_0) (flows at α = 0)
PostStep = Callable[[int, Tensor], Tensor]


def _steps(n: int, progress: ProgressArg, desc: str):
    """The step loop: ``progress`` True gives the loop a display of its own named ``desc`` (one tqdm bar on a
    terminal, one closing line elsewhere); a shared :class:`~diffsamplers.progress.Progress` is only advanced."""
    return progress_steps(n, progress, desc)


@torch.no_grad()
def sample_ddim(
    model: EpsModel,
    x: Tensor,
    grid: Grid,
    eta: float = 0.0,
    noise: NoiseSource | None = None,
    post_step: PostStep | None = None,
    progress: ProgressArg = False,
) -> Tensor:
    """Integrate from grid point 0 to N with the η-DDIM update (paper Eq. 6): η = 0 ODE, η = 1 SDE (DDPM)."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0 and noise is None:
        raise ValueError("eta > 0 needs a noise source (GaussianNoise(generator) or ReplayNoise(noises))")
    for i in _steps(grid.num_steps, progress, f"DDIM eta={eta:g}"):
        a_t, s_t, a_s, s_s = grid.step(i)
        eps = model(x, grid.timesteps[i])
        w = noise(i, x) if eta > 0 and float(s_s) > 0 else None
        x = ddim_step(x, eps, a_t, s_t, a_s, s_s, eta, w)
        if post_step is not None:
            x = post_step(i, x)
    return x


@torch.no_grad()
def sample_dpmpp(
    model: EpsModel,
    x: Tensor,
    grid: Grid,
    order: int = 2,
    sde: bool = False,
    noise: NoiseSource | None = None,
    post_step: PostStep | None = None,
    progress: ProgressArg = False,
) -> Tensor:
    """DPM-Solver++ multistep (order 1 = DDIM) and SDE-DPM-Solver++ (order 1 = DDPM); first and final steps use order 1
    (the step rule of :func:`~diffsamplers.steps.step_parts`, the one Cycle-SDE records and replays)."""
    if order not in (1, 2):
        raise ValueError(f"DPM-Solver++ order must be 1 or 2, got {order}")
    if sde and noise is None:
        raise ValueError("SDE-DPM-Solver++ needs a noise source")
    n = grid.num_steps
    parts = step_parts(grid, "dpmpp", order, [1.0 if sde else 0.0] * n)
    for i in _steps(n, progress, "SDE-DPM-Solver++" if sde else "DPM-Solver++"):
        x, c = parts(i, x, model(x, grid.timesteps[i]))
        if c > 0.0:
            x = x + c * noise(i, x)  # type: ignore[misc]
        if post_step is not None:
            x = post_step(i, x)
    return x


@torch.no_grad()
def invert_ddim(
    model: EpsModel,
    x0: Tensor,
    grid: Grid,
    fixed_point_iters: int = 0,
    progress: ProgressArg = False,
) -> list[Tensor]:
    """DDIM inversion: the η = 0 update (Eq. 6) run backwards, from the clean point N to point 0.

    Step i of the grid (point i → the level it lands on) is inverted from the cleaner level to point i.  As in
    Null-text inversion and diffusers' ``DDIMInverseScheduler``, ε is evaluated on the current (cleaner) latent
    with the label of the noisier point; this is O(1/N) off the exact inverse.  For ε-prediction models this is
    diffusers' update exactly; a v-prediction model wrapped to return ε (``eps_from_v`` at the label's level)
    converts v at the noisier level, where diffusers converts at the cleaner one, which round-trips better.
    ``fixed_point_iters > 0`` then refines each step by the fixed point
    x_t = (α_t/α_s) x_s + (σ_t − α_t σ_s/α_s) ε(x_t, t) (exact inversion of the DDIM step; one model call each).

    Returns the trajectory indexed like the grid: ``traj[N] = x0``, ``traj[0]`` the inverted latent at t0.
    """
    n = grid.num_steps
    traj: list[Tensor] = [x0] * (n + 1)
    x = x0
    for k in _steps(n, progress, "DDIM inversion"):
        i = n - 1 - k  # invert step i: from the level it lands on back to point i
        a_t, s_t, a_s, s_s = grid.step(i)
        x_s = x
        eps = as_eps(model(x_s, grid.timesteps[i]))
        x = ddim_step(x_s, eps, a_s, s_s, a_t, s_t, 0.0)
        if fixed_point_iters > 0:
            at, st, as_, ss = (float(v) for v in (a_t, s_t, a_s, s_s))
            for _ in range(fixed_point_iters):
                x = (at / as_) * x_s + (st - at * ss / as_) * as_eps(model(x, grid.timesteps[i]))
        traj[i] = x
    return traj


@torch.no_grad()
def invert_dpmpp(
    model: EpsModel,
    x0: Tensor,
    grid: Grid,
    order: int = 2,
    progress: ProgressArg = False,
) -> list[Tensor]:
    """DPM-Solver++ inversion: the update of :func:`~diffsamplers.steps.dpmpp_step` run towards more noise (h < 0),
    as diffusers' ``DPMSolverMultistepInverseScheduler``, from the clean point N to point 0; order 2 uses the x̂_0 of
    the previous (cleaner) step.

    Inverting step i starts at point i + 1 and calls the model there with that point's own label (the call the
    sampler makes at step i + 1), so x̂_0 is consistent and the 2M correction is second order.  The clean end has no
    label: its step (the mirror of the sampler's last, first-order step) is the DDIM inversion step of
    :func:`invert_ddim` (ε at the clean state with the label of point N − 1).  Returns the trajectory indexed like
    the grid: ``traj[N] = x0``, ``traj[0]`` the inverted state at t0."""
    if order not in (1, 2):
        raise ValueError(f"DPM-Solver++ order must be 1 or 2, got {order}")
    n = grid.num_steps
    traj: list[Tensor] = [x0] * (n + 1)
    x = x0
    x0_prev: Tensor | None = None
    lam_prev: float | None = None
    for k in _steps(n, progress, "DPM-Solver++ inversion"):
        i = n - 1 - k
        a_t, s_t, a_s, s_s = grid.step(i)
        if k == 0:
            eps = as_eps(model(x, grid.timesteps[i]))
            x0_hat = predict_x0(x, eps, a_s, s_s)
            x = ddim_step(x, eps, a_s, s_s, a_t, s_t, 0.0)
        else:
            _, x0_hat = split_prediction(model(x, grid.timesteps[i + 1]), x, a_s, s_s)
            use2 = order == 2 and x0_prev is not None and lam_prev is not None and math.isfinite(lam_prev)
            x, _ = _dpmpp_parts(x, x0_hat, a_s, s_s, a_t, s_t, x0_prev if use2 else None,
                                lam_prev if use2 else None, False)
        x0_prev, lam_prev = x0_hat, dpmpp_lambda(a_s, s_s)
        traj[i] = x
    return traj
