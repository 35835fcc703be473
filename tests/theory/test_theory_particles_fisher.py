"""Issue 12 item 4: the ODE particle method carries grad log q along the flow and reports F(tau) with bands."""
import numpy as np
import pytest

from theory.gaussian import gaussian_path
from theory.mixtures import GaussianMixture, gaussian
from theory.particles import particles_ode
from theory.schedules import RectifiedFlow, VPLinear


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("sch", [VPLinear(), RectifiedFlow()])
def test_ode_particle_fisher_vs_gaussian(d, sch):
    rng = np.random.default_rng(d)
    A = rng.normal(size=(d, d)) * 0.3
    Cp = A @ A.T + 0.2 * np.eye(d)
    mp, mq, Cq = rng.normal(size=d) * 0.3, rng.normal(size=d) * 0.5, 0.5 * np.eye(d) + 0.2 * Cp
    r = particles_ode(sch, gaussian(mp, Cp), gaussian(mq, Cq), 0.6, 0.005, n=3000, n_steps=80, seed=d)
    ex = gaussian_path(sch, mp, Cp, mq, Cq, 0.6, 0.005, "ode", times=r.times)
    band = r.extra["fisher_band"]
    assert np.all(np.abs(r.fisher - ex.fisher) <= 4 * band + 1e-3 * ex.fisher.max())
    assert np.all(band <= 0.1 * ex.fisher.max())


def test_ode_particle_fisher_vs_grid_mixture():
    from theory.verify import verify

    cfg = {"schedule": {"kind": "vp-linear"},
           "data": {"weights": [0.3, 0.7], "means": [[-2.0], [1.5]], "covs": [[[0.1]], [[0.2]]]},
           "edited": {"weights": [1.0], "means": [[0.5]], "covs": [[[0.4]]]}, "t0": 0.6, "t_end": 0.002,
           "sampler": "ode"}
    data = GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[[0.1]], [[0.2]]])
    r = particles_ode(VPLinear(), data, gaussian([0.5], [[0.4]]), 0.6, 0.002, n=4000, n_steps=100, seed=2)
    g = verify(cfg, "grid")
    F = np.interp(r.times[::-1], np.array(g["times"])[::-1], np.array(g["fisher"])[::-1])[::-1]
    assert np.all(np.abs(r.fisher - F) <= 4 * r.extra["fisher_band"] + 0.01 * F.max())
