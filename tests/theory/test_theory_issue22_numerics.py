"""Issue 22, second pass: the fused compiled diagnostics equal the numpy ones, the product rule for int 1/2 g^2 F,
the KL(t_end) error that falls with the cells again (exact p where p's grid value is round-off), the quintic
remap, and the 2-D compiled step without log p (compiled sweeps) against the plain step."""
import numpy as np
import pytest

from theory.cases import random_configs
from theory.config import config_from_dict
from theory.fokker_planck import Grid1D, Grid2D, _remap_lines, _solve_many, evolve_pair, reverse_drift
from theory.fp_compiled import diag_state
from theory.fp_diagnostics import block_diagnostics
from theory.marginal_many import attach_many
from theory.mixtures import GaussianMixture
from theory.reversal import reversal_kl_trapezoid_1d
from theory.schedules import schedule_from_dict
from theory.timegrid import (FisherQuadrature, integrate_half_g2_fisher, psi_table, schedule_time_grid,
                             _phi_parts)
from theory.verify import auto_grid, narrowest_variance


class _LogP:
    """log p_t of a 1-D or 2-D Gaussian as a callable (block_diagnostics' log_p)."""

    def __init__(self, var):
        self.var = var

    def __call__(self, x, t):
        return -0.5 * (x ** 2).sum(axis=1) / (self.var + t) - 0.5 * x.shape[1] * np.log(2 * np.pi * (self.var + t))


@pytest.mark.parametrize("shape", [(61,), (24, 30)])
def test_fused_diagnostics_equal_numpy(shape):
    """fp_compiled.diag_state (fused into the compiled loops) against fp_diagnostics.block_diagnostics: KL, F and
    masses of random-ish states with far tails (the blend of grid and exact log p, the left-out cells)."""
    rng = np.random.default_rng(len(shape))
    if len(shape) == 1:
        grid = Grid1D(-5.0, 5.0, shape[0])
    else:
        grid = Grid2D((-5.0, -4.0), (5.0, 4.5), shape)
    x = grid.points()
    log_p = _LogP(0.4)
    times = np.array([0.3, 0.1, 0.02])
    states = np.empty((3, 2) + grid.shape)
    for k, t in enumerate(times):
        p = np.exp(log_p(x, t)).reshape(grid.shape)
        q = np.exp(log_p(x - 0.7, t + 0.2)).reshape(grid.shape) * (1 + 0.1 * rng.random(grid.shape))
        states[k] = [q, p]
    masses0 = np.array([1.0, 1.0])
    kl, fi, mass = block_diagnostics(states, times, grid, log_p, masses0)
    nx, ny = (shape[0], 1) if len(shape) == 1 else shape
    hx, hy = (grid.h, 1.0) if len(shape) == 1 else grid.spacing
    N = nx * ny
    for k, t in enumerate(times):
        out = np.empty(4)
        diag_state(states[k, 0].reshape(nx, ny), states[k, 1].reshape(nx, ny), log_p(x, t).reshape(nx, ny), hx, hy,
                   np.empty((nx, ny)), np.empty((nx, ny)), np.empty((nx, ny)), np.empty(N, np.bool_), np.empty(N),
                   np.empty(N), out)
        assert abs(out[0] - kl[k]) <= 1e-12 * abs(kl[k])
        assert abs(out[1] - fi[k]) <= 1e-12 * abs(fi[k])
        assert abs(max(abs(out[2] - 1.0), abs(out[3] - 1.0)) - mass[k]) <= 1e-14


def test_product_rule_exact_for_polynomials_in_phi_and_better_than_simpson():
    """F = a polynomial of degree <= 5 in the time-grid variable phi: the product rule is exact up to its 8-point
    Gauss-Legendre in t (5e-10 here, against 40 points); on 8 intervals of a smooth F it beats Simpson in phi
    100-fold."""
    sch = schedule_from_dict({"kind": "ve"})
    t0, te, c = 0.33, 0.013, 0.18
    psi = psi_table(sch, t0, te, c)
    ts = schedule_time_grid(sch, t0, te, 8, stiff_var=c, psi=psi)
    phi_of = lambda t: _phi_parts(sch, t0, te, t, 0.2, c, psi=psi)[0]   # noqa: E731
    coef = np.array([0.3, -1.0, 2.0, 0.5, -0.7, 0.2])
    F = lambda t: np.polyval(coef, phi_of(t))                            # noqa: E731
    gx, gw = np.polynomial.legendre.leggauss(40)
    exact = 0.0
    for a, b in zip(ts[:-1], ts[1:]):
        tt = 0.5 * (a + b) + 0.5 * (a - b) * gx
        exact += 0.5 * (a - b) * np.sum(gw * 0.5 * sch.g2(tt) * F(tt))
    got = FisherQuadrature(ts, sch, t0, te, stiff_var=c, psi=psi).integral(F(ts))
    assert abs(got - exact) <= 1e-8 * abs(exact)
    assert abs(integrate_half_g2_fisher(ts[::-1], F(ts[::-1]), sch, t0, te, stiff_var=c, psi=psi) - got) \
        <= 1e-13 * abs(exact)
    # a smooth F whose weight 1/2 g^2 / phi' is steep late in the path (VE: phi' switches to the stiffness part)
    Fs = lambda t: 1.0 + 0.1 * np.sin(3 * phi_of(t))                      # noqa: E731
    ref = 0.0
    fine = schedule_time_grid(sch, t0, te, 512, stiff_var=c, psi=psi)
    fx, fw = np.polynomial.legendre.leggauss(10)
    for a, b in zip(fine[:-1], fine[1:]):
        tt = 0.5 * (a + b) + 0.5 * (a - b) * fx
        ref += 0.5 * (a - b) * np.sum(fw * 0.5 * sch.g2(tt) * Fs(tt))
    prod = integrate_half_g2_fisher(ts, Fs(ts), sch, t0, te, stiff_var=c, psi=psi)
    simp = integrate_half_g2_fisher(ts, Fs(ts), sch, t0, te, stiff_var=c, psi=psi, rule="simpson")
    assert abs(prod - ref) * 100 <= abs(simp - ref)


