"""Schedules, mixtures, divergences and the exact Gaussian case (hypothesis property tests)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from theory.divergences import fisher_gaussian, kl_gaussian, kl_grid, kl_knn_one_sample
from theory.errors import ConfigError
from theory.gaussian import gaussian_path
from theory.mixtures import GaussianMixture, gaussian
from theory.schedules import VE, DiscreteDDPM, RectifiedFlow, VPCosine, VPLinear, schedule_from_dict

SCHEDULES = [VPLinear(), VPCosine(), VE(), RectifiedFlow()]


@pytest.mark.parametrize("s", SCHEDULES + [DiscreteDDPM.from_betas(np.linspace(1e-4, 0.02, 1000))])
def test_schedule_consistency(s):
    t = np.array([0.13, 0.47, 0.81]) + 0.0003
    e = 1e-6
    ds2 = (s.sigma(t + e) ** 2 - s.sigma(t - e) ** 2) / (2 * e)
    assert np.allclose(s.g2(t), ds2 - 2 * s.f(t) * s.sigma(t) ** 2, rtol=1e-5)
    assert np.allclose(s.f(t), (np.log(s.alpha(t + e)) - np.log(s.alpha(t - e))) / (2 * e), rtol=1e-5, atol=1e-9)


def test_ddpm_index_map():
    s = DiscreteDDPM.from_betas(np.linspace(1e-4, 0.02, 1000))
    assert s.index_to_t(999) == 1.0 and s.t_to_index(s.index_to_t(41)) == 41
    assert np.isclose(s.alpha(s.index_to_t(10)) ** 2, s.alphas_cumprod[10])


def test_schedule_from_dict_errors():
    assert isinstance(schedule_from_dict({"kind": "ve"}), VE)
    for bad in [{"kind": "nope"}, {"kind": "vp-linear", "beta_min": -1}, {"kind": "ve", "foo": 1}, []]:
        with pytest.raises(ConfigError):
            schedule_from_dict(bad)


def test_mixture_score_logprob_and_marginal():
    g = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [1.5, 1.0]],
                        [[[0.1, 0.02], [0.02, 0.3]], [[0.2, 0.0], [0.0, 0.1]]])
    x = np.random.default_rng(0).normal(size=(7, 2))
    h = 1e-5
    num = np.stack([(g.log_prob(x + h * e) - g.log_prob(x - h * e)) / (2 * h) for e in np.eye(2)], 1)
    assert np.allclose(g.score(x), num, atol=1e-6)
    lap = sum((g.score(x + h * e)[:, i] - g.score(x - h * e)[:, i]) / (2 * h) for i, e in enumerate(np.eye(2)))
    assert np.allclose(g.laplacian_log_prob(x), lap, atol=1e-5)
    far = np.array([[400.0, -300.0]])
    assert np.all(np.isfinite(g.score(far))) and np.isfinite(g.log_prob(far)).all()
    m = g.marginal(VPLinear(), 0.4)
    a, s = VPLinear().alpha(0.4), VPLinear().sigma(0.4)
    assert np.allclose(m.covs[0], a * a * g.covs[0] + s * s * np.eye(2))
    y = g.sample(200000, np.random.default_rng(1))
    assert np.allclose(y.mean(0), g.mean(), atol=0.01)
    assert np.allclose(g.component_posteriors(x).sum(1), 1.0)


@pytest.mark.parametrize("kw", [dict(weights=[0.5, 0.6]), dict(covs=[[[1.0, 0.5], [0.4, 1.0]]]),
                                dict(covs=[[[1.0, 2.0], [2.0, 1.0]]]), dict(means=[[0.0]])])
def test_mixture_validation(kw):
    base = dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0.0], [0.0, 1.0]]])
    if "weights" in kw:
        base.update(means=[[0.0, 0.0]] * 2, covs=[np.eye(2).tolist()] * 2)
    base.update(kw)
    with pytest.raises(ConfigError):
        GaussianMixture(**base)


def test_divergences_closed_form_vs_grid_and_knn():
    m1, S1, m2, S2 = np.array([0.3]), np.array([[0.5]]), np.array([-0.2]), np.array([[0.8]])
    x = np.linspace(-10, 10, 4001)
    q = np.exp(gaussian(m1, S1).log_prob(x[:, None]))
    p = np.exp(gaussian(m2, S2).log_prob(x[:, None]))
    assert np.isclose(kl_grid(q, p, x[1] - x[0]), kl_gaussian(m1, S1, m2, S2), rtol=1e-6)
    assert np.isclose(fisher_gaussian(m1, S1, m2, S2), (1 / 0.8 - 1 / 0.5) ** 2 * 0.5 + (0.5 / 0.8) ** 2, rtol=1e-12)
    y = gaussian(m1, S1).sample(20000, np.random.default_rng(0))
    assert abs(kl_knn_one_sample(y, gaussian(m2, S2).log_prob) - kl_gaussian(m1, S1, m2, S2)) < 0.02


@st.composite
def gaussian_case(draw):
    d = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["vp-linear", "vp-cosine", "ve", "rectified-flow"]))
    seed = draw(st.integers(0, 10_000))
    t0 = draw(st.floats(0.1, 0.9))
    t_end = draw(st.floats(1e-3, 0.5)) * t0
    rng = np.random.default_rng(seed)
    def spd():
        A = rng.normal(size=(d, d)) * 0.4
        return A @ A.T + rng.uniform(0.05, 0.5) * np.eye(d)
    return schedule_from_dict({"kind": kind}), rng.normal(size=d), spd(), rng.normal(size=d), spd(), t0, t_end


@settings(max_examples=12, deadline=None, derandomize=True)
@given(gaussian_case())
def test_gaussian_identity_property(case):
    sch, mp, Cp, mq, Cq, t0, t_end = case
    sde = gaussian_path(sch, mp, Cp, mq, Cq, t0, t_end, "sde", n_times=41)
    assert sde.relative_residual <= 1e-6
    assert np.all(np.diff(sde.kl) <= 1e-10 * max(1.0, sde.kl_start))
    ode = gaussian_path(sch, mp, Cp, mq, Cq, t0, t_end, "ode", n_times=11)
    assert np.max(np.abs(ode.kl - ode.kl_start)) <= 1e-8 * max(1.0, ode.kl_start)
