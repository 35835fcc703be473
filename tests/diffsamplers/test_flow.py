"""Rectified flow x_t = (1 − σ) x_0 + σ ε in the sampler library: the flow Euler step is DDIM η = 0, the fully
re-noising member equals diffusers' FlowMatchEulerDiscreteScheduler(stochastic_sampling=True), Cycle-SDE is exact
from σ = 1 (α = 0), a plain ε at α = 0 is refused, and (SDE-)DPM-Solver++(2M) from pure noise equals diffusers'
DPMSolverMultistepScheduler(use_flow_sigmas=True) step by step and converges at second order on a Gaussian."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsamplers as ds
from diffsamplers import recipes


def _velocity_model(dim: int = 6, seed: int = 0):
    """A smooth nonlinear velocity field v(x, σ) (float64) wrapped as a flow model returning a Prediction."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    w2 = torch.randn(dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)

    def v(x, sigma):
        return torch.tanh(x @ w1) @ w2 * (1 + sigma) - 0.3 * x

    def model(x, t):
        sigma = float(t) / 1000.0
        return ds.flow_prediction(x, v(x, sigma), sigma)

    return model, v


def _flow_grid(n: int, shift: float = 3.0) -> ds.Grid:
    s = torch.linspace(1.0, 1.0 / n, n, dtype=torch.float64)
    s = shift * s / (1 + (shift - 1) * s)
    sig = torch.cat([s, torch.zeros(1, dtype=torch.float64)])
    return ds.Grid.from_flow_sigmas(sig, s * 1000)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.02, 1.0), st.floats(0.0, 0.98), st.integers(0, 2 ** 31 - 1))
def test_flow_euler_step_is_ddim_eta0(s_t, frac, seed):
    s_s = s_t * frac
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, generator=g, dtype=torch.float64)
    v = torch.randn(5, generator=g, dtype=torch.float64)
    out = ds.ddim_step(x, ds.flow_prediction(x, v, s_t), 1 - s_t, s_t, 1 - s_s, s_s, eta=0.0)
    torch.testing.assert_close(out, x + (s_s - s_t) * v, rtol=0, atol=1e-13)


def test_prediction_is_consistent_with_the_path():
    x, v = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    for s in (0.3, 0.9, 1.0):
        p = ds.flow_prediction(x, v, s)
        torch.testing.assert_close((1 - s) * p.x0 + s * p.eps, x, rtol=0, atol=1e-14)  # x = α x̂_0 + σ ε̂
        torch.testing.assert_close(p.eps - p.x0, v, rtol=0, atol=1e-14)               # v = ε − x_0


def test_plain_eps_at_alpha_zero_is_refused():
    x = torch.randn(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="Prediction"):
        ds.ddim_step(x, x, 0.0, 1.0, 0.5, 0.5, eta=0.0)


def test_eta1_is_the_markov_posterior_of_the_path():
    x0, x_t, w = (torch.randn(4, dtype=torch.float64) for _ in range(3))
    s_t, s_s = 0.8, 0.35
    eps = ds.eps_from_x0(x_t, x0, 1 - s_t, s_t)
    a = ds.ddim_step(x_t, eps, 1 - s_t, s_t, 1 - s_s, s_s, eta=1.0, noise=w)
    # q(x_s | x_t, x_0) of the forward kernel x_t = r x_s + √(σ_t² − r² σ_s²) z, r = α_t/α_s: Gaussian closed form
    r = (1 - s_t) / (1 - s_s)
    var_ts = s_t ** 2 - r ** 2 * s_s ** 2
    prec = 1 / s_s ** 2 + r ** 2 / var_ts
    mean = ((1 - s_s) * x0 / s_s ** 2 + r * x_t / var_ts) / prec
    torch.testing.assert_close(a, mean + w / math.sqrt(prec), rtol=0, atol=1e-13)


def test_eta_is_capped_and_infinity_renoises_fully():
    assert ds.ddim_sigma(0.5, 0.5, 0.8, 0.2, 50.0) == pytest.approx(0.2)
    assert ds.ddim_sigma(0.0, 1.0, 0.8, 0.2, math.inf) == 0.2
    x, v, w = (torch.randn(4, dtype=torch.float64) for _ in range(3))
    out = ds.ddim_step(x, ds.flow_prediction(x, v, 0.7), 0.3, 0.7, 0.6, 0.4, eta=math.inf, noise=w)
    torch.testing.assert_close(out, 0.6 * (x - 0.7 * v) + 0.4 * w, rtol=0, atol=1e-14)


@pytest.mark.parametrize("stochastic", [False, True])
def test_equals_diffusers_flow_match_euler(stochastic):
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0, stochastic_sampling=stochastic)
    sched.set_timesteps(8)
    grid = ds.Grid.from_flow_sigmas(sched.sigmas, sched.timesteps)
    assert float(grid.alphas[0]) == 0.0  # starts at pure noise
    model, v = _velocity_model(dim=6)
    x_init = torch.randn(2, 6, generator=torch.Generator().manual_seed(1))
    x = x_init.clone()
    gen = torch.Generator().manual_seed(7)
    for t in sched.timesteps:
        vel = v(x.double(), float(t) / 1000).float()
        x = sched.step(vel, t, x, generator=gen).prev_sample
    ours = ds.sample_ddim(model, x_init.double(), grid, eta=math.inf if stochastic else 0.0,
                          noise=ds.GaussianNoise(torch.Generator().manual_seed(7)) if stochastic else None)
    torch.testing.assert_close(ours.float(), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["markov", "posterior", "independent"])
