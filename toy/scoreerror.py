"""The theorem with an imperfect score (issue 12, item 5): ``python -m toy score-error --out DIR [--quick]``.

Thm 3.1 holds between any two laws moved by the *same* dynamics, so with a learned score the SDE shrinks
KL(q‖p̂) towards the model's own marginal p̂ — not towards the data.  What a user cares about is the distance of
the output to the data, KL(output ‖ p_data).  This lab measures it on a built-in mixture for the η-DDIM sampler of
``diffsamplers`` (η = 0: DDIM/ODE … η = 1: DDPM/SDE) and a grid of score error levels:

- ``exact``: the closed-form ε of the mixture;
- ``perturbed c``: exact ε plus a controlled smooth field, ε̂(x, t) = ε(x, t) + c·u(x), u(x) = sin(W x + b)
  (W ~ N(0, 1/ℓ²), ℓ = 1, b ~ U(0, 2π), fixed by the seed; RMS of u ≈ 1/√2 per coordinate, so c is an ε-space
  error size, i.e. a score error c·RMS(u)/σ_t, largest near t = 0 as for real models);
- ``mlp N``: an ε-MLP trained by DSM (``toy.train``) for N steps, several budgets.

For each level and η: KL(output ‖ p_{t_end}) (one-sample kNN, exact log p; t_end small, so p_{t_end} ≈ p_data)
from an *edited* start q_t0 (``edited_mixture``: a mismatched prior, noised to t0) and from an *unedited* start
p_t0, mean and 95% CI over seeds.  "SDE wins" at a level when KL at η = 1 is below KL at η = 0 by more than the
CIs.  Compare: Schaeffer, Rosa & Valle (2025, arXiv 2506.11378), as summarised in issue 12 — with the exact score
stochasticity lowers the KL; with an approximate one it is a trade-off.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from theory.schedules import schedule_from_dict

from .io import run_meta, write_json
from .klcurves import particle_kl
from .problems import TorchEps, builtin_mixture, edited_mixture, exact_score_fn, learned_score_fn
from .train import TrainConfig, train_score_model

__all__ = ["ScoreErrorConfig", "run_score_error", "smooth_field", "fig_heatmap", "fig_curves"]


@dataclass
class ScoreErrorConfig:
    """Settings of the score-error lab (see the module docstring)."""

    mixture: str = "2d"
    schedule: dict = field(default_factory=lambda: {"kind": "vp-linear", "beta_min": 0.1, "beta_max": 20.0})
    t0: float = 0.3
    t_end: float = 1e-3
    etas: list = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    perturbations: list = field(default_factory=lambda: [0.05, 0.15, 0.4])
    train_budgets: list = field(default_factory=lambda: [300, 1500, 6000])
    steps: int = 50
    n: int = 4000
    seeds: int = 3
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=512))

    @classmethod
    def quick(cls) -> "ScoreErrorConfig":
        return cls(perturbations=[0.1, 0.4], train_budgets=[200, 1500], steps=30, n=2000, seeds=2)

    @classmethod
    def tiny(cls) -> "ScoreErrorConfig":
        """Seconds-scale settings for the notebook's fast mode."""
        c = cls(perturbations=[0.4], train_budgets=[300], steps=20, n=1000, seeds=2)
        c.train.batch_size = 256
        c.train.model.hidden = 64
        return c

    def to_dict(self) -> dict:
        return asdict(self)


