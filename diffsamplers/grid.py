"""Discrete time grids for the samplers: x_t = alpha_t x_0 + sigma_t eps at every grid point.

A grid holds N + 1 points ordered from noisiest (index 0) to cleanest (index N).  The model is evaluated at
points 0..N-1 only; ``timesteps`` holds the label passed to the model (an integer DDPM timestep for Stable
Diffusion, a continuous time for toy models; the final label is never used by the samplers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["Grid"]


@dataclass(frozen=True)
class Grid:
    """Noise levels (alpha_t, sigma_t) and model time labels on a decreasing-noise grid."""

    timesteps: Tensor
    alphas: Tensor
    sigmas: Tensor

    def __post_init__(self) -> None:
        n = self.timesteps.shape[0]
        if n < 2 or self.alphas.shape != (n,) or self.sigmas.shape != (n,):
            raise ValueError("a grid needs >= 2 points and 1-D timesteps/alphas/sigmas of equal length")
        if torch.any(self.alphas <= 0) or torch.any(self.sigmas < 0):
            raise ValueError("grid needs alpha > 0 and sigma >= 0")
        snr = self.alphas / self.sigmas.clamp_min(torch.finfo(self.sigmas.dtype).tiny)
        if torch.any(snr[1:] <= snr[:-1]):
            raise ValueError("grid must go from noisy to clean (strictly increasing alpha/sigma)")

    @property
    def num_steps(self) -> int:
        """Number of steps N (model evaluations per sampling pass)."""
        return self.timesteps.shape[0] - 1

    def __len__(self) -> int:
        return self.timesteps.shape[0]

    @classmethod
    def from_alphas_cumprod(
        cls,
        timesteps: Sequence[int] | Tensor,
        alphas_cumprod: Tensor,
        final_alpha_cumprod: float | Tensor = 1.0,
        dtype: torch.dtype = torch.float64,
    ) -> "Grid":
        """Grid over a scheduler's descending ``timesteps`` (diffusers convention), alpha = sqrt(abar), sigma = sqrt(1 - abar).

        The point after the last timestep has abar = ``final_alpha_cumprod`` (1.0, or abar[0] for SD's
        ``set_alpha_to_one=False``), exactly as in ``DDIMScheduler.step``.
        """
        ts = torch.as_tensor(timesteps).to(torch.long).flatten()
        ac = torch.as_tensor(alphas_cumprod).to(dtype)
        abar = torch.cat([ac[ts], torch.as_tensor([float(final_alpha_cumprod)], dtype=dtype)])
        labels = torch.cat([ts, torch.as_tensor([-1], dtype=torch.long)])
        return cls(labels, abar.sqrt(), (1 - abar).clamp_min(0).sqrt())

    @classmethod
    def from_schedule(
        cls,
        alpha: Callable[[float], float],
        sigma: Callable[[float], float],
        times: Sequence[float] | Tensor,
        dtype: torch.dtype = torch.float64,
    ) -> "Grid":
        """Grid from a continuous schedule's alpha(t), sigma(t) on decreasing ``times`` (labels = times)."""
        t = torch.as_tensor(times, dtype=dtype).flatten()
        a = torch.as_tensor([float(alpha(float(s))) for s in t], dtype=dtype)
        s = torch.as_tensor([float(sigma(float(u))) for u in t], dtype=dtype)
        return cls(t, a, s)

    def tail(self, fraction: float) -> "Grid":
        """The last round(fraction * N) steps: start editing at t0 (SDEdit 'strength' convention of diffusers)."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"t0 fraction must be in (0, 1], got {fraction}")
        k = min(max(int(self.num_steps * fraction), 1), self.num_steps)
        return self.slice(self.num_steps - k, self.num_steps + 1)

    def slice(self, start: int, stop: int) -> "Grid":
        """Sub-grid of points start..stop-1."""
        return Grid(self.timesteps[start:stop], self.alphas[start:stop], self.sigmas[start:stop])

    def reversed_levels(self) -> tuple[Tensor, Tensor, Tensor]:
        """(timesteps, alphas, sigmas) ordered clean to noisy, for inversion and forward chains."""
        return self.timesteps.flip(0), self.alphas.flip(0), self.sigmas.flip(0)
