"""The fast preset's solvers: SDE-DPM-Solver++ (1, 2M) with exact Cycle-SDE record/replay, DPM-Solver++ (2M)
inversion and sampling, and per-step η hybrids — each step against diffusers' schedulers given the same noise."""
from __future__ import annotations

import math

import pytest
import torch

import diffsamplers as ds
from diffsamplers import recipes


@pytest.fixture(autouse=True, scope="module")
def _float64_default():
    """float64 by default inside this module only: a module-level ``set_default_dtype`` leaked into every test
    collected with it (the sdimage equivalences then ran their tiny models in float64 and failed)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _model(x: torch.Tensor, t) -> torch.Tensor:
    """A fixed nonlinear ε-model depending on x and the label."""
    s = float(t) / 1000.0 if float(t) >= 0 else 0.0
    return torch.tanh(0.7 * x + 0.3 * torch.roll(x, 1, -1)) * (1.0 + 0.5 * s) + 0.1 * s


def _flow_model(x: torch.Tensor, t):
    """A velocity model wrapped as the flow backbones do (valid at σ = 1)."""
    sigma = float(t)
    v = torch.tanh(0.6 * x - 0.2 * torch.roll(x, 1, -1)) + 0.3 * sigma
    return ds.flow_prediction(x, v, sigma)


def _vp_grid(steps: int = 30) -> ds.Grid:
    from diffusers import DDIMScheduler

    s = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                      set_alpha_to_one=False, steps_offset=1)
    s.set_timesteps(steps)
    return ds.Grid.from_alphas_cumprod(s.timesteps, s.alphas_cumprod, s.final_alpha_cumprod)


def _flow_grid(steps: int = 24) -> ds.Grid:
    sig = torch.linspace(1.0, 0.0, steps + 1)
    sig = 3.0 * sig / (1 + 2.0 * sig)  # SD3's shift 3
    return ds.Grid.from_flow_sigmas(sig)


GRIDS = {"vp": (_vp_grid, _model), "flow": (_flow_grid, _flow_model)}


@pytest.mark.parametrize("kind", sorted(GRIDS))
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("t0", [0.35, 0.6, 1.0])
def test_dpmpp_record_replay_is_exact(kind, order, t0):
    make, model = GRIDS[kind]
    grid = make().tail(t0)
    x0 = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(11))
    tr = ds.cycle_encode(model, x0, grid, ds.GaussianNoise(3), solver="dpmpp", order=order)
    assert tr.solver == "dpmpp" and tr.order == order and len(tr.noises) == grid.num_steps
    rec = ds.cycle_replay(model, tr.chain[0], grid, tr.noises, solver="dpmpp", order=order)
    assert (rec - x0).abs().max() <= 1e-10
    # the reconstruction passes through every recorded state (not only the end point)
    seen = []
    ds.cycle_replay(model, tr.chain[0], grid, tr.noises, solver="dpmpp", order=order,
                    post_step=lambda i, x: seen.append(x) or x)
    assert max(float((a - b).abs().max()) for a, b in zip(seen, tr.chain[1:])) <= 1e-10


def test_dpmpp_order2_replay_differs_from_order1_and_ddim_on_an_edit():
    """2M is a different step: on an edited start the three replays disagree (the test above is not vacuous)."""
    grid = _vp_grid().tail(0.6)
    x0 = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    outs = []
    for solver, order in (("ddim", 1), ("dpmpp", 1), ("dpmpp", 2)):
        tr = ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(5), solver=solver, order=order)
        outs.append(ds.cycle_replay(_model, tr.chain[0] + 0.3, grid, tr.noises, solver=solver, order=order))
    assert (outs[0] - outs[1]).abs().max() < 1e-9       # SDE-DPM-Solver++ order 1 is DDPM (η = 1)
    assert (outs[1] - outs[2]).abs().max() > 1e-3


def test_sde_dpmpp_order1_noises_equal_ddpm_noises():
    grid = _vp_grid().tail(0.6)
    x0 = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(4))
    a = ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(8), solver="ddim")
    b = ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(8), solver="dpmpp", order=1)
    assert max(float((u - v).abs().max()) for u, v in zip(a.noises, b.noises)) < 1e-9


def _diffusers_sched(algorithm: str, steps: int, inverse: bool = False):
    from diffusers import DPMSolverMultistepInverseScheduler, DPMSolverMultistepScheduler

    cls = DPMSolverMultistepInverseScheduler if inverse else DPMSolverMultistepScheduler
    s = cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, algorithm_type=algorithm,
            solver_order=2)
    s.set_timesteps(steps)
    return s


def _grid_from_sigmas(sig: torch.Tensor, labels: torch.Tensor) -> ds.Grid:
    """VP (α, σ) from diffusers' σ_k = √((1 − ᾱ)/ᾱ): α = 1/√(1 + σ²), σ_vp = σ α."""
    s = sig.to(torch.float64)
    a = 1.0 / torch.sqrt(1.0 + s * s)
    return ds.Grid(labels, a, s * a)


