"""Discrete samplers against the exact continuous-time theory (theory.gaussian): the KL to the true p_s converges."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

import diffsamplers as ds
from gaussian_helpers import affine_of, gaussian_eps_model, kl_gauss, levels
from theory.gaussian import gaussian_path
from theory.schedules import VE, VPCosine, VPLinear


def _discrete_kl_to_truth(schedule, m_p, c_p, m_q, c_q, t0, t_end, n, eta):
    """Push q_t0 = N(m_q, C_q) through n η-DDIM steps with p's exact ε; KL to the exact marginal p_{t_end}."""
    times = np.linspace(t0, t_end, n + 1)
    g = ds.Grid.from_schedule(schedule.alpha, schedule.sigma, times)
    d = m_p.shape[0]
    mp, cp = torch.as_tensor(m_p), torch.as_tensor(c_p)
    model = gaussian_eps_model(mp, cp, levels(g))
    m, c = torch.as_tensor(m_q), torch.as_tensor(c_q)
    eye = torch.eye(d, dtype=torch.float64)
    for i in range(n):
        def step(x):
            return ds.ddim_step(x, model(x, g.timesteps[i]), g.alphas[i], g.sigmas[i], g.alphas[i + 1], g.sigmas[i + 1],
                                eta, torch.zeros_like(x))
        A, b = affine_of(step, d)
        c2 = ds.ddim_sigma(g.alphas[i], g.sigmas[i], g.alphas[i + 1], g.sigmas[i + 1], eta) ** 2
        m, c = A @ m + b, A @ c @ A.T + c2 * eye
    a, s = float(g.alphas[-1]), float(g.sigmas[-1])
    return kl_gauss(m, c, a * mp, a * a * cp + s * s * eye)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    d=st.integers(1, 3),
    seed=st.integers(0, 1000),
    kind=st.sampled_from(["vp-linear", "vp-cosine", "ve"]),
    sampler=st.sampled_from(["sde", "ode"]),
)
def test_discrete_kl_converges_to_continuous_curve(d, seed, kind, sampler):
    """η = 1 (SDE) and η = 0 (ODE) DDIM on Gaussians: |KL_N − KL_exact(t_end)| shrinks as N grows."""
    rng = np.random.default_rng(seed)
    schedule = {"vp-linear": VPLinear(0.1, 20.0), "vp-cosine": VPCosine(0.008), "ve": VE(0.01, 10.0)}[kind]
    t0, t_end = 0.6, 0.05
    m_p = rng.normal(size=d)
    a = rng.normal(size=(d, d))
    c_p = a @ a.T / d + 0.3 * np.eye(d)
    at, st_ = float(schedule.alpha(t0)), float(schedule.sigma(t0))
    m_q = at * m_p + rng.normal(size=d)
    b = rng.normal(size=(d, d))
    c_q = b @ b.T / d + 0.3 * np.eye(d) + st_**2 * np.eye(d)
    exact = gaussian_path(schedule, m_p, c_p, m_q, c_q, t0, t_end, sampler=sampler).kl_end
    eta = 1.0 if sampler == "sde" else 0.0
    errs = [abs(_discrete_kl_to_truth(schedule, m_p, c_p, m_q, c_q, t0, t_end, n, eta) - exact) for n in (25, 100, 400)]
    assert errs[2] < errs[0]
    assert errs[2] <= 0.05 * max(exact, 1e-2)
