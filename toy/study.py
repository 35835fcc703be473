"""Experiments 3–4: Cycle-SDE contraction, the schedule / η / steps study and the log-Sobolev rate check.

- **schedules** (vp-linear, vp-cosine, ve): in continuous time with the exact score, KL(q_t ‖ p_t) depends on the
  schedule only through the signal-to-noise ratio α_t/σ_t (the schedules are time changes and rescalings of
  one another, and KL is invariant under the rescaling bijection), so any schedule dependence comes from the
  discretisation.  We match t0 and t_end by SNR to vp-linear (t0 = 0.5, t_end = 1e-3) and run η-DDIM with N
  steps uniform in t; KL(q̂_N ‖ p_t_end) by kNN (2-D mixture, exact score).
- **eta**: η ∈ [0, 1] for several N (vp-linear).
- **cycle**: Cycle-SDE contraction — latents of p_0 samples at t0 are shifted (the edit); KL(q̂_t ‖ p_t) along the
  backward pass for Cycle-SDE (``recipes.edit_at_t0`` with the shift as the edit and a ``post_step`` that records
  the intermediate states), and fresh-noise SDE and ODE from the same edited latent (``recipes.sample``).
- **lsi**: for a Gaussian p_0 (LSI constant C_τ = λ_max(α_τ² Σ + σ_τ² I) exactly, KL ≤ (C/2) F) the SDE
  KL(t) must stay below exp(−∫_t^{t0} g²/C_τ dτ) KL(t0) (Prop. D.1 form, derived); checked on the grid solver.
  For the 2-D mixture the effective constant 2 KL / F along the path is reported.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import brentq

from diffsamplers import GaussianNoise, Grid, recipes, sample_ddim
from theory.divergences import kl_knn_one_sample
from theory.fokker_planck import evolve_pair
from theory.mixtures import GaussianMixture
from theory.schedules import schedule_from_dict

from .editing import mean_ci
from .io import run_meta, write_json
from .klcurves import density_on_grid, fp_grid_for
from .problems import builtin_mixture, edited_mixture, exact_eps_model, exact_score_fn

__all__ = ["StudyConfig", "run_study", "snr_matched_time", "schedule_study", "eta_study", "cycle_contraction",
           "lsi_check"]

SCHEDULES = {
    "vp-linear": {"kind": "vp-linear", "beta_min": 0.1, "beta_max": 20.0},
    "vp-cosine": {"kind": "vp-cosine", "s": 0.008},
    "ve": {"kind": "ve", "sigma_min": 0.01, "sigma_max": 50.0},
}


@dataclass
class StudyConfig:
    t0: float = 0.5
    t_end: float = 1e-3
    steps: list = field(default_factory=lambda: [10, 25, 50, 100])
    etas: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    n: int = 6000
    seeds: int = 3
    knn_k: int = 5
    cycle_steps: int = 50
    cycle_shift: float = 0.6
    grid_n: int = 96
    fp_steps: int = 150
    seed: int = 0

    @classmethod
    def quick(cls) -> "StudyConfig":
        return cls(steps=[10, 40], etas=[0.0, 0.5, 1.0], n=2000, seeds=2, cycle_steps=20, grid_n=48, fp_steps=60)

    @classmethod
    def tiny(cls) -> "StudyConfig":
        return cls(steps=[10, 30], etas=[0.0, 0.5, 1.0], n=800, seeds=2, cycle_steps=10, grid_n=40, fp_steps=40)


def _log_snr(schedule, t: float) -> float:
    return float(np.log(schedule.alpha(t)) - np.log(schedule.sigma(t)))


def snr_matched_time(schedule, target_log_snr: float) -> float:
    """The t at which the schedule's log(α/σ) equals ``target_log_snr`` (clipped to its range)."""
    lo, hi = 1e-6, float(schedule.t_max()) - 1e-6
    f = lambda t: _log_snr(schedule, t) - target_log_snr  # noqa: E731
    if f(lo) < 0:
        return lo
    if f(hi) > 0:
        return hi
    return float(brentq(f, lo, hi, xtol=1e-12))


def _particle_kl(model, start: GaussianMixture, p_end: GaussianMixture, grid: Grid, eta: float, n: int, seeds: int,
                 k: int, seed: int) -> tuple[float, float]:
    vals = []
    for r in range(seeds):
        rng = np.random.default_rng([seed, r, grid.num_steps, int(eta * 100)])
        x = torch.as_tensor(start.sample(n, rng))
        y = sample_ddim(model, x, grid, eta=eta, noise=GaussianNoise(int(rng.integers(2**31)))).numpy()
        vals.append(kl_knn_one_sample(y, p_end.log_prob, k))
    return mean_ci(vals)


