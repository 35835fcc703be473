"""Noise schedules for the digit models and the ε-model callables the samplers take.

The samplers call ``model(x, t)`` with ``t`` a grid label.  A discrete schedule maps integer DDPM timesteps to
(α, σ) = (√ᾱ_t, √(1 − ᾱ_t)); a continuous one takes any object with ``alpha(t)`` and ``sigma(t)`` (e.g.
``theory.schedules.VPLinear`` / ``VPCosine`` / ``VE``) and maps a float time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from diffsamplers import Grid

__all__ = ["DiscreteSchedule", "ContinuousSchedule", "ddpm_linear", "exact_eps_model"]


@dataclass(frozen=True)
class DiscreteSchedule:
    """DDPM-style schedule given by ``alphas_cumprod`` [T] (float64)."""

    alphas_cumprod: Tensor

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def alpha_sigma(self, t: Any) -> tuple[float, float]:
        ab = float(self.alphas_cumprod[int(torch.as_tensor(t).reshape(-1)[0])])
        return ab ** 0.5, (1.0 - ab) ** 0.5

    def timesteps(self, num_steps: int) -> list[int]:
        """Descending, evenly spaced timesteps from T−1 to 0 (``num_steps`` model evaluations)."""
        return [int(v) for v in np.round(np.linspace(self.num_train_timesteps - 1, 0, num_steps))]

    def grid(self, num_steps: int) -> Grid:
        return Grid.from_alphas_cumprod(self.timesteps(num_steps), self.alphas_cumprod, 1.0)


def ddpm_linear(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteSchedule:
    """Ho et al. (2020) linear β schedule, the default for the digit models."""
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    return DiscreteSchedule(torch.cumprod(1.0 - betas, 0))


@dataclass(frozen=True)
class ContinuousSchedule:
    """Wraps a schedule with ``alpha(t)``, ``sigma(t)`` (numpy or float); grid labels are the times."""

    schedule: Any
    t_min: float = 1e-3
    t_max: float = 1.0

    def alpha_sigma(self, t: Any) -> tuple[float, float]:
        tf = float(torch.as_tensor(t).reshape(-1)[0])
        return float(self.schedule.alpha(tf)), float(self.schedule.sigma(tf))

    def grid(self, num_steps: int) -> Grid:
        times = np.concatenate([np.linspace(self.t_max, self.t_min, num_steps), [0.0]])
        return Grid.from_schedule(lambda s: float(self.schedule.alpha(s)), lambda s: float(self.schedule.sigma(s)), times)


def exact_eps_model(mixture, schedule) -> Callable[[Tensor, Tensor], Tensor]:
    """``model(x, t) -> ε`` of the exact mixture on ``schedule`` (x of shape [B, 256] or [B, 1, 16, 16])."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        a, s = schedule.alpha_sigma(t)
        return mixture.eps(x, a, s)

    return model