def _kl_end_error(case, cells, steps):
    c = random_configs(1, 12, 0)[case]
    cfg = config_from_dict(c)
    sch, data = cfg.schedule, cfg.data
    grid = auto_grid(cfg, (cells,))
    x = grid.points()
    score, log_p = attach_many(lambda xx, t: data.marginal(sch, t).score(xx),
                               lambda xx, t: data.marginal(sch, t).log_prob(xx), data, sch)
    r = evolve_pair(np.exp(cfg.edited.log_prob(x)), np.exp(data.marginal(sch, cfg.t0).log_prob(x)), grid, sch,
                    score, cfg.t0, cfg.t_end, "sde", n_steps=steps, log_p=log_p, stiff_var=narrowest_variance(data))
    ref = reversal_kl_trapezoid_1d(sch, data, cfg.edited, cfg.t0, (cfg.t0, cfg.t_end))
    return abs(r.kl_end - ref[1]) / ref[0]


def test_narrow_case_kl_error_falls_with_the_cells():
    """Random 1-D case 7 (a component of variance 0.056, KL(t0) = 4.2): the KL(t_end) error kept growing with the
    cells at 128 steps (800: 2.0e-6, 1600: 6.4e-6, 3200: 1.4e-5 of KL(t0)) because q log(q / p_grid) weighed p's
    round-off tail (p ~ 1e-12 where q ~ 1e-6) -- now 7e-7, 5e-8, 4e-9; and the quintic remap took 400 cells from
    1.4e-5 to 5e-7."""
    e = [_kl_end_error(7, n, 128) for n in (400, 800, 1600)]
    assert e[0] <= 2e-6 and e[1] <= 2e-6 and e[2] <= 3e-7
    assert e[2] < e[1]


def test_quintic_remap_exact_translation_of_a_quartic_density():
    """A uniform shift of a smooth density: the remap of the cell averages keeps mass to round-off, stays >= 0, and
    is 5th-order accurate where the density is resolved (error against the exact shifted cell averages falls by
    >= 20x when h halves)."""
    errs = []
    for n in (80, 160):
        lo, hi = -6.0, 6.0
        h = (hi - lo) / n
        edges = np.linspace(lo, hi, n + 1)
        cdf = lambda y: 0.5 * (1 + np.vectorize(__import__("math").erf)(y / np.sqrt(2)))   # noqa: E731
        avg = np.diff(cdf(edges)) / h
        shift = 0.37 * h + 0.21
        new = _remap_lines(avg[None, :], edges - shift, lo, h)[0]
        exact = np.diff(cdf(edges - shift)) / h
        assert abs(new.sum() - avg.sum()) * h <= 1e-14 and new.min() >= 0.0
        errs.append(np.abs(new - exact)[n // 4:3 * n // 4].max())
    assert errs[0] / errs[1] >= 20.0


def test_2d_learned_score_compiled_sweeps_equal_plain():
    """2-D without log p (a learned score: the 3-point heat step, the two-grid Fisher): the compiled sweeps
    (fp_compiled.sweep_rows / sweep_cols) and the plain remap, same scheme, agree to round-off."""
    sch = schedule_from_dict({"kind": "vp-linear"})
    data = GaussianMixture(np.array([0.5, 0.5]), np.array([[-1.0, 0.0], [1.0, 0.5]]),
                           np.array([[[0.2, 0.05], [0.05, 0.2]], [[0.15, 0.0], [0.0, 0.25]]]))
    grid = Grid2D((-5.0, -5.0), (5.0, 5.0), (40, 36))
    x = grid.points()
    q0 = np.exp(-0.5 * ((x[:, 0] - 0.3) ** 2 + (x[:, 1] + 0.2) ** 2) / 0.6).reshape(grid.shape)
    p0 = np.exp(data.marginal(sch, 0.5).log_prob(x)).reshape(grid.shape)
    drift, g2 = reverse_drift(sch, lambda xx, t: data.marginal(sch, t).score(xx), "sde")
    ts = np.geomspace(0.5, 0.01, 9)
    out = [np.array(_solve_many([q0, p0], grid, drift, g2, 0.5, 0.01, 8, ts, 1, spectral=False, backend=b)[1])
           for b in ("numpy", "numba")]
    assert np.abs(out[0] - out[1]).max() <= 1e-12 * np.abs(out[0]).max()
    assert out[1].min() >= 0.0
