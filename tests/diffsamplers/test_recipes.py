"""The editing recipes (diffsamplers.recipes), each tested once on closed-form models, plus the preset rules
(window, path, operation count, ramps, official grids) they are built from."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings, strategies as st

import diffsamplers as ds
from diffsamplers import recipes
from gaussian_helpers import gaussian_eps_model, levels, vp_grid

F64 = torch.float64


def nonlinear_model(x, t, guidance: float = 1.0):
    return torch.tanh(0.8 * x + 0.05 * float(t)) * guidance + 0.1 * x.roll(1, dims=-1)


# ----------------------------------------------------------------------------------------- closed-form recipes
def test_sdedit_matches_the_gaussian_ode_map_and_sde_posterior():
    """Data N(μ, s²): the ODE maps x_t0 to μ + s (x_t0 − αμ)/√(α²s² + σ²); the SDE samples x_0 | x_t0."""
    mu, s2 = torch.tensor([0.7, -1.2], dtype=F64), torch.tensor([0.3, 1.5], dtype=F64)
    y = torch.tensor([[2.0, 1.0]], dtype=F64).expand(20000, 2)
    errs = []
    for n in (400, 1600):  # DDIM converges to the ODE map at first order
        grid = vp_grid(n, t_lo=0.0).tail(0.5)
        model = gaussian_eps_model(mu, torch.diag(s2), levels(grid))
        a, sig = float(grid.alphas[0]), float(grid.sigmas[0])
        ode = recipes.sdedit(model, y[:200], grid, "ode", ds.GaussianNoise(0))
        want = mu + s2.sqrt() * (ode.x_t0 - a * mu) / (a * a * s2 + sig * sig).sqrt()
        errs.append(float((ode.x - want).abs().max()))
    assert errs[1] < errs[0] / 3 and errs[1] < 4e-3, errs
    sde = recipes.sdedit(model, y, grid, "sde", ds.GaussianNoise(1)).x
    k = a * s2 / (a * a * s2 + sig * sig)
    mean = mu + k * a * (y[0] - mu)
    var = k * k * sig * sig + s2 * sig * sig / (a * a * s2 + sig * sig)
    se = (var / y.shape[0]).sqrt()
    assert ((sde.mean(0) - mean).abs() < 4 * se + 5e-3).all(), (sde.mean(0), mean)
    assert ((sde.var(0) / var - 1).abs() < 0.05).all(), (sde.var(0), var)


@pytest.mark.parametrize("renoise", ["fixed", "fresh"])
def test_inpaint_keeps_known_exactly_and_hole_follows_the_conditional(renoise):
    """Independent coordinates: the exact conditional of the hole is its marginal N(μ_1, s_1²)."""
    mu, s2 = torch.tensor([0.5, -1.0]), torch.tensor([0.4, 0.25])
    grid = vp_grid(1000, t_lo=0.0)
    model = gaussian_eps_model(mu.double(), torch.diag(s2.double()), levels(grid))
    n = 20000
    y0 = torch.stack([torch.full((n,), 0.3), torch.full((n,), 5.0)], 1).double()  # hole content must not matter
    known = torch.tensor([True, False])
    res = recipes.inpaint(model, y0, known, grid, "sde", ds.GaussianNoise(2), fill=0.0, renoise=renoise)
    assert torch.equal(res.x[:, 0], y0[:, 0])
    hole = res.x[:, 1]
    assert abs(float(hole.mean()) - float(mu[1])) < 4 * math.sqrt(float(s2[1]) / n) + 5e-3
    assert abs(float(hole.var()) / float(s2[1]) - 1) < 0.06  # 1 % sampling error + the sampler's O(1/N) bias
    assert torch.equal(res.mask, ~known)


def test_inpaint_start_noise_is_the_first_draw():
    grid = vp_grid(5)
    y0 = torch.randn(3, 4, dtype=F64)
    z = ds.GaussianNoise(9)(0, y0)
    res = recipes.inpaint(nonlinear_model, y0, torch.ones(4, dtype=torch.bool), grid, "ode", ds.GaussianNoise(9),
                          start="noise")
    assert torch.equal(res.x_t0, z) and torch.equal(res.x, y0)


def test_round_trips_of_every_recipe_that_encodes_float64():
    x0 = torch.randn(2, 3, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    grid = vp_grid(12).tail(0.6)
    rec = recipes.reconstruct(nonlinear_model, x0, grid, "sde", ds.GaussianNoise(1))
    assert (rec.x - x0).abs().max() <= 1e-10
    rec_ode = recipes.reconstruct(nonlinear_model, x0, grid, "ode", fixed_point_iters=30)
    assert (rec_ode.x - x0).abs().max() <= 1e-8
    everywhere = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    de = recipes.diffedit(nonlinear_model, nonlinear_model, x0, everywhere, grid, "sde", ds.GaussianNoise(2))
    assert (de.x - x0).abs().max() <= 1e-10
    nowhere = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    other = lambda x, t: nonlinear_model(x, t, guidance=3.0)  # noqa: E731
    for sampler in ("ode", "sde"):
        de = recipes.diffedit(nonlinear_model, other, x0, nowhere, grid, sampler, ds.GaussianNoise(3))
        assert torch.equal(de.x, x0)
    dr = recipes.drag(nonlinear_model, x0, grid, [(1, 1), (4, 2)], [(5, 5), (1, 4)], noise=ds.GaussianNoise(4),
                      paste=False)
    assert len(dr.intermediates) == 3 and (dr.x - x0).abs().max() <= 1e-10


def test_drag_schedules_reach_the_model_by_backward_step_and_mask_reset():
    x0 = torch.randn(1, 2, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(5))
    grid = vp_grid(10).tail(0.5)
    seen = []

    def model(x, t, guidance):
        seen.append((float(t), guidance))
        return nonlinear_model(x, t, guidance)

    keep = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    keep[..., :, :5] = True
    res = recipes.drag(model, x0, grid, [(3, 1)], [(3, 3)], noise=ds.GaussianNoise(6), mask=keep, r=1,
                       schedules={"guidance": lambda k, n: 10.0 * k + n})
    n = grid.num_steps
    assert len(res.ops) == 1 and res.ops[0].sources == [(3, 1)] and res.ops[0].targets == [(3, 3)]
    assert {v for _, v in seen} == {10.0 * k + n for k in range(n)}
    assert all(v == 10.0 * k + n for k in range(n) for t, v in seen if t == float(grid.timesteps[k]))
    assert torch.equal(res.x[~keep.expand_as(x0)], x0[~keep.expand_as(x0)])
    assert (res.x - x0).abs().max() > 1e-3


def test_one_sampler_vocabulary():
    with pytest.raises(ValueError, match="sampler"):
        recipes.check_sampler("cycle")
    with pytest.raises(ValueError, match="eta"):
        recipes.check_sampler("sde", eta=1.5)
    with pytest.raises(ValueError, match="eta"):
        recipes.check_sampler("sde", solver="dpmpp", eta=0.5)
    for fn in (lambda: recipes.reconstruct(nonlinear_model, torch.zeros(1, 2), vp_grid(3), "ODE"),
               lambda: recipes.drag(nonlinear_model, torch.zeros(1, 4), vp_grid(3), [(0,)], [(2,)], sampler="sde=1")):
        with pytest.raises(ValueError):
            fn()


def test_diffedit_mask_is_diffusers_rule():
    """|ε_t − ε_s| averaged over draws and channels, clamped at 3× its mean, scaled, > 0.5."""
    x0 = torch.zeros(2, 3, 4, 4, dtype=F64)
    bump = torch.zeros(1, 1, 4, 4, dtype=F64)
    bump[..., 1:3, 0:2] = 1.0
    src = lambda x, t: torch.zeros_like(x)  # noqa: E731
    tgt = lambda x, t: torch.cat([bump.expand(1, 3, 4, 4), 0.2 * bump.expand(1, 3, 4, 4)]).repeat(x.shape[0] // 2, 1, 1, 1)  # noqa: E731
    m = recipes.diffedit_mask(src, tgt, x0, vp_grid(4), ds.GaussianNoise(0), draws=3)
    assert m.shape == (2, 1, 4, 4) and m.dtype == torch.bool
    assert torch.equal(m[0, 0], bump[0, 0] > 0) and torch.equal(m[1, 0], bump[0, 0] > 0)  # per-sample scaling


# ------------------------------------------------------------------------------------------------ preset rules
class Const:
    def __init__(self, v):
        self.v, self.calls = v, []

    def __call__(self, i, like):
        self.calls.append((i, tuple(like.shape)))
        return torch.full_like(like, self.v)


def test_official_window_is_2r_half_open_and_clean_is_centred():
    lat = torch.arange(2 * 20 * 24, dtype=F64).reshape(1, 2, 20, 24)
    src, tgt, r = (7, 6), (10, 15), 2  # (row, col)
    off = ds.copy_paste(lat, [src], [tgt], r, 1.1, 0.3, Const(0.5), preset="official")
    patch = lat[..., 5:9, 4:8]  # [p - r, p + r): 4 x 4, the handle pixel at offset (2, 2)
    assert torch.equal(off[..., 8:12, 13:17], 1.1 * patch)
    assert torch.allclose(off[..., 5:9, 4:8], 0.3 * patch + math.sqrt(0.91) * 0.5)
    changed = torch.zeros_like(lat, dtype=torch.bool)
    changed[..., 5:9, 4:8] = changed[..., 8:12, 13:17] = True
    assert torch.equal(off[~changed], lat[~changed])
    cl = ds.copy_paste(lat, [src], [tgt], r, 1.1, 0.3, Const(0.5), preset="clean")
    assert torch.equal(cl[..., 8:13, 13:18], 1.1 * lat[..., 5:10, 4:9])  # 5 x 5 centred on the points
    # borders: the window shrinks to fit both points; the official one then excludes the handle row itself
    assert ds.patch_bounds((19, 0), (17, 3), 5, (20, 24)) == [(5, 0), (0, 5)]
    noise = Const(0.0)
    out = ds.copy_paste(lat, [(19, 0)], [(17, 3)], 5, 2.0, 0.5, noise, preset="official")
    assert noise.calls == [(0, (1, 2, 5, 5))]
    assert torch.equal(out[..., 12:17, 3:8], 2.0 * lat[..., 14:19, 0:5]) and torch.equal(out[..., 19, :], lat[..., 19, :])
    assert torch.equal(ds.copy_paste(lat, [src], [tgt], 0, 2.0, 0.5, Const(1.0)), lat)  # r = 0: empty window


@pytest.mark.parametrize("preset", ["official", "clean"])
def test_path_and_operation_count(preset):
    # the example: float64 gives int(15/22 * 44) = 29; float32 (official) and exact integers give 30
    assert int(15 / 22 * 44) == 29
    ops = ds.drag_path([(0, 0)], [(0, 44)], 22, preset)
    assert ops[14][1] == [(0, 30)]
    src, tgt = [(0, 0), (10, 10)], [(3, 4), (10, 12)]  # distances 5 and 2 -> D = 5 -> m = 2 at step 2.5
    assert ds.num_drag_ops(src, tgt, 2.5, preset) == 2
    ops = ds.drag_path(src, tgt, 2, preset)
    assert ops[0] == ([(0, 0), (10, 10)], [(1, 2), (10, 11)]) and ops[1] == ([(1, 2), (10, 11)], [(3, 4), (10, 12)])
    assert ds.drag_path([(5, 5)], [(2, 5)], 2, preset)[0][1] == [(4, 5)]  # truncation toward zero
    for d, step, m in [(1, 2.0, 1), (2, 2.0, 1), (3, 2.0, 2), (5, 2.0, 3), (7, 2.0, 4), (20, 2.0, 10), (21, 2.0, 11)]:
        assert ds.num_drag_ops([(0, 0)], [(0, d)], step, preset) == m == ds.num_drag_steps(float(d), step)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 40), st.integers(-40, 40), st.integers(-40, 40), st.integers(-40, 40)),
                min_size=1, max_size=3), st.integers(1, 30))
def test_path_properties(pairs, m):
    """Both presets start at the sources, end at the targets, chain the operations, and the clean path is
    trunc(i·d/m) exactly; the official one differs from it by at most one pixel."""
    src = [(a, b) for a, b, _, _ in pairs]
    tgt = [(c, d) for _, _, c, d in pairs]
    for preset in ("official", "clean"):
        ops = ds.drag_path(src, tgt, m, preset)
        assert ops[0][0] == src and ops[-1][1] == tgt and all(ops[i][1] == ops[i + 1][0] for i in range(m - 1))
    clean, official = ds.drag_path(src, tgt, m, "clean"), ds.drag_path(src, tgt, m, "official")
    for i in range(m):
        for (a, b), (c, d), p, q in zip(src, tgt, clean[i][0], official[i][0]):
            exact = tuple(v + int(Fraction(i * (w - v), m)) for v, w in ((a, c), (b, d)))
            assert p == exact and max(abs(x - y) for x, y in zip(p, q)) <= 1


@pytest.mark.parametrize("preset", ["official", "clean"])
def test_ramps(preset):
    n = 120
    lin, cos = ds.linear_ramp(1.0, 3.0, preset), ds.cosine_ramp(1.0, 0.5, preset)
    if preset == "clean":
        assert lin(0, n) == 3.0 and lin(n - 1, n) == 1.0 and cos(0, n) == pytest.approx(0.5) and cos(n - 1, n) == 1.0
    else:  # official scale_schedule(1, 3, j, K-1) with j = K - k
        assert lin(0, n) == 1 + 2 * n / (n - 1) and lin(n - 1, n) == 1 + 2 * 1 / (n - 1)
        assert cos(n - 1, n) == (1 - (1 - math.cos(math.pi / (n - 1))) / 2) + (1 - math.cos(math.pi / (n - 1))) / 2 * 0.5
    assert all(lin(k, n) > lin(k + 1, n) for k in range(n - 1))


def _sd_alphas_cumprod():
    return torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=F64) ** 2, 0)


def test_official_grids_reproduce_the_uneven_timestep_list():
    import numpy as np

    ts = torch.from_numpy(np.linspace(0, 999, 201).round()[::-1][:-1].copy().astype(np.int64))  # DPM-Solver++ list
    ac = _sd_alphas_cumprod()
    back, fwd = ds.official_grids(ts, ac, 0.6, 1000)
    assert back.num_steps == fwd.num_steps == 120 and int(back.timesteps[0]) == int(ts[79]) == 604
    k = [int(t) for t in back.timesteps].index(504)
    a_t, s_t, a_s, s_s = back.step(k)
    assert float(a_s) ** 2 == pytest.approx(float(ac[499]), abs=1e-15)   # 504 -> 499 ...
    assert float(back.alphas[k + 1]) ** 2 == pytest.approx(float(ac[500]), abs=1e-15)  # ... then starts at 500
    assert not back.consistent and float(back.alphas[-1]) ** 2 == pytest.approx(float(ac[5]))  # ends at ᾱ[5]
    fa_t, _, fa_s, _ = fwd.step(k)  # the forward kernel paired with it: 500 -> 505
    assert (float(fa_s) ** 2, float(fa_t) ** 2) == pytest.approx((float(ac[500]), float(ac[505])))
    back45, _ = ds.official_grids(ts, ac, 0.45, 1000)
    assert back45.consistent and back45.num_steps == 90
    with pytest.raises(ValueError):
        ds.official_grids(ts, ac, 1.0, 1000)


def test_cycle_sde_replay_is_exact_on_an_inconsistent_grid():
    import numpy as np

    ts = torch.from_numpy(np.linspace(0, 999, 21).round()[::-1][:-1].copy().astype(np.int64))
    back, fwd = ds.official_grids(ts, _sd_alphas_cumprod(), 0.7, 1000)
    assert not back.consistent
    x0 = torch.randn(2, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    model = lambda x, t: torch.sin(x + 1e-3 * float(t))  # noqa: E731
    tr = ds.cycle_encode(model, x0, back, ds.GaussianNoise(1), forward_grid=fwd)
    assert (ds.cycle_replay(model, tr.chain[0], back, tr.noises) - x0).abs().max() <= 1e-10


def test_method_label_is_the_one_name():
    """One label function for method names in metadata and figures (the same words the JSON always had)."""
    from diffsamplers.presets import method_label

    assert method_label("drag", "sde") == "SDE-Drag" and method_label("drag", "ODE") == "ODE-Drag"
    assert method_label("drag", "hybrid-late") == "hybrid-late"
    assert method_label("sample", "ode") == "DDIM (ODE)" and method_label("sample", "sde") == "DDPM (SDE)"
    assert method_label("sample", "sde", eta=0.5) == "DDIM eta=0.5"
    assert method_label("sample", "sde", "dpmpp", 2) == "SDE-DPM-Solver++ order 2"
    assert method_label("edit", "sde") == "Cycle-SDE (SDE)"
    assert method_label("edit", "ode", "dpmpp", 2) == "DPM-Solver++ (2M) inversion + DPM-Solver++ (ODE)"
    with pytest.raises(ValueError):
        method_label("paint", "sde")
