"""Experiment 1: KL(q_t ‖ p_t) and the Fisher integrand along the reverse SDE and the probability-flow ODE,
for the exact and a learned score, on the built-in 2-D mixture.

- Grid: ``theory.fokker_planck.evolve_pair`` evolves q and p from t0 under the *same* drift (exact or learned
  score), so Thm 3.1 (SDE: KL drops by ∫½g²F) and Thm 3.2 (ODE: KL constant) hold for either drift.
- Particles: discrete DDIM η = 0 (ODE) and η = 1 (SDE, DDPM) samplers of ``diffsamplers`` with N steps on a VP
  grid built by ``Grid.from_schedule``; KL(q̂_N ‖ p_{t_end}) by the one-sample kNN estimator (exact log p_{t_end}).
  With the exact score this converges to the grid KL as N grows.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffsamplers import GaussianNoise, Grid, sample_ddim
from theory.divergences import kl_knn_one_sample
from theory.fokker_planck import Grid2D, Grid1D, evolve_pair
from theory.schedules import schedule_from_dict

from .evaluate import score_error
from .io import run_meta, write_json
from .problems import TorchEps, builtin_mixture, edited_mixture, exact_score_fn, learned_score_fn
from .train import TrainConfig, load_checkpoint, train_score_model

__all__ = ["KLCurvesConfig", "run_kl_curves", "particle_kl", "fp_grid_for", "density_on_grid"]


@dataclass
class KLCurvesConfig:
    """Parameters of the KL-curves experiment (``quick()`` for the < 60 s version)."""

    mixture: str = "2d"
    schedule: dict = field(default_factory=lambda: {"kind": "vp-linear", "beta_min": 0.1, "beta_max": 20.0})
    t0: float = 0.5
    t_end: float = 1e-3
    edit_weights: list | None = None
    edit_shift: float = 0.3
    grid_n: int = 128
    grid_half_width: float = 5.0
    fp_steps: int = 200
    particle_steps: list = field(default_factory=lambda: [5, 10, 25, 50, 100, 200])
    particle_n: int = 20000
    particle_seeds: int = 3
    particle_k: int = 5
    particle_steps_learned: list | None = None
    checkpoint: str | None = None
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def quick(cls) -> "KLCurvesConfig":
        c = cls(grid_n=56, fp_steps=80, particle_steps=[10, 40], particle_n=4000, particle_seeds=2,
                particle_steps_learned=[40])
        c.train.steps = 1200
        c.train.batch_size = 256
        return c

    @classmethod
    def tiny(cls) -> "KLCurvesConfig":
        """Seconds-scale settings for notebooks' fast mode (coarse; the learned model is barely trained)."""
        c = cls(grid_n=40, fp_steps=40, particle_steps=[10, 40], particle_n=1500, particle_seeds=2,
                particle_steps_learned=[20])
        c.train.steps = 400
        c.train.batch_size = 256
        c.train.model.hidden = 64
        return c


def fp_grid_for(mixture, half_width: float, n: int):
    """A square 1-D / 2-D solver grid centred on the mixture."""
    c = mixture.mean()
    if mixture.dim == 1:
        return Grid1D(float(c[0] - half_width), float(c[0] + half_width), n)
    if mixture.dim == 2:
        return Grid2D((float(c[0] - half_width), float(c[1] - half_width)),
                      (float(c[0] + half_width), float(c[1] + half_width)), (n, n))
    raise ValueError("the grid solver supports 1-D and 2-D mixtures only")


def density_on_grid(mixture, grid) -> np.ndarray:
    """Mixture density at the cell centres, shaped like the grid."""
    return np.exp(mixture.log_prob(grid.points())).reshape(grid.shape)


def vp_grid(schedule, t0: float, t_end: float, steps: int) -> Grid:
    """diffsamplers grid on times uniform in t from t0 to t_end (labels = times)."""
    return Grid.from_schedule(schedule.alpha, schedule.sigma, np.linspace(t0, t_end, steps + 1))


def particle_kl(eps_model, q0, p0, schedule, t0: float, t_end: float, steps: list, eta: float, n: int,
                seeds: int, k: int = 5, seed: int = 0, dtype=torch.float64) -> dict:
    """KL(q̂_N ‖ p_{t_end}) for η-DDIM with N steps, q̂_N the sampler's output from q_t0 (kNN one-sample).

    Also the 'floor' KL(p̂_N ‖ p_{t_end}) of the sampler started from p_t0 (discretisation + estimator bias).
    Mean and 95% CI over ``seeds`` independent runs.
    """
    q_t0, p_t0, p_end = q0.marginal(schedule, t0), p0.marginal(schedule, t0), p0.marginal(schedule, t_end)
    out = {"steps": list(steps), "eta": eta, "n": n, "seeds": seeds, "kl": [], "kl_ci": [], "floor": [],
           "floor_ci": []}
    for N in steps:
        g = vp_grid(schedule, t0, t_end, N)
        kls, floors = [], []
        for r in range(seeds):
            rng = np.random.default_rng(seed + 1000 * r + N)
            for start, acc in ((q_t0, kls), (p_t0, floors)):
                x = torch.as_tensor(start.sample(n, rng), dtype=dtype)
                noise = GaussianNoise(int(rng.integers(2**31)))
                y = sample_ddim(eps_model, x, g, eta=eta, noise=noise).double().numpy()
                acc.append(kl_knn_one_sample(y, p_end.log_prob, k))
        for vals, key in ((kls, "kl"), (floors, "floor")):
            v = np.asarray(vals)
            out[key].append(float(v.mean()))
            half = 1.96 * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
            out[key + "_ci"].append(float(half))
    return out


