"""The forward marginal p_t of a Gaussian mixture at many times in one set of array calls: log p_t(x) and
grad log p_t(x) for times [m] and points [n, d] -> [m, n] and [m, n, d] (GaussianMixture.marginal(schedule, t),
evaluated per time, is the reference; they agree to round-off).

p_t = sum_k w_k N(alpha_t m_k, alpha_t^2 C_k + sigma_t^2 I); with C_k = U_k diag(lam_k) U_k^T the covariance is
U_k diag(alpha^2 lam_k + sigma^2) U_k^T, so z = U_k^T (x - alpha m_k) has independent coordinates of those variances:
log N = -1/2 (d log 2 pi + sum log v + sum z^2 / v), score_k = -U_k (z / v), responsibilities by log-sum-exp."""
from __future__ import annotations

import math

import numpy as np

from .mixtures import GaussianMixture
from .schedules import Schedule


def _parts(mix: GaussianMixture, schedule: Schedule, x: np.ndarray, times: np.ndarray):
    """(log(w_k N_k) [m, K, n], z / v [m, K, n, d] in the eigenbases, U [K, d, d])."""
    t = np.asarray(times, dtype=np.float64)
    a = np.asarray(schedule.alpha(t), dtype=np.float64)
    s2 = np.asarray(schedule.sigma(t), dtype=np.float64) ** 2
    lam, U = mix._eig()                                           # [K, d], [K, d, d]
    v = a[:, None, None] ** 2 * lam[None] + s2[:, None, None]     # [m, K, d]
    d = mix.dim
    # z[m, K, n, e] = sum_i U[k, i, e] (x[n, i] - a m[k, i])
    xr = np.einsum("nd,kde->kne", x, U)                           # U_k^T x: [K, n, d]
    mr = np.einsum("kd,kde->ke", mix.means, U)                    # U_k^T m_k: [K, d]
    z = xr[None] - a[:, None, None, None] * mr[None, :, None, :]  # [m, K, n, d]
    zv = z / v[:, :, None, :]
    lognorm = -0.5 * (d * math.log(2 * math.pi) + np.log(v).sum(axis=-1))   # [m, K]
    lp = (mix._logw[None, :] + lognorm)[:, :, None] - 0.5 * (z * zv).sum(axis=-1)
    return lp, zv, U


def _lse(lp: np.ndarray) -> np.ndarray:
    mx = lp.max(axis=1)
    return np.log(np.exp(lp - mx[:, None]).sum(axis=1)) + mx


_BATCH_MAX = 200_000   # times x components x points above which a loop over times (GaussianMixture.marginal) is
#                       cheaper than the [m, K, n, d] temporaries (2-D grids)


def compiled_many(mix: GaussianMixture, schedule: Schedule, x: np.ndarray, times: np.ndarray, want_score: bool):
    """(log p_t [m, n], None) or (None, score [m, n, d]) (want_score) by the compiled one-pass kernel
    (theory.fp_compiled.mixture_many); None when numba is not importable."""
    try:
        from .fp_compiled import mixture_many
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    t = np.asarray(times, dtype=np.float64)
    a = np.ascontiguousarray(np.asarray(schedule.alpha(t), dtype=np.float64).reshape(-1))
    s2 = np.ascontiguousarray(np.asarray(schedule.sigma(t), dtype=np.float64).reshape(-1) ** 2)
    lam, U = mix._eig()
    x = np.ascontiguousarray(x, dtype=np.float64)
    lp = np.empty((t.size, x.shape[0]) if not want_score else (1, 1))
    sc = np.empty((t.size, x.shape[0], x.shape[1]) if want_score else (1, 1, 1))
    mixture_many(x, a, s2, np.ascontiguousarray(mix._logw), np.ascontiguousarray(mix.means),
                 np.ascontiguousarray(lam), np.ascontiguousarray(U), want_score, lp, sc)
    return (None, sc) if want_score else (lp, None)


def _use_compiled() -> bool:
    from .fokker_planck import default_backend

    return default_backend() != "numpy"


def log_prob_many(mix: GaussianMixture, schedule: Schedule, x: np.ndarray, times: np.ndarray) -> np.ndarray:
    """log p_t(x) for every time, [m, n]."""
    x = np.asarray(x, dtype=np.float64)
    if _use_compiled():
        out = compiled_many(mix, schedule, x, times, False)
        if out is not None:
            return out[0]
    if len(times) * mix.n_components * x.shape[0] > _BATCH_MAX:
        return np.stack([mix.marginal(schedule, float(t)).log_prob(x) for t in times])
    lp, _, _ = _parts(mix, schedule, x, times)
    return _lse(lp)


def score_many(mix: GaussianMixture, schedule: Schedule, x: np.ndarray, times: np.ndarray) -> np.ndarray:
    """grad log p_t(x) = -sum_k r_k U_k (z_k / v_k) for every time, [m, n, d]."""
    x = np.asarray(x, dtype=np.float64)
    if _use_compiled():
        out = compiled_many(mix, schedule, x, times, True)
        if out is not None:
            return out[1]
    if len(times) * mix.n_components * x.shape[0] > _BATCH_MAX:
        return np.stack([mix.marginal(schedule, float(t)).score(x) for t in times])
    lp, zv, U = _parts(mix, schedule, x, times)
    r = np.exp(lp - _lse(lp)[:, None, :])                           # [m, K, n]
    return -np.einsum("mkn,mkne,kde->mnd", r, zv, U)


def attach_many(score, log_p, mix: GaussianMixture, schedule: Schedule):
    """Give the exact score(x, t) and log_p(x, t) of p_t their batched forms (.many), which evolve_pair uses."""
    score.many = lambda x, times: score_many(mix, schedule, x, times)
    log_p.many = lambda x, times: log_prob_many(mix, schedule, x, times)
    return score, log_p
