"""Shared sampler library: closed-form golden checks, exact round trips and properties on Gaussians."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

import diffsamplers as ds
from gaussian_helpers import affine_of, gaussian_eps_model, kl_gauss, levels


def sd_alphas_cumprod(dtype=torch.float64) -> torch.Tensor:
    """Stable Diffusion's scaled-linear betas (0.00085 → 0.012, 1000 steps)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=dtype) ** 2
    return torch.cumprod(1 - betas, 0)


def sd_grid(n: int, final: float = 1.0) -> ds.Grid:
    ratio = 1000 // n
    return ds.Grid.from_alphas_cumprod(torch.arange(n - 1, -1, -1) * ratio + 1, sd_alphas_cumprod(), final)


def nonlinear_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x + 1e-3 * float(t)) * 0.7 + 0.1 * x


def test_grid_validation_and_tail():
    g = sd_grid(50)
    assert g.num_steps == 50 and len(g) == 51
    assert g.tail(0.6).num_steps == 30
    assert torch.equal(g.tail(1.0).timesteps, g.timesteps)
    with pytest.raises(ValueError):
        g.tail(0.0)
    with pytest.raises(ValueError):
        ds.Grid(g.timesteps.flip(0), g.alphas.flip(0), g.sigmas.flip(0))


def test_ddim_eta1_step_is_the_ddpm_posterior_step():
    """η = 1 step = sample of q(x_s | x_t, x̂_0) with DDPM's posterior mean and variance (Ho et al. 2020, Eq. 7)."""
    ac = sd_alphas_cumprod()
    t, s = 700, 650
    a_t, a_s = ac[t], ac[s]
    gen = torch.Generator().manual_seed(0)
    x, eps, w = (torch.randn(3, 4, 5, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    out = ds.ddim_step(x, eps, a_t.sqrt(), (1 - a_t).sqrt(), a_s.sqrt(), (1 - a_s).sqrt(), eta=1.0, noise=w)
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    alpha_ts = a_t / a_s
    beta_ts = 1 - alpha_ts
    mean = a_s.sqrt() * beta_ts / (1 - a_t) * x0 + alpha_ts.sqrt() * (1 - a_s) / (1 - a_t) * x
    std = ((1 - a_s) / (1 - a_t) * beta_ts).sqrt()
    torch.testing.assert_close(out, mean + std * w, rtol=0, atol=1e-12)


def test_dpmpp_order1_equals_ddim_and_sde_order1_equals_ddpm():
    g = sd_grid(20)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    a = ds.sample_dpmpp(nonlinear_model, x, g, order=1)
    b = ds.sample_ddim(nonlinear_model, x, g, eta=0.0)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    a = ds.sample_dpmpp(nonlinear_model, x, g, order=1, sde=True, noise=ds.GaussianNoise(5))
    b = ds.sample_ddim(nonlinear_model, x, g, eta=1.0, noise=ds.GaussianNoise(5))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", ds.VARIANTS)
@pytest.mark.parametrize("final", [1.0, None])
def test_cycle_sde_replay_reconstructs_float64(variant, final):
    ac = sd_alphas_cumprod()
    g = ds.Grid.from_alphas_cumprod(torch.arange(49, -1, -1) * 20 + 1, ac, 1.0 if final else ac[0])
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tr = ds.cycle_encode(nonlinear_model, x0, g.tail(0.6), ds.GaussianNoise(3), variant)
    rec = ds.cycle_replay(nonlinear_model, tr.chain[0], g.tail(0.6), tr.noises)
    assert (rec - x0).abs().max() <= 1e-10


def test_cycle_sde_replay_float32_and_other_eta():
    g = sd_grid(50)
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    tr = ds.cycle_encode(nonlinear_model, x0, g, ds.GaussianNoise(5), eta=0.5)
    assert tr.chain[0].dtype == torch.float32
    rec = ds.cycle_replay(nonlinear_model, tr.chain[0], g, tr.noises, eta=0.5)
    assert (rec - x0).abs().max() <= 1e-4


def _edited_gaussian_setup():
    """2-d Gaussian data N(μ, Σ) with its exact ε on a 60-step SD grid from t0 = 0.6 down to ᾱ_0 (σ > 0 at every
    level, so every η = 1 step draws noise), and an edited start law q ≠ p_{t0} (mean moved, covariance changed)."""
    mean = torch.tensor([0.5, -1.0], dtype=torch.float64)
    cov = torch.tensor([[0.3, 0.1], [0.1, 0.5]], dtype=torch.float64)
    g = sd_grid(100, final=float(sd_alphas_cumprod()[0])).tail(0.6)
    model = gaussian_eps_model(mean, cov, levels(g))
    eye = torch.eye(2, dtype=torch.float64)

    def marginal(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = float(g.alphas[i]), float(g.sigmas[i])
        return a * mean, a * a * cov + s * s * eye

    mq = marginal(0)[0] + torch.tensor([1.0, -0.5], dtype=torch.float64)
    cq = torch.tensor([[0.6, 0.0], [0.0, 1.5]], dtype=torch.float64)
    return g, model, marginal, mq, cq


def _kl_along_sampler(eta: float, drop_noise: bool = False) -> list[float]:
    """KL(q_i ‖ p_i) at every grid point, q_i the exact law of ``sample_ddim``'s state started from the edited law and
    p_i the model's marginal at that level.  Each one-step run of the real sampler is affine in (state, noise) on a
    Gaussian, x' = A x + b + B w, so q_i stays Gaussian: m' = A m + b, C' = A C Aᵀ + B Bᵀ, with A, b, B read off
    the sampler itself (``drop_noise``: a broken sampler that skips its noise, B = 0)."""
    g, model, marginal, m, c = _edited_gaussian_setup()
    eye = torch.eye(2, dtype=torch.float64)
    kls = [kl_gauss(m, c, *marginal(0))]
    for i in range(g.num_steps):
        one = g.slice(i, i + 2)

        def run(x, w, one=one):
            return ds.sample_ddim(model, x, one, eta=eta, noise=ds.ReplayNoise([w]))

        A, b = affine_of(lambda x: run(x, torch.zeros_like(x)), 2)
        Bt = torch.zeros_like(eye) if drop_noise else run(torch.zeros_like(eye), eye) - b  # rows: B's columns
        m, c = A @ m + b, A @ c @ A.T + Bt.T @ Bt
        kls.append(kl_gauss(m, c, *marginal(i + 1)))
    return kls


def test_sde_contracts_an_edit_towards_the_model_marginal_and_ode_keeps_it():
    """The paper's claim, on the discrete samplers: started from an edited law q ≠ p_{t0}, the reverse SDE (DDPM,
    η = 1) brings KL(q_t ‖ p_t) down at every step, to a small fraction of where it began, while the ODE (DDIM, η = 0)
    keeps it at KL_0 up to discretisation error.  A sampler that skips its noise (the same means, B = 0) fails this."""
    g, *_ = _edited_gaussian_setup()
    sde, ode = _kl_along_sampler(1.0), _kl_along_sampler(0.0)
    kl0 = sde[0]
    assert kl0 > 0.5 and ode[0] == kl0
    # strictly down at every step landing at σ ≥ 0.1 (below that the steps' own O(1/N) error is of the same size)
    on = [i for i in range(g.num_steps) if float(g.sigmas[i + 1]) >= 0.1]
    assert len(on) >= 0.9 * g.num_steps
    assert all(sde[i + 1] < sde[i] for i in on), sde
    assert max(sde[len(sde) // 2:]) < 0.2 * kl0 and sde[-1] < 0.08 * kl0
    assert max(abs(k - kl0) for k in ode) <= 0.06 * kl0, ode
    assert ode[-1] > 10 * sde[-1]
    broken = _kl_along_sampler(1.0, drop_noise=True)
    assert broken[-1] > kl0  # what the contraction assertions above would catch


def test_cycle_sde_replay_shrinks_an_edit_that_the_ode_carries():
    """Cycle-SDE replay is affine in the start with the recorded noises fixed, so an edit δ of the encoded latent comes
    out as J_sde δ whatever the noises; on a Gaussian each η = 1 step's Jacobian is below the DDIM step's (same
    eigenvectors, smaller eigenvalues), so the replay keeps under 40 % of what the ODE carries to the data (23-32 %
    here, more along Σ's larger axis), while
    the unedited replay still reconstructs exactly."""
    g, model, *_ = _edited_gaussian_setup()
    mean = torch.tensor([0.5, -1.0], dtype=torch.float64)
    x0 = mean + 0.5 * torch.randn(32, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    tr = ds.cycle_encode(model, x0, g, ds.GaussianNoise(7))
    rec = ds.cycle_replay(model, tr.chain[0], g, tr.noises)
    assert float((rec - x0).abs().max()) <= 1e-10
    for delta in (torch.tensor([1.0, -0.5]), torch.tensor([0.0, 2.0]), torch.tensor([-0.7, -0.7])):
        delta = delta.to(torch.float64)
        sde = ds.cycle_replay(model, tr.chain[0] + delta, g, tr.noises) - rec
        ode = ds.sample_ddim(model, tr.chain[0] + delta, g) - ds.sample_ddim(model, tr.chain[0], g)
        torch.testing.assert_close(sde, sde[:1].expand_as(sde), rtol=0, atol=1e-12)  # the same for every sample
        assert float(sde.norm(dim=1).max()) < 0.4 * float(ode.norm(dim=1).min())
        assert float(ode.norm(dim=1).min()) > 0.3 * float(delta.norm())  # the ODE does carry the edit


def test_recording_and_replay_noise_sources_reproduce_a_sde_run():
    g = sd_grid(10)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    rec = ds.RecordingNoise(ds.GaussianNoise(9))
    a = ds.sample_ddim(nonlinear_model, x, g, eta=1.0, noise=rec)
    b = ds.sample_ddim(nonlinear_model, x, g, eta=1.0, noise=ds.ReplayNoise(rec.noises))
    assert torch.equal(a, b) and len(rec.noises) == 9  # no noise on the last step onto sigma = 0
    with pytest.raises(ValueError, match="noise source"):
        ds.sample_ddim(nonlinear_model, x, g, eta=1.0)


def test_ddim_inversion_round_trip_gaussian_many_steps():
    """Plain DDIM inversion's round-trip error is O(1/N) and shrinks with steps; with fixed-point refinement
    (exact inversion of each step) inversion then sampling reconstructs to ≤ 1e-6 (float64)."""
    d = 3
    mean = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
    cov = torch.tensor([[0.3, 0.1, 0.0], [0.1, 0.5, 0.05], [0.0, 0.05, 0.2]], dtype=torch.float64)
    errs = []
    for n in (100, 1000):
        ratio = 1000 // n
        g = ds.Grid.from_alphas_cumprod(torch.arange(n - 1, -1, -1) * ratio, sd_alphas_cumprod(), 1.0)
        model = gaussian_eps_model(mean, cov, levels(g))
        x0 = torch.randn(16, d, generator=torch.Generator().manual_seed(10), dtype=torch.float64) * 0.5 + mean
        traj = ds.invert_ddim(model, x0, g)
        errs.append(float((ds.sample_ddim(model, traj[0], g) - x0).abs().max()))
    assert errs[1] < 0.2 * errs[0]
    traj = ds.invert_ddim(model, x0, g, fixed_point_iters=30)
    assert float((ds.sample_ddim(model, traj[0], g) - x0).abs().max()) <= 1e-6


def test_samplers_keep_dtype_shape_and_device_of_the_state():
    g = sd_grid(5)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(2, 3, 4, 5, dtype=dtype, generator=torch.Generator().manual_seed(0))
        for out in (
            ds.sample_ddim(nonlinear_model, x, g, eta=1.0, noise=ds.GaussianNoise(0)),
            ds.sample_dpmpp(nonlinear_model, x, g, order=2, sde=True, noise=ds.GaussianNoise(0)),
            ds.invert_ddim(nonlinear_model, x, g)[0],
        ):
            assert out.dtype == dtype and out.shape == x.shape and out.device == x.device


def test_gaussian_noise_is_reproducible_from_seed():
    like = torch.zeros(3, 4)
    a = ds.GaussianNoise(11)(0, like)
    b = ds.GaussianNoise(11)(0, like)
    assert torch.equal(a, b) and not torch.equal(a, ds.GaussianNoise(12)(0, like))


def test_continuous_samplers_on_gaussian_reach_the_data_law():
    """Euler–Maruyama and Heun on VP-linear with the exact score of N(m, s²) end close to N(m, s²)."""
    bmin, bmax, m, s2 = 0.1, 20.0, 1.5, 0.25

    def alpha(t): return math.exp(-0.25 * t * t * (bmax - bmin) - 0.5 * t * bmin)
    def f(t): return -0.5 * (bmin + t * (bmax - bmin))
    def g2(t): return bmin + t * (bmax - bmin)
    def score(x, t):
        a = alpha(t)
        return -(x - a * m) / (a * a * s2 + 1 - a * a)

    times = torch.linspace(1.0, 1e-3, 500, dtype=torch.float64)
    x = torch.randn(20000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for out in (
        ds.probability_flow_heun(score, x, times, f, g2),
        ds.euler_maruyama(score, x, times, f, g2, ds.GaussianNoise(1)),
    ):
        assert abs(float(out.mean()) - m) < 0.03
        assert abs(float(out.var()) - s2) < 0.03


def _random_spd(d: int, seed: int, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return scale * (a @ a.T / d + 0.2 * torch.eye(d, dtype=torch.float64))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    d=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    n=st.sampled_from([3, 10, 25]),
    t0=st.sampled_from([0.3, 0.6, 1.0]),
    eta=st.sampled_from([0.3, 1.0]),
)
def test_one_step_pushforward_kl_properties(d, seed, n, t0, eta):
    """Every discrete step is affine-Gaussian: η = 0 keeps KL(q‖p) exactly (one bijection on both), η > 0 shrinks it."""
    g = sd_grid(n).tail(t0)
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(d, generator=gen, dtype=torch.float64)
    cov = _random_spd(d, seed + 1, 0.5)
    model = gaussian_eps_model(mean, cov, levels(g))
    a0, s0 = float(g.alphas[0]), float(g.sigmas[0])
    mp, cp = a0 * mean, a0 * a0 * cov + s0 * s0 * torch.eye(d, dtype=torch.float64)
    mq = mp + torch.randn(d, generator=gen, dtype=torch.float64)
    cq = _random_spd(d, seed + 2, 1.0)
    kl0 = kl_gauss(mq, cq, mp, cp)
    (m_q0, c_q0), (m_p0, c_p0) = (mq, cq), (mp, cp)
    (m_q1, c_q1), (m_p1, c_p1) = (mq, cq), (mp, cp)
    for i in range(g.num_steps):
        def step(x, e):
            a_t, s_t, a_s, s_s = g.alphas[i], g.sigmas[i], g.alphas[i + 1], g.sigmas[i + 1]
            return ds.ddim_step(x, model(x, g.timesteps[i]), a_t, s_t, a_s, s_s, e, torch.zeros_like(x))
        A0, b0 = affine_of(lambda x: step(x, 0.0), d)
        A1, b1 = affine_of(lambda x: step(x, eta), d)
        c2 = ds.ddim_sigma(g.alphas[i], g.sigmas[i], g.alphas[i + 1], g.sigmas[i + 1], eta) ** 2
        eye = torch.eye(d, dtype=torch.float64)
        m_q0, c_q0, m_p0, c_p0 = A0 @ m_q0 + b0, A0 @ c_q0 @ A0.T, A0 @ m_p0 + b0, A0 @ c_p0 @ A0.T
        kl_before = kl_gauss(m_q1, c_q1, m_p1, c_p1)
        m_q1, c_q1 = A1 @ m_q1 + b1, A1 @ c_q1 @ A1.T + c2 * eye
        m_p1, c_p1 = A1 @ m_p1 + b1, A1 @ c_p1 @ A1.T + c2 * eye
        kl_after = kl_gauss(m_q1, c_q1, m_p1, c_p1)
        if c2 > 0:
            assert kl_after < kl_before
        assert abs(kl_gauss(m_q0, c_q0, m_p0, c_p0) - kl0) <= 1e-7 * max(1.0, kl0)


def test_copy_paste_rule_1d_and_2d_with_overlap_and_borders():
    """Clean window (2r+1, centred). Target = α·P (written last, wins on overlap), source = β·P + √(1−β²)·z; windows shrink to fit both points."""
    x = torch.arange(10, dtype=torch.float64).reshape(1, 10)
    z = torch.full((1, 3), 0.5, dtype=torch.float64)
    out = ds.copy_paste(x, [(3,)], [(5,)], r=1, alpha=2.0, beta=0.6, noise=lambda k, like: z, preset="clean")
    p = x[0, 2:5].clone()
    torch.testing.assert_close(out[0, 4:7], 2.0 * p)                       # target window, overlap at index 4
    torch.testing.assert_close(out[0, 2:4], 0.6 * p[:2] + 0.8 * 0.5)       # source window outside the overlap
    assert torch.equal(out[0, 7:], x[0, 7:]) and torch.equal(out[0, :2], x[0, :2])
    img = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = ds.copy_paste(img, [(0, 6)], [(2, 7)], r=2, alpha=1.0, beta=1.0, preset="clean")  # beta = 1: no noise
    assert ds.patch_bounds((0, 6), (2, 7), 2, (8, 8)) == [(0, 2), (2, 0)]
    torch.testing.assert_close(out[..., 2:5, 5:8], img[..., 0:3, 4:7])
    with pytest.raises(ValueError):
        ds.copy_paste(img, [(0, 8)], [(1, 1)], r=1, beta=1.0)


@pytest.mark.parametrize("d,step,m", [(1.0, 2.0, 1), (2.0, 2.0, 1), (3.0, 2.0, 2), (5.0, 2.0, 3), (7.0, 2.0, 4),
                                      (20.0, 2.0, 10), (21.0, 2.0, 11), (2.9, 1.0, 3)])
def test_num_drag_steps_official_rule(d, step, m):
    assert ds.num_drag_steps(d, step) == m
