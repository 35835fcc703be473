"""Particle method, any dimension: simulate the reverse SDE / ODE of p with exact score from q_t0 samples.

ODE: carry log q along trajectories by the instantaneous change of variables,
     d log q_t(x_t)/dt = -div b(x_t, t), div b = f d - 1/2 g^2 Laplacian log p_t (exact GMM trace), RK4;
     KL = mean(log q - log p_tau) with a 95% normal band.
SDE: Euler-Maruyama on the log time grid, KL by the one-sample kNN form -H_KL(q) - E log p_tau; band from
     independent replicates (t-interval over batches).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .divergences import kl_knn_one_sample
from .mixtures import GaussianMixture
from .results import KLPath, make_path
from .schedules import Schedule
from .timegrid import time_grid


def particles_ode(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float, t_end: float,
                  n: int = 10000, n_steps: int = 100, save_every: int = 20, seed: int = 0) -> KLPath:
    """Probability-flow ODE particles with exact log-density transport (RK4 in t on a log grid)."""
    rng = np.random.default_rng(seed)
    d = data.dim
    x = edited.sample(n, rng)
    lq = edited.log_prob(x)

    def rhs(x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        pt = data.marginal(schedule, t)
        f, g2 = float(schedule.f(t)), float(schedule.g2(t))
        return f * x - 0.5 * g2 * pt.score(x), -(f * d - 0.5 * g2 * pt.laplacian_log_prob(x))

    ts = time_grid(t0, t_end, n_steps, "log")
    out_t, kl, band = [], [], []

    def record(t: float) -> None:
        v = lq - data.marginal(schedule, t).log_prob(x)
        out_t.append(t)
        kl.append(v.mean())
        band.append(1.96 * v.std(ddof=1) / math.sqrt(n))

    record(ts[0])
    for i in range(n_steps):
        t, dt = ts[i], ts[i + 1] - ts[i]
        k1x, k1l = rhs(x, t)
        k2x, k2l = rhs(x + 0.5 * dt * k1x, t + 0.5 * dt)
        k3x, k3l = rhs(x + 0.5 * dt * k2x, t + 0.5 * dt)
        k4x, k4l = rhs(x + dt * k3x, t + dt)
        x = x + dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        lq = lq + dt / 6 * (k1l + 2 * k2l + 2 * k3l + k4l)
        if (i + 1) % save_every == 0 or i + 1 == n_steps:
            record(ts[i + 1])
    times = np.array(out_t)
    return make_path("particles", "ode", times, np.array(kl), None, None, kl_band=np.array(band),
                     extra={"n_particles": n, "n_steps": n_steps, "seed": seed})


def particles_sde(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float, t_end: float,
                  n: int = 8000, n_steps: int = 200, save_every: int = 40, replicates: int = 4, k: int = 5,
                  seed: int = 0) -> KLPath:
    """Reverse-SDE particles (Euler-Maruyama), one-sample kNN KL per replicate, t-band across replicates."""
    rng = np.random.default_rng(seed)
    ts = time_grid(t0, t_end, n_steps, "log")
    rec_idx = [0] + [i + 1 for i in range(n_steps) if (i + 1) % save_every == 0 or i + 1 == n_steps]
    kls = np.empty((replicates, len(rec_idx)))
    for r in range(replicates):
        x = edited.sample(n, rng)
        col = 0
        kls[r, col] = kl_knn_one_sample(x, data.marginal(schedule, ts[0]).log_prob, k)
        for i in range(n_steps):
            t, dt = ts[i], ts[i] - ts[i + 1]
            f, g2 = float(schedule.f(t)), float(schedule.g2(t))
            b = f * x - g2 * data.marginal(schedule, t).score(x)
            x = x - dt * b + math.sqrt(g2 * dt) * rng.standard_normal(x.shape)
            if i + 1 in rec_idx:
                col += 1
                kls[r, col] = kl_knn_one_sample(x, data.marginal(schedule, ts[i + 1]).log_prob, k)
    mean = kls.mean(axis=0)
    half = stats.t.ppf(0.975, replicates - 1) * kls.std(axis=0, ddof=1) / math.sqrt(replicates)
    times = ts[rec_idx]
    return make_path("particles", "sde", times, mean, None, None, kl_band=half,
                     extra={"n_particles": n, "replicates": replicates, "n_steps": n_steps, "seed": seed})
