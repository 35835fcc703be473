"""Experiment 2: toy editing tasks, SDE vs ODE, with sweeps over t0 and the number of steps.

All tasks use the exact mixture score (so differences are due to the sampler, not the model), a VP grid from t0 to
``t_end`` and the editing recipes of :mod:`diffsamplers.recipes` with ``sampler="sde"`` or ``"ode"``; this module
only builds the data, masks and points and measures the outputs.

- **inpainting** (2-D mixture): coordinate 0 is known, coordinate 1 is regenerated —
  ``recipes.inpaint(model, y0, known, grid, sampler, GaussianNoise(seed), start="noised", fill=0.0)``: one draw z
  starts the chain, x_t0 = α_t0 (x_known, 0) + σ_t0 z, and after every step the known coordinate is
  α_s x_known + σ_s z_known (diffusers' inpainting rule, the same z every step), x_known after the last.
  SDE = DDPM (η = 1), ODE = DDIM (η = 0).  Quality: KL(output ‖ p_0) (kNN, nats) — since x_known ~ p_0 exactly
  this equals the expected KL between the generated and the exact conditional p(x_1 | x_0); also the conditional
  NLL −log p(x_1 | x_0).
- **sdedit** (2-D): inputs y from a 'stroke' distribution (p_0's means shifted, tiny covariance) —
  ``recipes.sdedit``: x_t0 = α y + σ z, then denoise.  Realism: KL(output ‖ p_0) and −log p_0(output);
  faithfulness: ‖output − y‖.
- **drag** (8-D 'bump' signals, one mixture component per bump position): move the bump from position i to
  i + 2 — ``recipes.drag`` with 1-D points (i,), one operation (``step_size`` = the shift, so m = 1), window
  half-size r = 1, α = 1.1, β = 0.3, no mask (every coordinate is regenerated).  SDE = SDE-Drag (Cycle-SDE: Markov
  chain to t0 with the noises recorded, paste, replay), ODE = ODE-Drag (DDIM inversion, paste, DDIM).  Rows that
  share a source position form one batch.  Preset ``"clean"``: its window [p − r, p + r] is centred on the bump
  (3 samples), so the pasted bump is the source bump moved by exactly the shift; the ``"official"`` half-open
  window [p − r, p + r) of the image code would be 2 samples, off-centre by half a sample — a visible bias on an
  8-sample signal (the path rules of the two presets agree here, m = 1).
  Quality: success rate (most likely component of the output is the target), −log p_0(output), and
  faithfulness ‖output − ideal‖ with ideal = x_0 − m_src + m_tgt.
Error bars are 95% normal CIs (per-sample metrics) or over ``seeds`` repeats (kNN KL).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, recipes
from theory.divergences import kl_knn_one_sample
from theory.mixtures import GaussianMixture
from theory.schedules import schedule_from_dict

from .io import run_meta, write_json
from .klcurves import vp_grid
from .problems import builtin_mixture, exact_eps_model

__all__ = ["EditingConfig", "run_editing", "bump_mixture", "inpaint", "sdedit", "drag", "inpainting_task",
           "sdedit_task", "drag_task", "mean_ci", "METHODS"]


@dataclass
class EditingConfig:
    schedule: dict = field(default_factory=lambda: {"kind": "vp-linear", "beta_min": 0.1, "beta_max": 20.0})
    t0s: list = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    steps: list = field(default_factory=lambda: [10, 25, 50, 100])
    t_end: float = 1e-3
    n: int = 3000
    seeds: int = 3
    knn_k: int = 5
    drag_alpha: float = 1.1
    drag_beta: float = 0.3
    drag_dim: int = 8
    seed: int = 0

    @classmethod
    def quick(cls) -> "EditingConfig":
        return cls(t0s=[0.3, 0.6], steps=[10, 40], n=1500, seeds=2)

    @classmethod
    def tiny(cls) -> "EditingConfig":
        return cls(t0s=[0.3, 0.6], steps=[10], n=600, seeds=2)


def mean_ci(v) -> tuple[float, float]:
    """Mean and 95% normal half-width."""
    v = np.asarray(v, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(v.size))


def bump_mixture(dim: int = 8, amp: float = 2.0, width: float = 0.7, var: float = 0.05) -> GaussianMixture:
    """'Signals with one bump': component k has mean amp·exp(−(i−k)²/(2 width²)), covariance var·I."""
    i = np.arange(dim)
    means = np.stack([amp * np.exp(-((i - k) ** 2) / (2 * width**2)) for k in range(dim)])
    return GaussianMixture(np.full(dim, 1.0 / dim), means, np.stack([var * np.eye(dim)] * dim))


def stroke_mixture(p0: GaussianMixture) -> GaussianMixture:
    """SDEdit inputs: p_0's means shifted by (0.7, −0.5), isotropic covariance 0.02 ('strokes')."""
    shift = np.array([0.7, -0.5])[: p0.dim]
    return GaussianMixture(p0.weights, p0.means + shift, np.stack([0.02 * np.eye(p0.dim)] * p0.n_components))


