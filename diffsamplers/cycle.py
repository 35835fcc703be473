"""Cycle-SDE (Nie et al. 2024, Sec. 4 / Eqs. 7–8): record the noises that make the η-DDIM backward pass reproduce a
forward chain, then replay them on an edited state.  With no edit, replay reconstructs the input exactly.

Three encoders (``variant``) build the forward chain x_N = x_0 (clean) → x_0 (noisiest grid point):

- ``"markov"``: the Markov forward chain of the SDE-Drag paper, x_t = (α_t/α_s) x_s + √(σ_t² − (α_t/α_s)²σ_s²) z.
- ``"posterior"``: CycleDiffusion (Wu & De la Torre 2023): x_{t0} ~ q(x_{t0} | x_0), then x_s ~ q(x_s | x_t, x_0).
- ``"independent"``: edit-friendly DDPM inversion (Huberman-Spiegelglas et al. 2024): every x_t ~ q(x_t | x_0) independently.

The first two have the same joint law; the third has the right marginals but a different joint.

The record/replay works for any stochastic step of the form x_s = m(x_t, model, history) + c_{t→s} w
(``solver``): η-DDIM (paper Eq. 6) and SDE-DPM-Solver++ of order 1 or 2 (the 2M history is the x̂_0 of the chain
being run: the recorded chain when recording, the replayed one when replaying, so an unedited replay is exact).
A per-step η (``eta`` a sequence, DDIM only) with zeros gives ODE/SDE hybrids: an η = 0 step is encoded by DDIM
inversion and decoded by the plain DDIM step (η ≡ 0 is DDIM inversion + DDIM, η ≡ 1 Cycle-SDE).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from .grid import Grid
from .noise import NoiseSource
from .progress import ProgressArg, progress_steps
from .sampling import EpsModel, PostStep
from .steps import SOLVERS, as_eps, check_solver, ddim_step, forward_step, posterior_step, step_parts

__all__ = ["Variant", "VARIANTS", "SOLVERS", "CycleTrace", "forward_chain", "cycle_record", "cycle_replay",
           "cycle_encode", "step_parts", "check_solver"]

Variant = Literal["markov", "posterior", "independent"]
VARIANTS: tuple[str, ...] = ("markov", "posterior", "independent")


def _etas(eta, n: int, solver: str) -> list[float]:
    """η per step: a number (> 0) for every step, or a sequence of n values >= 0 (DDIM only)."""
    if isinstance(eta, (int, float)):
        if not float(eta) > 0:
            raise ValueError("Cycle-SDE needs eta > 0 (a per-step sequence may hold zeros: ODE steps)")
        return [float(eta)] * n
    vals = [float(v) for v in eta]
    if len(vals) != n:
        raise ValueError(f"{len(vals)} eta values for a {n}-step grid")
    if any(not v >= 0 for v in vals):
        raise ValueError("per-step eta values must be >= 0")
    if solver != "ddim" and any(v != 1.0 for v in vals):
        raise ValueError("a per-step eta schedule needs the ddim solver (SDE-DPM-Solver++ is the eta = 1 process)")
    return vals


@dataclass
class CycleTrace:
    """A recorded forward chain (``chain[i]`` at grid point i, ``chain[N]`` the clean input) and its replay noises.

    ``noises[i]`` drives step i → i+1.  On a step with c_{t→s} = 0 (e.g. the last step onto σ = 0) the entry is the
    additive residual instead, so replay stays exact; on an ODE step of a hybrid (η_i = 0) it is None.
    """

    chain: list[Tensor]
    noises: list[Tensor | None]
    eta: float | list[float]
    variant: str
    solver: str = "ddim"
    order: int = 1


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
def cycle_record(model: EpsModel, chain: list[Tensor], grid: Grid, eta: "float | Sequence[float]" = 1.0,
                 progress: ProgressArg = False, solver: str = "ddim", order: int = 1) -> list[Tensor | None]:
    """Noises w_i = (x_{t_{i+1}} − m_i)/c_i so that the step from the recorded x_{t_i} (model evaluated there, with the
    recorded chain's history) lands on x_{t_{i+1}} (paper Eq. 8; any step x_s = m + c w, :func:`step_parts`)."""
    if len(chain) != len(grid):
        raise ValueError(f"chain has {len(chain)} states, grid {len(grid)} points")
    etas = _etas(eta, grid.num_steps, solver)
    parts = step_parts(grid, solver, order, etas)
    noises: list[Tensor | None] = []
    for i in progress_steps(grid.num_steps, progress, "Cycle-SDE record"):
        if etas[i] == 0.0:
            noises.append(None)  # an ODE step of a hybrid: decoded by the plain step, nothing recorded
            continue
        mean, c = parts(i, chain[i], model(chain[i], grid.timesteps[i]))
        noises.append((chain[i + 1] - mean) / c if c > 0 else chain[i + 1] - mean)
    return noises


@torch.no_grad()
def cycle_replay(
    model: EpsModel,
    x: Tensor,
    grid: Grid,
    noises: list[Tensor | None],
    eta: "float | Sequence[float]" = 1.0,
    post_step: PostStep | None = None,
    progress: ProgressArg = False,
    solver: str = "ddim",
    order: int = 1,
) -> Tensor:
    """Denoise ``x`` (the possibly edited state at grid point 0) with the solver's step x_s = m + c w replaying the
    recorded noises (η-DDIM: paper Eq. 6; SDE-DPM-Solver++ with this chain's own history); a None entry is a
    deterministic (η = 0) step."""
    if len(noises) != grid.num_steps:
        raise ValueError(f"{len(noises)} recorded noises for a {grid.num_steps}-step grid")
    parts = step_parts(grid, solver, order, _etas(eta, grid.num_steps, solver))
    for i in progress_steps(grid.num_steps, progress, "Cycle-SDE replay"):
        mean, c = parts(i, x, model(x, grid.timesteps[i]))
        w = noises[i]
        if w is not None:
            w = w.to(device=x.device, dtype=x.dtype)
            x = mean + c * w if c > 0 else mean + w
        else:
            x = mean
        if post_step is not None:
            x = post_step(i, x)
    return x


def _hybrid_chain(model: EpsModel, x0: Tensor, grid: Grid, noise: NoiseSource, etas: list[float]) -> list[Tensor]:
    """Markov forward chain where η_i > 0 and DDIM inversion (ε at the cleaner state, label of point i, as
    :func:`~diffsamplers.sampling.invert_ddim`) where η_i = 0; one model call per inverted step."""
    n = grid.num_steps
    chain: list[Tensor] = [x0] * (n + 1)
    draws = 0
    for i in range(n - 1, -1, -1):
        a_t, s_t, a_s, s_s = grid.step(i)
        if etas[i] > 0:
            chain[i] = forward_step(chain[i + 1], a_s, s_s, a_t, s_t, noise(draws, x0))
            draws += 1
        else:
            eps = as_eps(model(chain[i + 1], grid.timesteps[i]))
            chain[i] = ddim_step(chain[i + 1], eps, a_s, s_s, a_t, s_t, 0.0)
    return chain


@torch.no_grad()
def cycle_encode(
    model: EpsModel,
    x0: Tensor,
    grid: Grid,
    noise: NoiseSource,
    variant: Variant = "markov",
    eta: "float | Sequence[float]" = 1.0,
    progress: ProgressArg = False,
    forward_grid: Grid | None = None,
    solver: str = "ddim",
    order: int = 1,
) -> CycleTrace:
    """Forward chain (on ``forward_grid``, default ``grid``) + the noises that replay it on ``grid`` with ``solver``
    (N model calls; a hybrid's η = 0 steps are DDIM-inverted instead, one call each, and not recorded).

    The two grids differ only to reproduce the official SDE-Drag code (:func:`diffsamplers.presets.official_grids`);
    replay reconstructs the chain exactly whatever levels the chain was drawn with.
    """
    check_solver(solver, order)
    fg = grid if forward_grid is None else forward_grid
    if fg.num_steps != grid.num_steps:
        raise ValueError(f"forward grid has {fg.num_steps} steps, grid {grid.num_steps}")
    etas = _etas(eta, grid.num_steps, solver)
    if all(e > 0 for e in etas):
        chain = forward_chain(x0, fg, noise, variant)
    elif variant != "markov":
        raise ValueError("a hybrid (eta = 0 on some steps) needs the markov encoder")
    else:
        chain = _hybrid_chain(model, x0, fg, noise, etas)
    noises = cycle_record(model, chain, grid, etas, progress, solver, order)
    return CycleTrace(chain, noises, eta if isinstance(eta, (int, float)) else etas, variant, solver, order)
