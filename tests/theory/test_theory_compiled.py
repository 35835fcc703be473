"""The compiled (numba) time loop of the grid solver against the plain numpy loop, and its FFT-based heat step
against scipy's DCT (issue 22): the same scheme, so results agree to round-off."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dct, idct

from theory.cases import random_configs
from theory.fokker_planck import Grid1D, _solve_many, compiled_plan, evolve_pair, reverse_drift
from theory.fp_fft import heat_pair, plan
from theory.mixtures import GaussianMixture
from theory.schedules import schedule_from_dict
from theory.verify import verify

EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "examples/theory/example.json").read_text())


@pytest.mark.parametrize("n", [2, 3, 12, 50, 100, 210, 400, 676, 800, 1024])
def test_fft_heat_step_equals_scipy_dct(n):
    rng = np.random.default_rng(n)
    x, y, fac = rng.random(n), rng.random(n), np.exp(-50 * rng.random(n))
    ref = [idct(dct(v, type=2, norm="ortho") * fac, type=2, norm="ortho") for v in (x, y)]
    xx, yy = x.copy(), y.copy()
    heat_pair(xx, yy, fac, np.empty(n, np.complex128), np.empty(n, np.complex128), *plan(n))
    assert np.abs(xx - ref[0]).max() < 1e-13 and np.abs(yy - ref[1]).max() < 1e-13


def test_fft_plan_refuses_large_prime_factors_and_falls_back():
    assert plan(2 * 101) is None
    assert compiled_plan(Grid1D(-1, 1, 202), 2, "auto") is None          # plain loop
    with pytest.raises(ValueError, match="prime factor"):
        compiled_plan(Grid1D(-1, 1, 202), 2, "numba")


@pytest.mark.parametrize("case", ["example", 1, 8])
def test_verify_compiled_equals_plain(case, monkeypatch):
    cfg = EXAMPLE if case == "example" else random_configs(1, 12, 0)[case]
    out = {}
    for b in ("numpy", "numba"):
        monkeypatch.setenv("THEORY_BACKEND", b)
        out[b] = verify(cfg, "grid")
    a, c = out["numpy"], out["numba"]
    # round-off (FFT against scipy's DCT, heat factors by products) passed through the limiter's min / max
    # switches over 288 steps: 1e-9 of KL(t0) (measured <= 3e-10; the states alone agree to 1e-12, below)
    for k in ("kl_start", "kl_end", "fisher_integral", "residual"):
        assert abs(a[k] - c[k]) <= 1e-9 * a["kl_start"], k
    for k in ("kl_end", "fisher_integral", "residual"):
        assert abs(a["errors"][k] - c["errors"][k]) <= 1e-9 * a["kl_start"], k


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_learned_score_path_compiled_equals_plain(sampler):
    """No log_p, a plain score callable (no .many): the 3-point heat step and the two-grid Fisher."""
    sch = schedule_from_dict({"kind": "vp-cosine"})
    data = GaussianMixture(np.array([0.4, 0.6]), np.array([[-1.0], [1.2]]), np.array([[[0.2]], [[0.3]]]))
    grid = Grid1D(-6.0, 6.0, 240)
    x = grid.points()
    q0 = np.exp(-0.5 * (x[:, 0] - 0.3) ** 2 / 0.5) / np.sqrt(2 * np.pi * 0.5)
    p0 = np.exp(data.marginal(sch, 0.5).log_prob(x))
    res = [evolve_pair(q0, p0, grid, sch, lambda xx, t: data.marginal(sch, t).score(xx), 0.5, 0.01, sampler,
                       n_steps=40, backend=b) for b in ("numpy", "numba")]
    assert np.abs(res[0].kl - res[1].kl).max() <= 1e-11 * res[0].kl[0]
    # the two-grid Fisher differences log q where q is round-off (far tails, ~1e-18 against a clipped 0): there
    # round-off is amplified, so only 1e-6 here; the states themselves agree to 1e-12 (below)
    assert np.abs(res[0].fisher - res[1].fisher).max() <= 1e-6 * res[0].fisher[0]


@pytest.mark.parametrize("spectral", [True, False])
def test_states_compiled_equal_plain(spectral):
    sch = schedule_from_dict({"kind": "ve"})
    data = GaussianMixture(np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]), np.array([[[0.05]], [[0.3]]]))
    grid = Grid1D(-8.0, 8.0, 300)
    x = grid.points()
    q0 = np.exp(-0.5 * (x[:, 0] - 0.3) ** 2 / 2.0)
    p0 = np.exp(data.marginal(sch, 0.6).log_prob(x))
    drift, g2 = reverse_drift(sch, lambda xx, t: data.marginal(sch, t).score(xx), "sde")
    ts = np.geomspace(0.6, 0.003, 50)
    out = [_solve_many([q0, p0], grid, drift, g2, 0.6, 0.003, 49, ts, 1, spectral=spectral, backend=b)[1]
           for b in ("numpy", "numba")]
    a, b = np.array(out[0]), np.array(out[1])
    assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()   # 49 steps of ~1e-15 each


@pytest.mark.parametrize("case", [1, 8])
def test_2d_compiled_sweeps_equal_plain(case, monkeypatch):
    """2-D: scipy's DCTs in both, the split sweeps compiled or plain."""
    cfg = dict(random_configs(2, 12, 0)[case], grid=60, n_steps=16)
    out = {}
    for b in ("numpy", "numba"):
        monkeypatch.setenv("THEORY_BACKEND", b)
        out[b] = verify(cfg, "grid")
    a, c = out["numpy"], out["numba"]
    for k in ("kl_end", "fisher_integral", "residual"):
        assert abs(a[k] - c[k]) <= 1e-9 * a["kl_start"], k
        assert abs(a["errors"][k] - c["errors"][k]) <= 1e-9 * a["kl_start"], k