def _seed(rng) -> int:
    return int(rng.integers(2**31))


def _marginal_1d(p0: GaussianMixture, j: int) -> GaussianMixture:
    return GaussianMixture(p0.weights, p0.means[:, j:j + 1], p0.covs[:, j:j + 1, j:j + 1])


# ------------------------------------------------------------------------------ the edits (thin recipe calls)
KNOWN = torch.tensor([True, False])  # inpainting: coordinate 0 known, coordinate 1 regenerated (broadcast)


def inpaint(model, x0: Tensor, grid: Grid, sampler: str, seed: int) -> Tensor:
    """``recipes.inpaint`` with coordinate 0 of ``x0`` [n, 2] known; initial state α_t0 (x_known, 0) + σ_t0 z."""
    return recipes.inpaint(model, x0, KNOWN, grid, sampler, GaussianNoise(seed), start="noised", fill=0.0).x


def sdedit(model, y: Tensor, grid: Grid, sampler: str, seed: int) -> Tensor:
    """``recipes.sdedit`` of the inputs ``y``."""
    return recipes.sdedit(model, y, grid, sampler, GaussianNoise(seed)).x


def drag(model, x0: Tensor, src, shift: int, grid: Grid, sampler: str, seed: int, alpha: float = 1.1,
         beta: float = 0.3, r: int = 1) -> Tensor:
    """``recipes.drag`` of the 1-D signals ``x0`` [n, d], row j's point (src[j],) → (src[j] + shift,), in one
    operation (``step_size`` = shift), preset "clean" (see the module docstring); rows sharing a source position
    are one batch, the groups in increasing source order drawing from one noise stream."""
    src = np.asarray(src)
    noise = GaussianNoise(seed)
    out = torch.empty_like(x0)
    for s in np.unique(src):
        rows = torch.as_tensor(np.flatnonzero(src == s))
        out[rows] = recipes.drag(model, x0[rows], grid, [(int(s),)], [(int(s) + shift,)], sampler=sampler,
                                 noise=noise, r=r, alpha=alpha, beta=beta, step_size=float(shift),
                                 preset="clean").x
    return out


# ------------------------------------------------------------------------------------------- the tasks (measures)
def inpainting_task(p0, schedule, t0: float, steps: int, method: str, n: int, rng, t_end: float = 1e-3,
                    k: int = 5) -> dict:
    """One inpainting run (see module docstring); returns KL and conditional NLL."""
    x0 = p0.sample(n, rng)
    grid = vp_grid(schedule, t0, t_end, steps)
    out = inpaint(exact_eps_model(p0, schedule), torch.as_tensor(x0), grid, method, _seed(rng)).numpy()
    nll = -(p0.log_prob(out) - _marginal_1d(p0, 0).log_prob(out[:, :1]))
    return {"kl": kl_knn_one_sample(out, p0.log_prob, k), "cond_nll": mean_ci(nll)[0]}


def sdedit_task(p0, schedule, t0: float, steps: int, method: str, n: int, rng, t_end: float = 1e-3,
                k: int = 5) -> dict:
    """One SDEdit run: realism (KL, NLL under p_0) and faithfulness (distance to the input)."""
    y = stroke_mixture(p0).sample(n, rng)
    grid = vp_grid(schedule, t0, t_end, steps)
    out = sdedit(exact_eps_model(p0, schedule), torch.as_tensor(y), grid, method, _seed(rng)).numpy()
    return {"kl": kl_knn_one_sample(out, p0.log_prob, k), "nll": mean_ci(-p0.log_prob(out))[0],
            "distance": mean_ci(np.linalg.norm(out - y, axis=1))[0]}


