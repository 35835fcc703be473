"""Particle method, any dimension: simulate the reverse SDE / ODE of p with exact score from q_t0 samples.

ODE: carry log q along trajectories by the instantaneous change of variables,
     d log q_t(x_t)/dt = -div b(x_t, t), div b = f d - 1/2 g^2 Laplacian log p_t (exact GMM trace), RK4;
     KL = mean(log q - log p_tau) with a 95% normal band.  Fisher: u = grad log q_t(x_t) is carried too,
     du/dt = -(grad b)^T u - grad div b = -f u + 1/2 g^2 (H_p u + grad Laplacian log p)   (H_p = Hessian of log p_t,
     closed form for a mixture), from u = grad log q_t0 (exact); F = mean |u - grad log p_tau|^2 with a 95% band.
     Exact up to the RK4 time error and Monte Carlo.
SDE: Euler-Maruyama on the log time grid, KL by the one-sample kNN form -H_KL(q) - E log p_tau; band from
     independent replicates (t-interval over batches).  No Fisher estimate: a leave-one-out Gaussian-KDE score
     (Scott bandwidth) was tried and is useless here -- on the 1-D two-component mixture it gave F(t_end) = 0.73
     against the exact 0.0049 (the bandwidth, 0.28, is as wide as the components), so it was not kept.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .divergences import kl_knn_one_sample
from .mixtures import GaussianMixture
from .results import KLPath, make_path
from .schedules import Schedule
from .timegrid import integrate_half_g2_fisher, time_grid


def particles_ode(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float, t_end: float,
                  n: int = 10000, n_steps: int = 100, save_every: int = 20, seed: int = 0) -> KLPath:
    """Probability-flow ODE particles with exact log-density and score transport (RK4 in t on a log grid).

    KL and F are recorded every save_every steps (kl_band, extra["fisher_band"]); extra["fisher_integral_all"] is
    int 1/2 g^2 F over every step (Simpson), reported for information (the ODE identity is KL = const)."""
    rng = np.random.default_rng(seed)
    d = data.dim
    x = edited.sample(n, rng)
    lq = edited.log_prob(x)
    u = edited.score(x)

    def rhs(x: np.ndarray, u: np.ndarray, t: float):
        pt = data.marginal(schedule, t)
        f, g2 = float(schedule.f(t)), float(schedule.g2(t))
        s, H, gL = pt.hessian_and_grad_laplacian(x)
        lap = np.trace(H, axis1=1, axis2=2)
        du = -f * u + 0.5 * g2 * (np.einsum("nij,nj->ni", H, u) + gL)
        return f * x - 0.5 * g2 * s, -(f * d - 0.5 * g2 * lap), du

    ts = time_grid(t0, t_end, n_steps, "log")
    out_t, kl, band, fis, fband, all_f = [], [], [], [], [], []

    def fisher_now(t: float) -> tuple[float, float]:
        diff = u - data.marginal(schedule, t).score(x)
        v = np.sum(diff * diff, axis=1)
        return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(n))

    def record(t: float) -> None:
        v = lq - data.marginal(schedule, t).log_prob(x)
        out_t.append(t)
        kl.append(v.mean())
        band.append(1.96 * v.std(ddof=1) / math.sqrt(n))
        fm, fb = fisher_now(t)
        fis.append(fm)
        fband.append(fb)

    record(ts[0])
    all_f.append(fis[-1])
    for i in range(n_steps):
        t, dt = ts[i], ts[i + 1] - ts[i]
        k1 = rhs(x, u, t)
        k2 = rhs(x + 0.5 * dt * k1[0], u + 0.5 * dt * k1[2], t + 0.5 * dt)
        k3 = rhs(x + 0.5 * dt * k2[0], u + 0.5 * dt * k2[2], t + 0.5 * dt)
        k4 = rhs(x + dt * k3[0], u + dt * k3[2], t + dt)
        x = x + dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        lq = lq + dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        u = u + dt / 6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
        if (i + 1) % save_every == 0 or i + 1 == n_steps:
            record(ts[i + 1])
            all_f.append(fis[-1])
        else:
            all_f.append(fisher_now(ts[i + 1])[0])
    times = np.array(out_t)
    fint = integrate_half_g2_fisher(ts, np.array(all_f), schedule, t0, t_end)
    return make_path("particles", "ode", times, np.array(kl), np.array(fis), None, kl_band=np.array(band),
                     extra={"n_particles": n, "n_steps": n_steps, "seed": seed, "fisher_band": np.array(fband),
                            "fisher_integral_all": fint})


def particles_sde(schedule: Schedule, data: GaussianMixture, edited: GaussianMixture, t0: float, t_end: float,
                  n: int = 8000, n_steps: int = 200, save_every: int = 40, replicates: int = 4, k: int = 5,
                  seed: int = 0) -> KLPath:
    """Reverse-SDE particles (Euler-Maruyama), one-sample kNN KL per replicate, t-band across replicates (no
    Fisher: see the module docstring)."""
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
