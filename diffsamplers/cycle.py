"""Cycle-SDE (Nie et al. 2024, Sec. 4 / Eqs. 7–8): record the noises that make the η-DDIM backward pass reproduce a
forward chain, then replay them on an edited state.  With no edit, replay reconstructs the input exactly.

Three encoders (``variant``) build the forward chain x_N = x_0 (clean) → x_0 (noisiest grid point):

- ``"markov"``: the Markov forward chain of the SDE-Drag paper, x_t = (α_t/α_s) x_s + √(σ_t² − (α_t/α_s)²σ_s²) z.
- ``"posterior"``: CycleDiffusion (Wu & De la Torre 2023): x_{t0} ~ q(x_{t0} | x_0), then x_s ~ q(x_s | x_t, x_0).
- ``"independent"``: edit-friendly DDPM inversion (Huberman-Spiegelglas et al. 2024): every x_t ~ q(x_t | x_0) independently.

The first two have the same joint law; the third has the right marginals but a different joint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .grid import Grid
from .noise import NoiseSource
from .sampling import EpsModel, PostStep
from .steps import ddim_noise_for_target, ddim_sigma, ddim_step, forward_step, posterior_step

__all__ = ["Variant", "VARIANTS", "CycleTrace", "forward_chain", "cycle_record", "cycle_replay", "cycle_encode"]

Variant = Literal["markov", "posterior", "independent"]
VARIANTS: tuple[str, ...] = ("markov", "posterior", "independent")


@dataclass
class CycleTrace:
    """A recorded forward chain (``chain[i]`` at grid point i, ``chain[N]`` the clean input) and its replay noises.

    ``noises[i]`` drives step i → i+1.  On a step with σ_{t→s} = 0 (e.g. the last step onto σ = 0) the entry is the
    additive residual instead, so replay stays exact.
    """

    chain: list[Tensor]
    noises: list[Tensor]
    eta: float
    variant: str


def forward_chain(x0: Tensor, grid: Grid, noise: NoiseSource, variant: Variant = "markov") -> list[Tensor]:
    """Forward chain on the grid from the clean ``x0`` (grid point N) to grid point 0, by the chosen encoder.

    The Markov kernel that step i reverses goes from the level step i lands on to point i, so on an
    inconsistent grid (:class:`Grid` ``to_alphas``) each kernel uses its own pair of levels.
    """
    n = grid.num_steps
    chain: list[Tensor] = [x0] * (n + 1)
    if variant == "markov":
        for k, i in enumerate(range(n - 1, -1, -1)):
            a_t, s_t, a_s, s_s = grid.step(i)
            chain[i] = forward_step(chain[i + 1], a_s, s_s, a_t, s_t, noise(k, x0))
    elif variant == "independent":
        for k, j in enumerate(range(n - 1, -1, -1)):
            chain[j] = float(grid.alphas[j]) * x0 + float(grid.sigmas[j]) * noise(k, x0)
    elif variant == "posterior":
        chain[0] = float(grid.alphas[0]) * x0 + float(grid.sigmas[0]) * noise(0, x0)
        for i in range(n - 1):
            a_t, s_t, a_s, s_s = grid.step(i)
            chain[i + 1] = posterior_step(chain[i], x0, a_t, s_t, a_s, s_s, noise(i + 1, x0))
    else:
        raise ValueError(f"unknown Cycle-SDE variant {variant!r}; choose one of {VARIANTS}")
    return chain


@torch.no_grad()
def cycle_record(model: EpsModel, chain: list[Tensor], grid: Grid, eta: float = 1.0, progress: bool = False) -> list[Tensor]:
    """Noises w_i solving Eq. 6 so that the step from the recorded x_{t_i} (ε evaluated there) lands on x_{t_{i+1}} (Eq. 8)."""
    if eta <= 0:
        raise ValueError("Cycle-SDE needs eta > 0")
    if len(chain) != len(grid):
        raise ValueError(f"chain has {len(chain)} states, grid {len(grid)} points")
    noises: list[Tensor] = []
    it = tqdm(range(grid.num_steps), desc="Cycle-SDE record", leave=False) if progress else range(grid.num_steps)
    for i in it:
        a_t, s_t, a_s, s_s = grid.step(i)
        eps = model(chain[i], grid.timesteps[i])
        if ddim_sigma(a_t, s_t, a_s, s_s, eta) > 0:
            noises.append(ddim_noise_for_target(chain[i], eps, chain[i + 1], a_t, s_t, a_s, s_s, eta))
        else:
            noises.append(chain[i + 1] - ddim_step(chain[i], eps, a_t, s_t, a_s, s_s, 0.0))
    return noises


@torch.no_grad()
def cycle_replay(
    model: EpsModel,
    x: Tensor,
    grid: Grid,
    noises: list[Tensor],
    eta: float = 1.0,
    post_step: PostStep | None = None,
    progress: bool = False,
) -> Tensor:
    """Denoise ``x`` (the possibly edited state at grid point 0) with the η-DDIM update replaying recorded noises."""
    if len(noises) != grid.num_steps:
        raise ValueError(f"{len(noises)} recorded noises for a {grid.num_steps}-step grid")
    it = tqdm(range(grid.num_steps), desc="Cycle-SDE replay", leave=False) if progress else range(grid.num_steps)
    for i in it:
        a_t, s_t, a_s, s_s = grid.step(i)
        eps = model(x, grid.timesteps[i])
        w = noises[i].to(device=x.device, dtype=x.dtype)
        if ddim_sigma(a_t, s_t, a_s, s_s, eta) > 0:
            x = ddim_step(x, eps, a_t, s_t, a_s, s_s, eta, w)
        else:
            x = ddim_step(x, eps, a_t, s_t, a_s, s_s, 0.0) + w
        if post_step is not None:
            x = post_step(i, x)
    return x


def cycle_encode(
    model: EpsModel,
    x0: Tensor,
    grid: Grid,
    noise: NoiseSource,
    variant: Variant = "markov",
    eta: float = 1.0,
    progress: bool = False,
    forward_grid: Grid | None = None,
) -> CycleTrace:
    """Forward chain (on ``forward_grid``, default ``grid``) + the noises that replay it on ``grid`` (N model calls).

    The two grids differ only to reproduce the official SDE-Drag code (:func:`diffsamplers.presets.official_grids`);
    replay reconstructs the chain exactly whatever levels the chain was drawn with.
    """
    fg = grid if forward_grid is None else forward_grid
    if fg.num_steps != grid.num_steps:
        raise ValueError(f"forward grid has {fg.num_steps} steps, grid {grid.num_steps}")
    chain = forward_chain(x0, fg, noise, variant)
    return CycleTrace(chain, cycle_record(model, chain, grid, eta, progress), eta, variant)
