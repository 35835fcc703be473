"""Issue 12: Fisher as accurate as the KL, error estimates that cover the truth, --tol, on a fixed random set."""
import json
import time

import numpy as np
import pytest

import importlib

from theory import cli
from theory.cases import random_configs
from theory.config import config_from_dict
from theory.fokker_planck import Grid1D, evolve_pair
from theory.gaussian import gaussian_path
from theory.mixtures import gaussian
from theory.reversal import reversal_kl_trapezoid_1d, reversal_quadrature
from theory.schedules import VE, RectifiedFlow, VPCosine, VPLinear
from theory.verify import verify

verify_mod = importlib.import_module("theory.verify")

SET_1D = random_configs(dim=1, n=12, seed=0)
SET_2D = random_configs(dim=2, n=12, seed=0)


def _reference(cfg_d, nodes):
    cfg = config_from_dict(cfg_d)
    return reversal_quadrature(cfg.schedule, cfg.data, cfg.edited, cfg.t0, cfg.t_end,
                               times=np.array([cfg.t0, cfg.t_end]), n_outer=nodes, n_inner=nodes)


def _reference_1d(cfg_d):
    """1-D truth: KL(q_tau||p_tau) = int p_tau h log h dx (time reversal, q_tau = p_tau h) on a dense trapezoid
    grid (spectrally accurate for these smooth, fast-decaying integrands) with a 64-node Gauss-Hermite inner
    expectation -- Gauss-Hermite outer nodes placed on p miss q's mass in p's tails (4e-6 of KL on case 11)."""
    cfg = config_from_dict(cfg_d)
    return reversal_kl_trapezoid_1d(cfg.schedule, cfg.data, cfg.edited, cfg.t0, (cfg.t0, cfg.t_end))


def test_random_set_is_fixed_and_in_range():
    again = random_configs(dim=1, n=12, seed=0)
    assert json.dumps(again) == json.dumps(SET_1D)
    kinds = {c["schedule"]["kind"] for c in SET_1D}
    assert kinds == {"vp-linear", "vp-cosine", "ve"}
    for c in SET_1D + SET_2D:
        assert 0.3 <= c["t0"] <= 0.8 and 0.002 <= c["t_end"] <= 0.02
        assert 2 <= len(c["data"]["weights"]) <= 4
        ev = np.concatenate([np.linalg.eigvalsh(np.array(C)) for C in c["data"]["covs"]])
        assert ev.min() >= 0.03 - 1e-12 and ev.max() <= 0.6 + 1e-12


@pytest.mark.parametrize("i", range(len(SET_1D)))
def test_random_set_1d_defaults(i):
    """Defaults (400 cells / 128 steps): relative residual <= 1e-4; the reported bounds cover the residual and the
    error of KL(t_end) against the time-reversal quadrature; solver time (shared 2-core machine) well under 2 s."""
    c = SET_1D[i]
    cpu = time.process_time()
    r = verify(c, "grid")
    cpu = time.process_time() - cpu
    err = r["errors"]
    assert r["relative_residual"] <= 1e-4, (i, r["relative_residual"])
    assert r["residual"] <= err["residual"]
    kl0, kl1 = _reference_1d(c)
    assert abs(r["kl_end"] - kl1) <= err["kl_end"] + 1e-9 * kl0
    assert abs(r["kl_start"] - kl0) <= err["kl_start"] + 1e-9 * kl0
    # goal 0.5 s on the 2-core machine; CPU time, because the wall time of a shared machine varies 5x with its load
    # (see docs/theory.md for the measured numbers)
    assert cpu < 1.0, cpu


@pytest.mark.slow
@pytest.mark.parametrize("i", [4, 8])
def test_random_set_2d_defaults_subset(i):
    """The two hardest 2-D cases of the 12 (4: KL(t0) = 6.5; 8: VE, a 33-wide grid for features of sd 0.18) at the
    defaults, 200^2 / 64 steps: relative residual <= 1e-3, the bounds cover it and the KL(t_end) error."""
    c = SET_2D[i]
    cpu = time.process_time()
    r = verify(c, "grid")
    cpu = time.process_time() - cpu
    assert r["relative_residual"] <= 1e-3, (i, r["relative_residual"])
    assert r["residual"] <= r["errors"]["residual"]
    ref = _reference(c, 20)
    assert abs(r["kl_end"] - ref.kl_end) <= r["errors"]["kl_end"] + 1e-5 * ref.kl_start
    assert cpu < 20.0, cpu  # goal 20 s (CPU time: see the 1-D test)


@pytest.mark.slow
@pytest.mark.parametrize("i", [9])
def test_random_set_2d_defaults_more(i):
    """Case 9 (VP, t0 = 0.74, KL(t0) = 8.5e-4): F is tiny late on and needs the correlated-error cancellation."""
    c = SET_2D[i]
    r = verify(c, "grid")
    assert r["relative_residual"] <= 1e-3, (i, r["relative_residual"])
    assert r["residual"] <= r["errors"]["residual"]


GAUSS = [(VPLinear(), 0.6, 0.002), (VE(), 0.5, 0.01), (VPCosine(), 0.4, 0.005), (RectifiedFlow(), 0.7, 0.005)]


