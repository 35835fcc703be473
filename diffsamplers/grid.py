"""Discrete time grids for the samplers: x_t = alpha_t x_0 + sigma_t eps at every grid point.

A rectified flow (SD3, FLUX) is the path α = 1 − σ (:meth:`Grid.from_flow_sigmas`); its first point may be pure
noise, α = 0, where a model must return a :class:`~diffsamplers.steps.Prediction` (x̂_0 cannot come from ε there).

A grid holds N + 1 points ordered from noisiest (index 0) to cleanest (index N).  The model is evaluated at
points 0..N-1 only; ``timesteps`` holds the label passed to the model (an integer DDPM timestep for Stable
Diffusion, a continuous time for toy models; the final label is never used by the samplers).

Step i goes from point i to point i + 1.  A grid may instead name, per step, the level it *lands* on
(``to_alphas`` / ``to_sigmas``) when that differs from the level the next step *starts* from.  No consistent
sampler needs this; it exists so the official SDE-Drag code, whose backward loop steps from timestep τ to τ − T/N
while its timestep list is not evenly spaced (504 → 499, then 500 → 495), can be reproduced exactly
(:func:`diffsamplers.presets.official_grids`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["Grid"]


def _snr(alphas: Tensor, sigmas: Tensor) -> Tensor:
    return alphas / sigmas.clamp_min(torch.finfo(sigmas.dtype).tiny)


@dataclass(frozen=True)
class Grid:
    """Noise levels (alpha_t, sigma_t) and model time labels on a decreasing-noise grid."""

    timesteps: Tensor
    alphas: Tensor
    sigmas: Tensor
    to_alphas: Tensor | None = None  # level step i lands on; None: point i + 1 (a consistent grid)
    to_sigmas: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.timesteps.shape[0]
        if n < 2 or self.alphas.shape != (n,) or self.sigmas.shape != (n,):
            raise ValueError("a grid needs >= 2 points and 1-D timesteps/alphas/sigmas of equal length")
        if torch.any(self.alphas < 0) or torch.any(self.alphas[1:] <= 0) or torch.any(self.sigmas < 0):
            raise ValueError("grid needs alpha > 0 (alpha = 0 allowed at the first point only) and sigma >= 0")
        if torch.any(_snr(self.alphas, self.sigmas)[1:] <= _snr(self.alphas, self.sigmas)[:-1]):
            raise ValueError("grid must go from noisy to clean (strictly increasing alpha/sigma)")
        if (self.to_alphas is None) != (self.to_sigmas is None):
            raise ValueError("give both to_alphas and to_sigmas, or neither")
        if self.to_alphas is not None:
            ta, ts = self.to_alphas, self.to_sigmas
            if ta.shape != (n - 1,) or ts.shape != (n - 1,):  # type: ignore[union-attr]
                raise ValueError("to_alphas / to_sigmas need one entry per step")
            if torch.any(ta <= 0) or torch.any(ts < 0):  # type: ignore[operator]
                raise ValueError("grid needs alpha > 0 and sigma >= 0")
            if torch.any(_snr(ta, ts) <= _snr(self.alphas[:-1], self.sigmas[:-1])):  # type: ignore[arg-type]
                raise ValueError("every step must land on a cleaner level than it starts from")
            if float(ta[-1]) != float(self.alphas[-1]) or float(ts[-1]) != float(self.sigmas[-1]):  # type: ignore[index]
                raise ValueError("the last step must land on the final grid point")

    @property
    def num_steps(self) -> int:
        """Number of steps N (model evaluations per sampling pass)."""
        return self.timesteps.shape[0] - 1

    @property
    def consistent(self) -> bool:
        """True when every step lands on the point the next step starts from."""
        return self.to_alphas is None

    def __len__(self) -> int:
        return self.timesteps.shape[0]

    def step(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(alpha_t, sigma_t, alpha_s, sigma_s) of step i: from point i to the level it lands on."""
        if self.to_alphas is None:
            return self.alphas[i], self.sigmas[i], self.alphas[i + 1], self.sigmas[i + 1]
        return self.alphas[i], self.sigmas[i], self.to_alphas[i], self.to_sigmas[i]  # type: ignore[index]

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
    def from_flow_sigmas(
        cls,
        sigmas: Sequence[float] | Tensor,
        timesteps: Sequence[float] | Tensor | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> "Grid":
        """Rectified-flow grid x_t = (1 − σ) x_0 + σ ε over decreasing ``sigmas`` (a flow-matching scheduler's
        ``sigmas``, N + 1 values ending at 0); labels are ``timesteps`` (N values, e.g. σ·1000), default σ."""
        s = torch.as_tensor(sigmas).to(dtype).flatten()
        if timesteps is None:
            labels = s.clone()
        else:
            ts = torch.as_tensor(timesteps).to(dtype).flatten()
            if ts.shape[0] != s.shape[0] - 1:
                raise ValueError(f"{ts.shape[0]} timesteps for {s.shape[0]} sigmas (need one fewer)")
            labels = torch.cat([ts, torch.as_tensor([-1.0], dtype=dtype)])
        if torch.any(s > 1) or torch.any(s < 0):
            raise ValueError("flow sigmas must lie in [0, 1]")
        return cls(labels, 1 - s, s)

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
        """The last int(fraction * N) steps (at least one): start editing at t0 (diffusers' img2img 'strength')."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"t0 fraction must be in (0, 1], got {fraction}")
        k = min(max(int(self.num_steps * fraction), 1), self.num_steps)
        return self.slice(self.num_steps - k, self.num_steps + 1)

    def slice(self, start: int, stop: int) -> "Grid":
        """Sub-grid of points start..stop-1 (``stop`` may not drop the final point of an inconsistent grid)."""
        if self.to_alphas is None:
            return Grid(self.timesteps[start:stop], self.alphas[start:stop], self.sigmas[start:stop])
        return Grid(self.timesteps[start:stop], self.alphas[start:stop], self.sigmas[start:stop],
                    self.to_alphas[start:stop - 1], self.to_sigmas[start:stop - 1])  # type: ignore[index]