def schedule_study(cfg: StudyConfig) -> dict:
    p0 = builtin_mixture("2d")
    q0 = edited_mixture(p0)
    ref = schedule_from_dict(SCHEDULES["vp-linear"])
    ls0, ls1 = _log_snr(ref, cfg.t0), _log_snr(ref, cfg.t_end)
    out = {}
    for name, sd in SCHEDULES.items():
        sch = schedule_from_dict(sd)
        t0, t1 = snr_matched_time(sch, ls0), snr_matched_time(sch, ls1)
        model = exact_eps_model(p0, sch)
        p_end = p0.marginal(sch, t1)
        rows = []
        for N in cfg.steps:
            g = Grid.from_schedule(sch.alpha, sch.sigma, np.linspace(t0, t1, N + 1))
            for eta in (0.0, 1.0):
                m, h = _particle_kl(model, q0.marginal(sch, t0), p_end, g, eta, cfg.n, cfg.seeds, cfg.knn_k, cfg.seed)
                f, fh = _particle_kl(model, p0.marginal(sch, t0), p_end, g, eta, cfg.n, cfg.seeds, cfg.knn_k, cfg.seed)
                rows.append({"steps": N, "eta": eta, "kl": m, "kl_ci": h, "floor": f, "floor_ci": fh})
        out[name] = {"t0": t0, "t_end": t1, "rows": rows}
    return out


def eta_study(cfg: StudyConfig) -> dict:
    p0 = builtin_mixture("2d")
    q0 = edited_mixture(p0)
    sch = schedule_from_dict(SCHEDULES["vp-linear"])
    model = exact_eps_model(p0, sch)
    p_end = p0.marginal(sch, cfg.t_end)
    rows = []
    for N in cfg.steps:
        g = Grid.from_schedule(sch.alpha, sch.sigma, np.linspace(cfg.t0, cfg.t_end, N + 1))
        for eta in cfg.etas:
            m, h = _particle_kl(model, q0.marginal(sch, cfg.t0), p_end, g, eta, cfg.n, cfg.seeds, cfg.knn_k, cfg.seed)
            rows.append({"steps": N, "eta": eta, "kl": m, "kl_ci": h})
    return {"rows": rows}


