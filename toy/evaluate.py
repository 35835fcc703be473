"""Score-model accuracy against the exact mixture score, as a function of t."""
from __future__ import annotations

import numpy as np

from .problems import learned_score_fn

__all__ = ["score_error", "summarize_score_error"]


def score_error(model, mixture, schedule, times=None, n: int = 4000, seed: int = 0) -> dict:
    """Relative L2 score error  e(t) = sqrt(E_{p_t}‖s_θ − ∇log p_t‖² / E_{p_t}‖∇log p_t‖²)  on x ~ p_t.

    Returns ``{"times", "rel_error", "mse", "mean_rel_error"}`` (lists of floats; ``mean_rel_error`` is the
    average of e(t) over ``times``).  Default times: 40 points, log-spaced on [1e-2, 1].
    """
    times = np.geomspace(1e-2, 1.0, 40) if times is None else np.asarray(times, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x0 = mixture.sample(n, rng)
    z = rng.standard_normal(x0.shape)
    learned = learned_score_fn(model)
    rel, mse = [], []
    for t in times:
        xt = float(schedule.alpha(t)) * x0 + float(schedule.sigma(t)) * z
        s_true = mixture.marginal(schedule, float(t)).score(xt)
        s_hat = learned(xt, float(t))
        err = np.mean(np.sum((s_hat - s_true) ** 2, axis=1))
        ref = np.mean(np.sum(s_true ** 2, axis=1))
        mse.append(float(err))
        rel.append(float(np.sqrt(err / ref)))
    return {"times": times.tolist(), "rel_error": rel, "mse": mse, "mean_rel_error": float(np.mean(rel)),
            "n_samples": n, "definition": "sqrt(E_p_t|s_hat - s|^2 / E_p_t|s|^2)"}


def summarize_score_error(err: dict) -> str:
    r = np.asarray(err["rel_error"])
    return f"relative score error: mean {r.mean():.3f}, max {r.max():.3f}, at t=1: {r[-1]:.3f}"