def test_cycle_sde_reconstructs_from_pure_noise(variant):
    grid = _flow_grid(12)
    model, _ = _velocity_model()
    x0 = torch.randn(3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tr = ds.cycle_encode(model, x0, grid, ds.GaussianNoise(3), variant=variant)
    rec = ds.cycle_replay(model, tr.chain[0], grid, tr.noises)
    assert float((rec - x0).abs().max()) <= 1e-10


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_recipes_on_a_flow(sampler):
    grid = _flow_grid(10)
    model, _ = _velocity_model()
    x0 = torch.randn(2, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    res = recipes.sdedit(model, x0, grid.tail(0.5), sampler, ds.GaussianNoise(5))
    assert torch.isfinite(res.x).all()
    rec = recipes.reconstruct(model, x0, grid, "sde", ds.GaussianNoise(6))
    assert float((rec.x - x0).abs().max()) <= 1e-10
    keep = torch.zeros_like(x0, dtype=torch.bool)
    keep[:, :3] = True
    out = recipes.inpaint(model, x0, keep, grid, sampler, ds.GaussianNoise(8))
    torch.testing.assert_close(out.x[:, :3], x0[:, :3], rtol=0, atol=1e-12)


@pytest.mark.parametrize("sde", [False, True])
def test_dpmpp_from_pure_noise_order1_is_ddim(sde):
    grid = _flow_grid(10)
    model, _ = _velocity_model()
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    a = ds.sample_dpmpp(model, x, grid, order=1, sde=sde, noise=ds.GaussianNoise(1) if sde else None)
    b = ds.sample_ddim(model, x, grid, eta=1.0 if sde else 0.0, noise=ds.GaussianNoise(1) if sde else None)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["dpmsolver++", "sde-dpmsolver++"])
@pytest.mark.parametrize("steps", [8, 20])
def test_dpmpp_order2_on_a_flow_equals_diffusers_step_by_step(algorithm, steps):
    """(SDE-)DPM-Solver++(2M) on a flow grid = diffusers' ``DPMSolverMultistepScheduler`` with flow sigmas
    (``flow_prediction``, shift 3), every step, given the same velocity model and the same noises (float32 reference);
    order 1 on the same run is far from it, so the comparison sees the second-order correction."""
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(algorithm_type=algorithm, solver_order=2, prediction_type="flow_prediction",
                                        use_flow_sigmas=True, flow_shift=3.0)
    sched.set_timesteps(steps)
    sig = sched.sigmas.to(torch.float64)
    grid = ds.Grid.from_flow_sigmas(sig, sig[:-1] * 1000)  # labels σ·1000: the model reads σ back exactly
    model, v = _velocity_model()
    g = torch.Generator().manual_seed(9)
    x_init = torch.randn(2, 6, generator=g)
    zs = [torch.randn(2, 6, generator=g) for _ in range(steps)]
    sde = algorithm.startswith("sde")
    x, ref = x_init.clone(), []
    for i, t in enumerate(sched.timesteps):
        vel = v(x.double(), float(sched.sigmas[i])).float()
        x = sched.step(vel, t, x, **({"variance_noise": zs[i]} if sde else {})).prev_sample
        ref.append(x.double())
    noise = (lambda: ds.ReplayNoise([z.double() for z in zs])) if sde else (lambda: None)
    ours: list[torch.Tensor] = []
    out = ds.sample_dpmpp(model, x_init.double(), grid, order=2, sde=sde, noise=noise(),
                          post_step=lambda i, xs: ours.append(xs) or xs)
    assert len(ours) == len(ref) == steps
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert float((a - b).abs().max()) <= 2e-5 * (1 + float(b.abs().max())), f"step {i}"
    first = ds.sample_dpmpp(model, x_init.double(), grid, order=1, sde=sde, noise=noise())
    assert float((first - out).abs().max()) > 1e3 * float((out - ref[-1]).abs().max())


def _gaussian_flow_model(mu: torch.Tensor, var: torch.Tensor):
    """The exact (ε̂, x̂_0) of data N(μ, diag(var)) on the path x = (1 − σ) x_0 + σ ε (labels σ·1000)."""
    def model(x, t):
        s = float(t) / 1000.0
        a = 1.0 - s
        d = a * a * var + s * s
        r = x - a * mu
        return ds.Prediction(s * r / d, mu + a * var * r / d)

    return model


def test_dpmpp_order2_from_pure_noise_converges_at_second_order():
    """On Gaussian data the probability-flow ODE from σ = 1 has the closed-form end x_0 = μ + √var · x_1.  As the
    steps double, DPM-Solver++(2M)'s error falls at observed order ≥ 1.7 (it tends to 2 from below: the first and last
    steps, at λ = ∓∞, are first order) while order 1 (DDIM, the flow Euler step) falls at order ≈ 1."""
    mu = torch.tensor([0.8, -0.5, 0.1], dtype=torch.float64)
    var = torch.tensor([0.4, 0.7, 1.3], dtype=torch.float64)
    model = _gaussian_flow_model(mu, var)
    x1 = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = mu + var.sqrt() * x1
    ns = (160, 320, 640)
    errs = {order: [float((ds.sample_dpmpp(model, x1, _flow_grid(n), order=order) - exact).norm()) for n in ns]
            for order in (1, 2)}
    rates = {order: [math.log2(e[k] / e[k + 1]) for k in range(len(ns) - 1)] for order, e in errs.items()}
    assert rates[2][-1] >= 1.7 and min(rates[2]) >= 1.6, (errs, rates)
    assert all(0.9 <= r <= 1.1 for r in rates[1]), (errs, rates)
    assert errs[2][-1] <= 0.05 * errs[1][-1]
