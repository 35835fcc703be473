"""Closed-form helpers for sampler tests: exact ε of a Gaussian, affine pushforward of Gaussians, Gaussian KL."""
from __future__ import annotations

import torch
from torch import Tensor


def gaussian_eps_model(mean: Tensor, cov: Tensor, grid_levels: dict):
    """ε(x, t) = σ_t (α_t² Σ + σ_t² I)^{-1} (x − α_t μ) for data N(μ, Σ); ``grid_levels`` maps label -> (α, σ)."""
    d = mean.shape[0]
    eye = torch.eye(d, dtype=cov.dtype)

    def model(x: Tensor, t: Tensor) -> Tensor:
        a, s = grid_levels[float(t)]
        prec = torch.linalg.inv(a * a * cov + s * s * eye)
        return s * (x - a * mean) @ prec.T

    return model


def levels(grid) -> dict:
    return {float(t): (float(a), float(s)) for t, a, s in zip(grid.timesteps, grid.alphas, grid.sigmas)}


def affine_of(fn, d: int, dtype=torch.float64) -> tuple[Tensor, Tensor]:
    """(A, b) with fn(x) = x A^T + b for an affine map fn acting on rows."""
    b = fn(torch.zeros(1, d, dtype=dtype))[0]
    cols = fn(torch.eye(d, dtype=dtype)) - b
    return cols.T, b


def kl_gauss(m1: Tensor, c1: Tensor, m2: Tensor, c2: Tensor) -> float:
    """KL(N(m1, C1) ‖ N(m2, C2)) in closed form."""
    d = m1.shape[0]
    c2i = torch.linalg.inv(c2)
    diff = m2 - m1
    return float(0.5 * (torch.trace(c2i @ c1) + diff @ c2i @ diff - d + torch.logdet(c2) - torch.logdet(c1)))


def vp_grid(n: int, t_hi: float = 1.0, t_lo: float = 1e-3):
    """A VP grid of n steps (linear β from 0.1 to 20) from t_hi down to t_lo."""
    import math

    import diffsamplers as ds

    bmin, bmax = 0.1, 20.0

    def alpha(t):
        return math.exp(-0.25 * t * t * (bmax - bmin) - 0.5 * t * bmin)

    return ds.Grid.from_schedule(alpha, lambda t: math.sqrt(1 - alpha(t) ** 2), torch.linspace(t_hi, t_lo, n + 1))