def _path_dict(path) -> dict:
    d = path.to_dict()
    return {k: d[k] for k in ("times", "kl", "fisher", "kl_start", "kl_end", "kl_drop", "fisher_integral",
                              "residual", "relative_residual", "mass_error") if k in d}


def run_kl_curves(config: KLCurvesConfig | None = None, out_dir: str | Path | None = None,
                  figures: bool = True, model=None, progress: bool = False) -> dict:
    """Run the experiment; writes ``out_dir/report.json`` (+ PNGs) when ``out_dir`` is given.  Returns the report."""
    cfg = config or KLCurvesConfig()
    t_wall = time.perf_counter()
    schedule = schedule_from_dict(cfg.schedule)
    p0 = builtin_mixture(cfg.mixture)
    weights = cfg.edit_weights
    q0 = edited_mixture(p0, weights=weights, shift=cfg.edit_shift)
    grid = fp_grid_for(p0, cfg.grid_half_width, cfg.grid_n)
    q_t0 = density_on_grid(q0.marginal(schedule, cfg.t0), grid)
    p_t0 = density_on_grid(p0.marginal(schedule, cfg.t0), grid)

    timings = {}
    t1 = time.perf_counter()
    train_info = {}
    if model is None:
        if cfg.checkpoint:
            model, meta = load_checkpoint(cfg.checkpoint, schedule)
            train_info = {"checkpoint": cfg.checkpoint, "meta": meta}
        else:
            tcfg = cfg.train
            tcfg.progress = tcfg.progress or progress
            tcfg.seed = cfg.seed if tcfg.seed == 0 else tcfg.seed
            res = train_score_model(p0, schedule, tcfg)
            model = res.model
            train_info = {"steps": res.steps_done, "seconds": res.seconds,
                          "final_loss": float(np.mean(res.losses[-100:]))}
    timings["train"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    err = score_error(model, p0, schedule, times=np.geomspace(max(cfg.t_end, 1e-2), 1.0, 30), n=3000, seed=cfg.seed)
    timings["score_error"] = time.perf_counter() - t1

    scores = {"exact": exact_score_fn(p0, schedule), "learned": learned_score_fn(model)}
    report: dict = {"experiment": "kl-curves", "config": asdict(cfg), "score_error": err, "train": train_info}
    for name, sc in scores.items():
        report[name] = {}
        for sampler in ("sde", "ode"):
            t1 = time.perf_counter()
            # with the exact score p_t is known in closed form: the solver then differences only log q (Fisher side)
            log_p = (lambda x, t: p0.marginal(schedule, float(t)).log_prob(x)) if name == "exact" else None
            path = evolve_pair(q_t0, p_t0, grid, schedule, sc, cfg.t0, cfg.t_end, sampler=sampler,
                               n_steps=cfg.fp_steps, log_p=log_p)
            d = _path_dict(path)
            d["g2"] = [float(schedule.g2(t)) for t in d["times"]]
            report[name][sampler] = d
            timings[f"grid_{name}_{sampler}"] = time.perf_counter() - t1

    eps_models = {"exact": TorchEps(scores["exact"], schedule), "learned": model}
    report["particles"] = {}
    for name, em in eps_models.items():
        report["particles"][name] = {}
        dt = torch.float64 if name == "exact" else next(model.parameters()).dtype
        for sampler, eta in (("sde", 1.0), ("ode", 0.0)):
            t1 = time.perf_counter()
            report["particles"][name][sampler] = particle_kl(
                em, q0, p0, schedule, cfg.t0, cfg.t_end,
                cfg.particle_steps if name == "exact" or cfg.particle_steps_learned is None
                else cfg.particle_steps_learned, eta, cfg.particle_n,
                cfg.particle_seeds, cfg.particle_k, seed=cfg.seed, dtype=dt)
            timings[f"particles_{name}_{sampler}"] = time.perf_counter() - t1
    report["particles"]["note"] = ("KL(q_N || p_t_end) of the eta-DDIM output (eta=1 'sde', eta=0 'ode') vs the exact "
                                   "p_t_end; 'floor' is the same estimate for the sampler started from p_t0. For the "
                                   "learned model it measures distance to the *true* p_t_end, not to the learned p.")
    report["summary"] = {
        f"{n}_sde_below_ode": bool(report[n]["sde"]["kl_end"] < report[n]["ode"]["kl_end"]) for n in scores}
    report["summary"].update({
        f"{n}_kl_end_ratio_sde_over_ode": report[n]["sde"]["kl_end"] / report[n]["ode"]["kl_end"] for n in scores})
    report["summary"]["mean_rel_score_error"] = err["mean_rel_error"]
    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    report["meta"] = run_meta(time.perf_counter() - t_wall, seed=cfg.seed)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if figures:
            from . import plots

            report["figures"] = plots.kl_curves_figures(report, out)
        write_json(out / "report.json", report)
    return report