@pytest.mark.parametrize("algorithm", ["dpmsolver++", "sde-dpmsolver++"])
@pytest.mark.parametrize("steps", [8, 20])
def test_dpmpp_sampling_equals_diffusers_step_by_step(algorithm, steps):
    sched = _diffusers_sched(algorithm, steps)
    ts = sched.timesteps
    grid = _grid_from_sigmas(sched.sigmas, torch.cat([ts.to(torch.float64), torch.tensor([-1.0])]))
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float32)
    zs = [torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float32) for _ in range(steps)]
    x = x_T.clone()
    ref = []
    for i, t in enumerate(ts):
        kw = {"variance_noise": zs[i]} if algorithm.startswith("sde") else {}
        x = sched.step(_model(x, int(t)).float(), t, x, **kw).prev_sample
        ref.append(x.double())
    sde = algorithm.startswith("sde")
    ours = []
    out = ds.sample_dpmpp(_model, x_T.double(), grid, order=2, sde=sde,
                          noise=ds.ReplayNoise([z.double() for z in zs]) if sde else None,
                          post_step=lambda i, xs: ours.append(xs) or xs)
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert (a - b).abs().max() <= 2e-4 * (1 + b.abs().max()), f"step {i}"
    # and the Cycle-SDE replay of those same noises is that same sampler, to round-off
    if sde:
        ws = [z.double() for z in zs[:-1]] + [torch.zeros_like(x_T.double())]  # the step onto σ = 0: no noise
        rep = ds.cycle_replay(_model, x_T.double(), grid, ws, solver="dpmpp", order=2)
        assert (rep - out).abs().max() <= 1e-12


def test_dpmpp_inversion_equals_diffusers_inverse_scheduler():
    """Order-2 inversion against ``DPMSolverMultistepInverseScheduler`` (a label-free model, since the two call the
    model with different labels; the update and the x̂_0 conversion are what is compared)."""
    steps = 20
    sched = _diffusers_sched("dpmsolver++", steps, inverse=True)
    model = lambda x, t: torch.tanh(0.8 * x) + 0.05 * torch.roll(x, 1, -1)  # noqa: E731
    sig = torch.flip(sched.sigmas, [0])                                     # noisy -> clean
    grid = _grid_from_sigmas(sig, torch.arange(steps + 1, 0, -1).to(torch.float64))
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    x = x0.clone()
    ref = []
    for t in sched.timesteps:
        x = sched.step(model(x, t).float(), t, x).prev_sample
        ref.append(x.double())
    traj = ds.invert_dpmpp(model, x0.double(), grid, order=2)
    ours = [traj[steps - 1 - k] for k in range(steps)]
    for k, (a, b) in enumerate(zip(ours, ref)):
        assert (a - b).abs().max() <= 2e-4 * (1 + b.abs().max()), f"step {k}"


def test_dpmpp_inversion_first_step_is_ddim_inversion():
    grid = _vp_grid().tail(0.7)
    x0 = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    a = ds.invert_ddim(_model, x0, grid)
    b = ds.invert_dpmpp(_model, x0, grid, order=2)
    n = grid.num_steps
    assert torch.equal(a[n - 1], b[n - 1]) and (a[0] - b[0]).abs().max() > 1e-4


def _gaussian_models(mu: torch.Tensor, var: float):
    """Exact ε (VP, SD's ᾱ by label) and exact flow prediction (label σ) of data N(mu, var I)."""
    from diffusers import DDIMScheduler

    ac = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod.double()

    def vp(x, t):
        abar = ac[int(t)] if int(t) >= 0 else ac[0]
        a, s = abar.sqrt(), (1 - abar).sqrt()
        return s * (x - a * mu) / (a * a * var + s * s)

    def flow(x, t):
        s = float(t)
        a = 1.0 - s
        x0 = mu + a * var * (x - a * mu) / (a * a * var + s * s)   # E[x0 | x_t]
        return ds.Prediction((x - a * x0) / s if s > 0 else torch.zeros_like(x), x0)

    return {"vp": vp, "flow": flow}