def drag_task(p0, schedule, t0: float, steps: int, method: str, n: int, rng, t_end: float = 1e-3,
              alpha: float = 1.1, beta: float = 0.3, shift: int = 2, r: int = 1) -> dict:
    """One toy drag run (see module docstring).  ``method``: 'sde' (SDE-Drag, Cycle-SDE) or 'ode' (ODE-Drag)."""
    d = p0.dim
    src = rng.integers(r, d - shift - r, size=n)
    tgt = src + shift
    cov = p0.covs[0]
    x0 = p0.means[src] + rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
    grid = vp_grid(schedule, t0, t_end, steps)
    out = drag(exact_eps_model(p0, schedule), torch.as_tensor(x0), src, shift, grid, method, _seed(rng),
               alpha, beta, r).numpy()
    post = p0.component_posteriors(out)
    ideal = x0 - p0.means[src] + p0.means[tgt]
    return {"success": mean_ci(post.argmax(1) == tgt)[0], "nll": mean_ci(-p0.log_prob(out))[0],
            "distance": mean_ci(np.linalg.norm(out - ideal, axis=1))[0]}


METHODS = ("sde", "ode")
TASKS = {"inpainting": inpainting_task, "sdedit": sdedit_task, "drag": drag_task}
# the quality metric per task and whether larger is better (used for the 'who wins' summary)
PRIMARY = {"inpainting": ("kl", False), "sdedit": ("kl", False), "drag": ("success", True)}


def run_editing(config: EditingConfig | None = None, out_dir=None, figures: bool = True) -> dict:
    """Sweep t0 × steps × method for the three tasks; writes ``report.json`` and figures to ``out_dir``."""
    cfg = config or EditingConfig()
    t_wall = time.perf_counter()
    schedule = schedule_from_dict(cfg.schedule)
    p2 = builtin_mixture("2d")
    pd = bump_mixture(cfg.drag_dim)
    report: dict = {"experiment": "editing", "config": asdict(cfg), "tasks": {}}
    for task, fn in TASKS.items():
        rows = []
        for t0 in cfg.t0s:
            for steps in cfg.steps:
                for method in METHODS:
                    reps = []
                    for s in range(cfg.seeds):
                        rng = np.random.default_rng([cfg.seed, s, int(t0 * 1000), steps])
                        if task == "drag":
                            reps.append(fn(pd, schedule, t0, steps, method, cfg.n, rng, cfg.t_end,
                                           cfg.drag_alpha, cfg.drag_beta))
                        else:
                            reps.append(fn(p2, schedule, t0, steps, method, cfg.n, rng, cfg.t_end, cfg.knn_k))
                    row = {"t0": t0, "steps": steps, "method": method}
                    for key in reps[0]:
                        m, h = mean_ci([r[key] for r in reps])
                        row[key], row[key + "_ci"] = m, h
                    rows.append(row)
        report["tasks"][task] = rows
    report["summary"] = summarize(report)
    report["meta"] = run_meta(time.perf_counter() - t_wall, seed=cfg.seed,
                              ci="95% normal interval over `seeds` repeats of n samples each")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if figures:
            from .plots import editing_figures

            report["figures"] = editing_figures(report, out)
        write_json(out / "report.json", report)
    return report


def summarize(report: dict) -> dict:
    """Per task: in how many (t0, steps) cells SDE beats ODE on the primary metric, and the mean margin."""
    out = {}
    for task, rows in report["tasks"].items():
        key, higher = PRIMARY[task]
        cells = {}
        for r in rows:
            cells.setdefault((r["t0"], r["steps"]), {})[r["method"]] = r
        wins, margins, sig = 0, [], 0
        for c in cells.values():
            a, b = c["sde"][key], c["ode"][key]
            diff = (a - b) if higher else (b - a)
            margins.append(diff)
            wins += diff > 0
            ha, hb = c["sde"].get(key + "_ci"), c["ode"].get(key + "_ci")
            if ha is not None and hb is not None and np.isfinite(ha) and np.isfinite(hb) and diff > ha + hb:
                sig += 1
        out[f"{task}_sde_wins"] = f"{wins}/{len(cells)}"
        out[f"{task}_sde_wins_nonoverlapping_ci"] = f"{sig}/{len(cells)}"
        out[f"{task}_mean_margin_{key}"] = float(np.mean(margins))
    return out