def smooth_field(dim: int, seed: int, n_freq: int = 4):
    """u(x) = sin(x W + b) averaged over n_freq random features: a smooth, bounded, fixed vector field [n, d]."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_freq, dim, dim))
    b = rng.uniform(0.0, 2 * np.pi, size=(n_freq, dim))

    def u(x: np.ndarray) -> np.ndarray:
        return np.mean([np.sin(x @ W[k] + b[k]) for k in range(n_freq)], axis=0) * np.sqrt(2.0)

    return u


def _perturbed_eps(mixture, schedule, c: float, u) -> TorchEps:
    exact = exact_score_fn(mixture, schedule)

    def score(x: np.ndarray, t: float) -> np.ndarray:  # ε̂ = ε + c u  <=>  ŝ = s − c u / σ_t
        return exact(x, t) - c * u(x) / float(schedule.sigma(t))

    return TorchEps(score, schedule)


def run_score_error(config: ScoreErrorConfig | None = None, out_dir: str | Path | None = None) -> dict:
    """Run the lab; returns the report (and writes report.json + heatmap.png + curves.png when out_dir is given)."""
    cfg = config or ScoreErrorConfig()
    if not (0.0 < cfg.t_end < cfg.t0 < 1.0):
        raise ValueError(f"need 0 < t_end < t0 < 1, got t0={cfg.t0}, t_end={cfg.t_end}")
    if not cfg.etas or any(not (0.0 <= float(e) <= 1.0) for e in cfg.etas):
        raise ValueError(f"etas must be a non-empty list in [0, 1], got {cfg.etas}")
    if cfg.steps < 2 or cfg.n < 50 or cfg.seeds < 2:
        raise ValueError("need steps >= 2, n >= 50 and seeds >= 2 (the CIs need two seeds)")
    t_start = time.perf_counter()
    sch = schedule_from_dict(cfg.schedule)
    p0 = builtin_mixture(cfg.mixture)
    q0 = edited_mixture(p0)
    u = smooth_field(p0.dim, cfg.seed + 17)
    levels: list[tuple[str, object, dict]] = [("exact", TorchEps(exact_score_fn(p0, sch), sch), {})]
    for c in cfg.perturbations:
        levels.append((f"perturbed {c:g}", _perturbed_eps(p0, sch, float(c), u), {"c": float(c)}))
    for budget in cfg.train_budgets:
        tc = TrainConfig(**{**asdict(cfg.train), "steps": int(budget), "seed": cfg.seed})
        tc.model = cfg.train.model
        res = train_score_model(p0, sch, tc)
        levels.append((f"mlp {budget}", TorchEps(learned_score_fn(res.model), sch),
                       {"train_steps": int(budget), "train_seconds": res.seconds}))
    # score error of every level: RMS over x ~ p_t, t uniform in [t_end, t0], of sigma_t |s_hat - s| (eps units)
    rng = np.random.default_rng(cfg.seed + 5)
    ts = np.linspace(cfg.t_end, cfg.t0, 8)
    rows = []
    for name, model, info in levels:
        errs = []
        for t in ts:
            x = p0.marginal(sch, float(t)).sample(1000, rng)
            eps_hat = model(torch.as_tensor(x), float(t)).double().numpy()
            eps = -float(sch.sigma(t)) * p0.marginal(sch, float(t)).score(x)
            errs.append(np.mean(np.sum((eps_hat - eps) ** 2, axis=1)))
        row = {"level": name, **info, "eps_rms_error": float(np.sqrt(np.mean(errs))), "kl_edited": [],
               "ci_edited": [], "kl_unedited": [], "ci_unedited": []}
        for eta in cfg.etas:
            r = particle_kl(model, q0, p0, sch, cfg.t0, cfg.t_end, [cfg.steps], float(eta), cfg.n, cfg.seeds,
                            seed=cfg.seed)
            row["kl_edited"].append(r["kl"][0])
            row["ci_edited"].append(r["kl_ci"][0])
            row["kl_unedited"].append(r["floor"][0])
            row["ci_unedited"].append(r["floor_ci"][0])
        ke, ce = np.array(row["kl_edited"]), np.array(row["ci_edited"])
        row["best_eta_edited"] = float(cfg.etas[int(np.argmin(ke))])
        row["best_eta_unedited"] = float(cfg.etas[int(np.argmin(row["kl_unedited"]))])
        row["sde_wins_edited"] = bool(ke[-1] + ce[-1] < ke[0] - ce[0])
        row["ode_wins_edited"] = bool(ke[0] + ce[0] < ke[-1] - ce[-1])
        rows.append(row)
    first_loss = next((r["level"] for r in rows if not r["sde_wins_edited"]), None)
    # exact-score reference from the theory grid solver: ODE keeps KL(q_t0 || p_t0), the SDE ends at KL(t_end)
    from theory.verify import verify

    ref = verify({"schedule": cfg.schedule, "data": p0.to_dict(), "edited": q0.marginal(sch, cfg.t0).to_dict(),
                  "t0": cfg.t0, "t_end": cfg.t_end, "grid": [120] * p0.dim if p0.dim == 2 else [800],
                  "n_steps": 40}, "grid") if p0.dim <= 2 else None
    report = {"experiment": "score-error", "config": cfg.to_dict(), "etas": list(cfg.etas), "levels": rows,
              "exact_reference": None if ref is None else {"ode_kl": ref["kl_start"], "sde_kl": ref["kl_end"],
                                                           "relative_residual": ref["relative_residual"]},
              "summary": {"levels": len(rows), "sde_wins_edited": sum(r["sde_wins_edited"] for r in rows),
                          "first_level_where_sde_does_not_win": first_loss or "none"},
              "meta": run_meta(time.perf_counter() - t_start)}
    if out_dir is not None:
        from .io import save_figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "report.json", report)
        save_figure(fig_heatmap(report), out / "heatmap.png")
        save_figure(fig_curves(report), out / "curves.png")
    return report


def fig_heatmap(report: dict):
    """KL(output ‖ p_data) over score level × η, edited and unedited start (log colour scale)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    rows, etas = report["levels"], report["etas"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(rows) + 2.2))
    for ax, key, title in ((axes[0], "kl_edited", "edited start q_t0"), (axes[1], "kl_unedited", "unedited start p_t0")):
        M = np.maximum(np.array([r[key] for r in rows]), 1e-4)
        im = ax.imshow(M, aspect="auto", cmap="viridis", norm=LogNorm(vmin=M.min(), vmax=M.max()))
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                ax.text(j, i, f"{M[i, j]:.3f}", ha="center", va="center", fontsize=7,
                        color="w" if M[i, j] < np.sqrt(M.min() * M.max()) else "k")
            best = int(np.argmin(M[i]))
            ax.add_patch(plt.Rectangle((best - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=1.5))
        ax.set_xticks(range(len(etas)), [f"{e:g}" for e in etas])
        ax.set_yticks(range(len(rows)), [f"{r['level']} (ε err {r['eps_rms_error']:.2f})" for r in rows], fontsize=7)
        ax.set_xlabel("η (0 = ODE/DDIM, 1 = SDE/DDPM)")
        ax.set_title(f"KL(output ‖ p_data), {title}; red = best η", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def fig_curves(report: dict):
    """KL(output ‖ p_data) against η, one curve per score level, with 95% CIs."""
    import matplotlib.pyplot as plt

    rows, etas = report["levels"], report["etas"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, ci, title in ((axes[0], "kl_edited", "ci_edited", "edited start"),
                               (axes[1], "kl_unedited", "ci_unedited", "unedited start")):
        for r in rows:
            ax.errorbar(etas, r[key], yerr=np.nan_to_num(r[ci]), marker="o", capsize=2, label=r["level"])
        ref = report.get("exact_reference")
        if ref is not None and key == "kl_edited":
            ax.plot([0, 1], [ref["ode_kl"], ref["sde_kl"]], "k*", ms=10, label="exact score, grid (η = 0, 1)")
        ax.set_yscale("log")
        ax.set_xlabel("η")
        ax.set_ylabel("KL(output ‖ p_data) [nats]")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