@pytest.mark.parametrize("kind", sorted(GRIDS))
@pytest.mark.parametrize("steps", [10, 20])
def test_dpmpp2_ode_reconstruction_beats_ddim_at_equal_steps(kind, steps):
    """With an exact model (Gaussian data), 2M inversion + 2M sampling round-trips several times closer than DDIM
    inversion + DDIM at the same number of steps: the point of the fast ODE."""
    mu = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    model = _gaussian_models(mu, 0.3)[kind]
    grid = GRIDS[kind][0](steps).tail(0.6)
    x0 = mu + 0.3 ** 0.5 * torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(9))
    err = {}
    for solver in ("ddim", "dpmpp"):
        r = recipes.reconstruct(model, x0, grid, "ode", solver=solver, order=2).x
        err[solver] = float((r - x0).norm() / x0.norm())
    assert err["dpmpp"] < 0.5 * err["ddim"], err


def test_hybrid_eta_zero_is_ode_and_one_is_sde_exactly():
    grid = _vp_grid().tail(0.6)
    n = grid.num_steps
    x0 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[..., 1:7, 1:7] = True
    kw = dict(sources=[(2, 2)], targets=[(5, 4)], mask=mask, r=2)
    ode = recipes.drag(_model, x0, grid, sampler="ode", noise=ds.GaussianNoise(1), **kw).x
    h0 = recipes.drag(_model, x0, grid, sampler="sde", noise=ds.GaussianNoise(1), eta=[0.0] * n, **kw).x
    assert torch.equal(ode, h0)
    sde = recipes.drag(_model, x0, grid, sampler="sde", noise=ds.GaussianNoise(1), **kw).x
    h1 = recipes.drag(_model, x0, grid, sampler="sde", noise=ds.GaussianNoise(1), eta=[1.0] * n, **kw).x
    assert torch.equal(sde, h1)
    late = [0.0] * (n // 2) + [1.0] * (n - n // 2)  # SDE only late
    hl = recipes.drag(_model, x0, grid, sampler="sde", noise=ds.GaussianNoise(1), eta=late, **kw).x
    assert (hl - ode).abs().max() > 1e-3 and (hl - sde).abs().max() > 1e-3


def test_hybrid_counts_and_checks():
    grid = _vp_grid().tail(0.6)
    n = grid.num_steps
    calls = []
    model = lambda x, t: calls.append(t) or _model(x, t)  # noqa: E731
    x0 = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    eta = [0.0, 0.5] * (n // 2) + [1.0] * (n % 2)
    tr = ds.cycle_encode(model, x0, grid, ds.GaussianNoise(0), eta=eta)
    zeros = sum(e == 0 for e in eta)
    assert len(calls) == zeros + (n - zeros)  # one inversion call per ODE step, one record call per SDE step
    assert [w is None for w in tr.noises] == [e == 0 for e in eta]
    with pytest.raises(ValueError, match="eta values"):
        ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(0), eta=[1.0] * (n - 1))
    with pytest.raises(ValueError, match="markov"):
        ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(0), eta=[0.0] * n, variant="posterior")
    with pytest.raises(ValueError, match="ddim solver"):
        ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(0), eta=[0.5] * n, solver="dpmpp")
    with pytest.raises(ValueError, match="solver"):
        ds.cycle_encode(_model, x0, grid, ds.GaussianNoise(0), solver="heun")


def test_drag_on_step_sees_paste_and_every_decoding_step():
    grid = _vp_grid(20).tail(0.5)
    x0 = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    res = recipes.drag(_model, x0, grid, [(2, 2)], [(2, 6)], sampler="sde", noise=ds.GaussianNoise(0), r=1,
                       step_size=2.0, preset="clean", solver="dpmpp", on_step=lambda i, k, x: seen.append((i, k, x)))
    m = len(res.ops)
    assert m == 2
    assert [(i, k) for i, k, _ in seen] == [(i, k) for i in range(m) for k in range(-1, grid.num_steps)]
    assert torch.equal(seen[0][2], res.x_t0) and torch.equal(seen[-1][2], res.x)