@pytest.mark.parametrize("case", range(len(GAUSS)))
@pytest.mark.parametrize("res", [(100, 32), (400, 128)])
def test_error_bounds_cover_gaussian_truth(case, res):
    """Closed form (moment ODEs): every reported bound >= the actual error, coarse and default resolutions."""
    sch, t0, te = GAUSS[case]
    mp, Cp, mq, Cq = [0.3], [[0.1]], [1.0], [[0.5]]
    a, s2 = float(sch.alpha(t0)), float(sch.sigma(t0)) ** 2
    edited = gaussian([a * 1.0], [[a * a * 0.5 + s2]])
    data = gaussian(mp, Cp)
    cfg = config_from_dict({"schedule": sch.to_dict(), "data": data.to_dict(), "edited": edited.to_dict(),
                            "t0": t0, "t_end": te})
    grid = verify_mod.auto_grid(cfg, (res[0],))
    x = grid.points()
    r = evolve_pair(np.exp(edited.log_prob(x)), np.exp(data.marginal(sch, t0).log_prob(x)), grid, sch,
                    lambda xx, t: data.marginal(sch, t).score(xx), t0, te, "sde", n_steps=res[1],
                    log_p=lambda xx, t: data.marginal(sch, t).log_prob(xx), stiff_var=0.1, error_estimate=True)
    ex = gaussian_path(sch, mp, Cp, [a * 1.0], [[a * a * 0.5 + s2]], t0, te, "sde", n_times=3)
    err = r.extra["errors"]
    assert abs(r.kl_start - ex.kl_start) <= err["kl_start"] + 1e-10
    assert abs(r.kl_end - ex.kl_end) <= err["kl_end"] + 1e-10
    assert abs(r.fisher_integral - ex.fisher_integral) <= err["fisher_integral"] + 1e-10
    assert r.residual <= err["residual"]


def test_fisher_uses_exact_p_and_is_fourth_order():
    """log_p given: the Fisher integral converges much faster in cells than the old 2nd-order log(q/p) differencing,
    and far tails of q (p_grid ~ 0 there) no longer blow it up (random case 7: KL(t0) = 4.2)."""
    c = SET_1D[7]
    cfg = config_from_dict(c)
    sch, data = cfg.schedule, cfg.data
    fis = []
    for n in (200, 400, 800):
        grid = verify_mod.auto_grid(cfg, (n,))
        x = grid.points()
        r = evolve_pair(np.exp(cfg.edited.log_prob(x)), np.exp(data.marginal(sch, cfg.t0).log_prob(x)), grid, sch,
                        lambda xx, t: data.marginal(sch, t).score(xx), cfg.t0, cfg.t_end, "sde", n_steps=128,
                        log_p=lambda xx, t: data.marginal(sch, t).log_prob(xx), stiff_var=0.05)
        fis.append(r.fisher_integral)
    kl0, kl1 = _reference_1d(c)
    errs = [abs(f - (kl0 - kl1)) / kl0 for f in fis]
    assert errs[-1] <= 1e-5 and errs[1] <= 1e-4


def test_tol_meets_tolerance():
    c = dict(SET_1D[5])  # the case whose default bound is the loosest (3.4e-4)
    r = verify(c, "grid", tol=1e-5)
    assert r["tol"]["reached"] and r["relative_residual"] < 1e-5 and r["errors"]["relative_residual"] < 1e-5
    assert len(r["tol"]["history"]) >= 2  # the defaults alone do not reach 1e-5 on this case
    kl0, kl1 = _reference_1d(c)
    assert abs(r["kl_end"] - kl1) <= 1e-5 * kl0 and abs(r["kl_start"] - kl0) <= 1e-5 * kl0
    r2 = verify(dict(c, tol=1e-5), "grid")  # the config key does the same
    assert r2["tol"]["reached"] and r2["relative_residual"] == r["relative_residual"]


def test_tol_not_reached_names_the_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(verify_mod, "TOL_CAPS", {1: (400, 256), 2: (100, 64)})
    p = tmp_path / "c.json"
    p.write_text(json.dumps(SET_1D[3]))
    assert cli.main(["verify", str(p), "--tol", "1e-9"]) == 1
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith("error: tol 1e-09 not reached")
    assert "limited by" in out.err and "caps" in out.err
    rep = json.loads(out.out)
    assert rep["tol"]["reached"] is False


@pytest.mark.parametrize("bad", ["0", "-1e-3", "abc", "nan", "inf", ""])
def test_bad_tol_cli(bad, tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(SET_1D[0]))
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", str(p), "--tol", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument --tol")


@pytest.mark.parametrize("bad", [0, -1, "1e-3", True, None])
def test_bad_tol_config(bad, tmp_path, capsys):
    p = tmp_path / "c.json"
    d = dict(SET_1D[0], tol=bad)
    p.write_text(json.dumps(d))
    rc = cli.main(["verify", str(p), "--method", "gaussian"])
    if bad is None:  # "tol": null means no tolerance; gaussian refuses the mixture (a different one-line error)
        assert rc == 2 and "gaussian" in capsys.readouterr().err
        return
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: tol must be")