def cycle_contraction(cfg: StudyConfig) -> dict:
    """KL(q̂_t ‖ p_t) along the backward pass after shifting the t0 latents of p_0 samples by ``cycle_shift``."""
    p0 = builtin_mixture("2d")
    sch = schedule_from_dict(SCHEDULES["vp-linear"])
    model = exact_eps_model(p0, sch)
    g = Grid.from_schedule(sch.alpha, sch.sigma, np.linspace(cfg.t0, cfg.t_end, cfg.cycle_steps + 1))
    times = g.timesteps.numpy()
    every = max(1, cfg.cycle_steps // 8)
    record_idx = sorted(set(list(range(0, cfg.cycle_steps + 1, every)) + [cfg.cycle_steps]))
    res = {m: {"times": [float(times[i]) for i in record_idx], "kl": [], "kl_ci": []} for m in ("cycle", "sde", "ode")}
    per = {m: {i: [] for i in record_idx} for m in res}
    for r in range(cfg.seeds):
        rng = np.random.default_rng([cfg.seed, r, 77])
        x0 = torch.as_tensor(p0.sample(cfg.n, rng))
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        edited = None
        for m in res:
            states: dict = {}

            def post(i, x, states=states, m=m):
                if i + 1 in per[m]:
                    states[i + 1] = x.clone()
                return x

            if m == "cycle":
                out = recipes.edit_at_t0(model, x0, g, "sde", GaussianNoise(gen), edit=lambda z: z + cfg.cycle_shift,
                                         post_step=post)
                edited = out.x_t0
            else:
                recipes.sample(model, edited, g, m, noise=GaussianNoise(int(rng.integers(2**31))), post_step=post)
            states[0] = edited
            for i in record_idx:
                per[m][i].append(kl_knn_one_sample(states[i].numpy(), p0.marginal(sch, float(times[i])).log_prob,
                                                   cfg.knn_k))
    for m in res:
        for i in record_idx:
            a, h = mean_ci(per[m][i])
            res[m]["kl"].append(a)
            res[m]["kl_ci"].append(h)
    res["note"] = "edit: x_t0 <- x_t0 + shift (both coordinates); p_t exact marginal of p_0; kNN one-sample KL"
    return res


def lsi_check(cfg: StudyConfig) -> dict:
    """Gaussian p_0: SDE KL(t) vs the LSI bound; 2-D mixture: effective constant 2 KL/F along the path."""
    sch = schedule_from_dict(SCHEDULES["vp-linear"])
    cov = np.diag([1.0, 0.3])
    p0 = GaussianMixture(np.ones(1), np.zeros((1, 2)), cov[None])
    q0 = GaussianMixture(np.ones(1), np.array([[1.0, -0.5]]), (0.5 * cov)[None])
    grid = fp_grid_for(p0, 6.0, cfg.grid_n)
    path = evolve_pair(density_on_grid(q0.marginal(sch, cfg.t0), grid), density_on_grid(p0.marginal(sch, cfg.t0), grid),
                       grid, sch, exact_score_fn(p0, sch), cfg.t0, cfg.t_end, sampler="sde", n_steps=cfg.fp_steps)
    t = np.asarray(path.times)
    lam = np.linalg.eigvalsh(cov).max()

    def rate(tt):
        c = float(sch.alpha(tt)) ** 2 * lam + float(sch.sigma(tt)) ** 2
        return float(sch.g2(tt)) / c

    fine = np.geomspace(cfg.t_end, cfg.t0, 4000)
    r = np.array([rate(x) for x in fine])
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]) * np.diff(fine))])  # ∫_{t_end}^{t}
    integ = np.interp(cfg.t0, fine, cum) - np.interp(t, fine, cum)
    bound = path.kl_start * np.exp(-integ)
    kl = np.asarray(path.kl)
    out = {"gaussian": {"times": t.tolist(), "kl": kl.tolist(), "bound": bound.tolist(),
                        "max_ratio_kl_over_bound": float(np.max(kl / bound)),
                        "holds": bool(np.all(kl <= bound * (1 + 1e-3) + 1e-9)),
                        "fisher": np.asarray(path.fisher).tolist()}}
    # the mixture: effective LSI constant along the exact-score SDE path
    pm = builtin_mixture("2d")
    qm = edited_mixture(pm)
    gm = fp_grid_for(pm, 5.0, cfg.grid_n)
    pm_path = evolve_pair(density_on_grid(qm.marginal(sch, cfg.t0), gm), density_on_grid(pm.marginal(sch, cfg.t0), gm),
                          gm, sch, exact_score_fn(pm, sch), cfg.t0, cfg.t_end, sampler="sde", n_steps=cfg.fp_steps)
    ceff = 2 * np.asarray(pm_path.kl) / np.maximum(np.asarray(pm_path.fisher), 1e-300)
    cg = [float(sch.alpha(x)) ** 2 * np.linalg.eigvalsh(pm.covariance()).max() + float(sch.sigma(x)) ** 2
          for x in pm_path.times]
    out["mixture"] = {"times": np.asarray(pm_path.times).tolist(), "kl": np.asarray(pm_path.kl).tolist(),
                      "c_eff": ceff.tolist(), "c_gauss_fit": cg,
                      "note": "c_eff = 2 KL/F is the smallest constant the LSI inequality needs along this path; "
                              "c_gauss_fit the constant of the moment-matched Gaussian"}
    return out


def run_study(config: StudyConfig | None = None, out_dir=None, figures: bool = True) -> dict:
    cfg = config or StudyConfig()
    t_wall = time.perf_counter()
    timings = {}
    report: dict = {"experiment": "study", "config": asdict(cfg)}
    for name, fn in (("schedules", schedule_study), ("eta", eta_study), ("cycle", cycle_contraction),
                     ("lsi", lsi_check)):
        t1 = time.perf_counter()
        report[name] = fn(cfg)
        timings[name] = round(time.perf_counter() - t1, 3)
    N = max(cfg.steps)
    summ = {}
    for sname, d in report["schedules"].items():
        rr = {r["eta"]: r for r in d["rows"] if r["steps"] == N}
        summ[f"{sname}_N{N}_kl_sde"] = rr[1.0]["kl"]
        summ[f"{sname}_N{N}_kl_ode"] = rr[0.0]["kl"]
    c = report["cycle"]
    summ["cycle_kl_start"] = c["cycle"]["kl"][0]
    summ["cycle_kl_end"] = c["cycle"]["kl"][-1]
    summ["ode_kl_end"] = c["ode"]["kl"][-1]
    summ["lsi_gaussian_bound_holds"] = report["lsi"]["gaussian"]["holds"]
    report["summary"] = summ
    report["timings"] = timings
    report["meta"] = run_meta(time.perf_counter() - t_wall, seed=cfg.seed)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if figures:
            from .plots import study_figures

            report["figures"] = study_figures(report, out)
        write_json(out / "report.json", report)
    return report
