"""Rectified flow (alpha = 1 - t, sigma = t; f = -1/(1-t), g^2 = 2t/(1-t)) in every method (issue 12, item 3)."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from theory.cli import main
from theory.config import config_from_dict
from theory.gaussian import gaussian_path
from theory.particles import particles_ode
from theory.reversal import reversal_quadrature
from theory.schedules import RectifiedFlow, schedule_from_dict
from theory.verify import verify

RF = {"kind": "rectified-flow"}


def test_schedule_formulas():
    s = schedule_from_dict(RF)
    assert isinstance(s, RectifiedFlow) and s.to_dict() == RF
    t = np.array([0.01, 0.3, 0.77, 0.95])
    assert np.allclose(s.alpha(t), 1 - t) and np.allclose(s.sigma(t), t)
    assert np.allclose(s.f(t), -1 / (1 - t)) and np.allclose(s.g2(t), 2 * t / (1 - t))
    e = 1e-6
    ds2 = (s.sigma(t + e) ** 2 - s.sigma(t - e) ** 2) / (2 * e)
    assert np.allclose(s.g2(t), ds2 - 2 * s.f(t) * s.sigma(t) ** 2, rtol=1e-6)
    assert np.allclose(s.f(t), (np.log(s.alpha(t + e)) - np.log(s.alpha(t - e))) / (2 * e), rtol=1e-6)
    with pytest.raises(Exception):
        schedule_from_dict({"kind": "rectified-flow", "shift": 3.0})


@st.composite
def rf_gaussian_case(draw):
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 10_000))
    t0 = draw(st.floats(0.1, 0.95))
    t_end = draw(st.floats(1e-3, 0.5)) * t0
    rng = np.random.default_rng(seed)

    def spd():
        A = rng.normal(size=(d, d)) * 0.4
        return A @ A.T + rng.uniform(0.05, 0.5) * np.eye(d)
    return rng.normal(size=d), spd(), rng.normal(size=d), spd(), t0, t_end


@settings(max_examples=15, deadline=None, derandomize=True)
@given(rf_gaussian_case())
def test_rf_gaussian_identity_property(case):
    mp, Cp, mq, Cq, t0, t_end = case
    sch = RectifiedFlow()
    sde = gaussian_path(sch, mp, Cp, mq, Cq, t0, t_end, "sde", n_times=41)
    assert sde.relative_residual <= 1e-6
    assert np.all(np.diff(sde.kl) <= 1e-10 * max(1.0, sde.kl_start))
    ode = gaussian_path(sch, mp, Cp, mq, Cq, t0, t_end, "ode", n_times=11)
    assert np.max(np.abs(ode.kl - ode.kl_start)) <= 1e-8 * max(1.0, ode.kl_start)


MIX1 = {"schedule": RF, "data": {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]], "covs": [[[0.1]], [[0.2]]]},
        "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]}, "t0": 0.6, "t_end": 0.002}


def test_rf_grid_vs_reversal_1d_and_particles():
    sde = verify(dict(MIX1, sampler="sde"), "grid")
    ode = verify(dict(MIX1, sampler="ode"), "grid")
    assert sde["relative_residual"] <= 1e-4 and ode["relative_residual"] <= 1e-4
    assert sde["residual"] <= sde["errors"]["residual"]
    cfg = config_from_dict(dict(MIX1, sampler="sde"))
    times = np.array(sde["times"])[::4]
    rv = reversal_quadrature(cfg.schedule, cfg.data, cfg.edited, cfg.t0, cfg.t_end, times=times)
    assert np.max(np.abs(np.array(sde["kl"])[::4] - rv.kl)) <= 1e-4 * rv.kl_start
    rev = verify(dict(MIX1, sampler="sde"), "reversal")
    assert rev["relative_residual"] <= 1e-3
    po = particles_ode(cfg.schedule, cfg.data, cfg.edited, cfg.t0, cfg.t_end, n=3000, n_steps=60, seed=1)
    assert abs(po.kl_start - sde["kl_start"]) <= 4 * po.kl_band[0]
    assert np.all(np.abs(po.kl - po.kl_start) <= 4 * po.kl_band + 5e-3)


def test_rf_grid_vs_reversal_2d():
    cfg_d = {"schedule": RF,
             "data": {"weights": [0.5, 0.5], "means": [[-1.0, 0.0], [1.0, 0.5]],
                      "covs": [[[0.2, 0.05], [0.05, 0.2]], [[0.15, 0.0], [0.0, 0.25]]]},
             "edited": {"weights": [1.0], "means": [[0.0, 0.6]], "covs": [[[0.5, 0.0], [0.0, 0.4]]]},
             "t0": 0.5, "t_end": 0.01, "sampler": "sde", "grid": [96, 96], "n_steps": 32}
    sde = verify(cfg_d, "grid")
    assert sde["relative_residual"] <= 1e-3 and sde["residual"] <= sde["errors"]["residual"]
    cfg = config_from_dict(cfg_d)
    rv = reversal_quadrature(cfg.schedule, cfg.data, cfg.edited, cfg.t0, cfg.t_end,
                             times=np.array([cfg.t0, cfg.t_end]), n_outer=16, n_inner=16)
    assert abs(sde["kl_end"] - rv.kl_end) <= 1e-3 * rv.kl_start


def test_rf_gaussian_method_and_auto():
    g = {"schedule": RF, "data": {"weights": [1.0], "means": [[0.0, 0.5]], "covs": [[[0.3, 0.1], [0.1, 0.2]]]},
         "edited": {"weights": [1.0], "means": [[1.0, -0.5]], "covs": [[[0.6, 0.0], [0.0, 0.4]]]},
         "t0": 0.8, "t_end": 0.01}
    r = verify(g)
    assert r["method"] == "gaussian" and r["relative_residual"] <= 1e-6


@pytest.mark.parametrize("t0", [1.0, 1])
def test_rf_t0_one_refused(t0, tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(dict(MIX1, t0=t0)))
    assert main(["verify", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: rectified-flow needs t0 < 1")
