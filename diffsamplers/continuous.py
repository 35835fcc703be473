"""Continuous-time samplers for dx = f(t) x dt + g(t) dw (reverse SDE and probability-flow ODE, Song et al. 2021).

``score(x, t)`` is ∇log p_t(x); ``f(t)`` and ``g2(t)`` are the forward drift coefficient and squared diffusion.
Times decrease along ``times``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .noise import NoiseSource

__all__ = ["ScoreModel", "euler_maruyama", "probability_flow_euler", "probability_flow_heun"]

ScoreModel = Callable[[Tensor, float], Tensor]


def _ode_drift(score: ScoreModel, f, g2, x: Tensor, t: float) -> Tensor:
    return float(f(t)) * x - 0.5 * float(g2(t)) * score(x, t)


@torch.no_grad()
def euler_maruyama(
    score: ScoreModel, x: Tensor, times, f: Callable[[float], float], g2: Callable[[float], float], noise: NoiseSource,
    eta: float = 1.0,
) -> Tensor:
    """Reverse SDE dx = [f x − ½(1+η²) g² ∇log p] dt + η g dw̄ by Euler–Maruyama (η = 1 the reverse SDE, η = 0 the ODE)."""
    ts = [float(t) for t in times]
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        dt = s - t  # negative
        drift = float(f(t)) * x - 0.5 * (1.0 + eta * eta) * float(g2(t)) * score(x, t)
        x = x + drift * dt
        if eta > 0:
            x = x + eta * math.sqrt(float(g2(t)) * -dt) * noise(i, x)
    return x


@torch.no_grad()
def probability_flow_euler(score: ScoreModel, x: Tensor, times, f, g2) -> Tensor:
    """Probability-flow ODE dx = [f x − ½ g² ∇log p] dt, explicit Euler."""
    ts = [float(t) for t in times]
    for i in range(len(ts) - 1):
        x = x + _ode_drift(score, f, g2, x, ts[i]) * (ts[i + 1] - ts[i])
    return x


@torch.no_grad()
def probability_flow_heun(score: ScoreModel, x: Tensor, times, f, g2) -> Tensor:
    """Probability-flow ODE by Heun's method (EDM Alg. 1 without churn)."""
    ts = [float(t) for t in times]
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        d1 = _ode_drift(score, f, g2, x, t)
        x_e = x + d1 * (s - t)
        d2 = _ode_drift(score, f, g2, x_e, s)
        x = x + 0.5 * (d1 + d2) * (s - t)
    return x
