"""Divergences: closed-form Gaussian KL/Fisher, grid quadrature, Monte Carlo, and Kozachenko-Leonenko kNN entropy.

Fisher divergence throughout is F(q, p) = E_q ||grad log q - grad log p||^2 (no 1/2 inside).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy.special import digamma, gammaln


def kl_gaussian(m1: np.ndarray, S1: np.ndarray, m2: np.ndarray, S2: np.ndarray) -> float:
    """KL(N(m1,S1) || N(m2,S2)) = 1/2 [tr(S2^-1 S1) + (m2-m1)^T S2^-1 (m2-m1) - d + log det S2 - log det S1]."""
    m1, m2 = np.atleast_1d(m1), np.atleast_1d(m2)
    S1, S2 = np.atleast_2d(S1), np.atleast_2d(S2)
    d = m1.size
    L2 = np.linalg.cholesky(S2)
    L1 = np.linalg.cholesky(S1)
    A = np.linalg.solve(L2, L1)
    dm = np.linalg.solve(L2, m2 - m1)
    logdet = 2.0 * (np.log(np.diag(L2)).sum() - np.log(np.diag(L1)).sum())
    return float(0.5 * (np.sum(A * A) + dm @ dm - d + logdet))


def fisher_gaussian(m1: np.ndarray, S1: np.ndarray, m2: np.ndarray, S2: np.ndarray) -> float:
    """E_{N(m1,S1)} ||grad log q - grad log p||^2 = tr(A S1 A^T) + ||P2 (m1 - m2)||^2, A = P2 - P1."""
    m1, m2 = np.atleast_1d(m1), np.atleast_1d(m2)
    S1, S2 = np.atleast_2d(S1), np.atleast_2d(S2)
    P1, P2 = np.linalg.inv(S1), np.linalg.inv(S2)
    A = P2 - P1
    b = P2 @ (m1 - m2)
    return float(np.trace(A @ S1 @ A.T) + b @ b)


def kl_grid(q: np.ndarray, p: np.ndarray, cell_volume: float, floor: float = 1e-300) -> float:
    """sum_cells q log(q/p) dV (midpoint quadrature; cells with q = 0 contribute 0)."""
    q = np.asarray(q, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    mask = q > floor
    return float(np.sum(q[mask] * (np.log(q[mask]) - np.log(np.maximum(p[mask], floor)))) * cell_volume)


def fisher_grid(q: np.ndarray, p: np.ndarray, spacing: Sequence[float], floor: float = 1e-300) -> float:
    """sum_cells q ||grad log(q/p)||^2 dV with second-order central differences of log(q/p)."""
    q = np.asarray(q, dtype=np.float64)
    lr = np.log(np.maximum(q, floor)) - np.log(np.maximum(p, floor))
    spacing = list(np.atleast_1d(spacing).astype(float))
    grads = np.gradient(lr, *spacing, edge_order=2)
    if q.ndim == 1:
        grads = [grads]
    sq = sum(g * g for g in grads)
    return float(np.sum(np.where(q > floor, q * sq, 0.0)) * float(np.prod(spacing)))


def _grad4(f: np.ndarray, h: float, axis: int) -> np.ndarray:
    """Fourth-order central difference along axis (second-order np.gradient in the two cells next to each wall)."""
    if f.ndim == 1 and f.shape[0] >= 5:
        g = np.empty_like(f)
        g[2:-2] = (f[:-4] - 8.0 * f[1:-3] + 8.0 * f[3:-1] - f[4:]) / (12.0 * h)
        g[0] = (-3.0 * f[0] + 4.0 * f[1] - f[2]) / (2.0 * h)       # np.gradient's edge_order=2 stencils
        g[1] = (f[2] - f[0]) / (2.0 * h)
        g[-2] = (f[-1] - f[-3]) / (2.0 * h)
        g[-1] = (3.0 * f[-1] - 4.0 * f[-2] + f[-3]) / (2.0 * h)
        return g
    f = np.moveaxis(f, axis, -1)
    g = np.gradient(f, h, axis=-1, edge_order=2)
    if f.shape[-1] >= 5:
        g[..., 2:-2] = (f[..., :-4] - 8.0 * f[..., 1:-3] + 8.0 * f[..., 3:-1] - f[..., 4:]) / (12.0 * h)
    return np.moveaxis(g, -1, axis)


def fisher_grid_logratio(q: np.ndarray, log_ratio: np.ndarray, spacing: Sequence[float],
                         rel_floor: float = 1e-14) -> float:
    """sum_cells q ||grad log_ratio||^2 dV, log_ratio = log q - log p (p exact, e.g. closed form), by fourth-order
    central differences.  Cells whose 5-point stencil (along any axis) touches a cell with q below
    rel_floor * max(q) are left out: there log q is round-off noise, and their mass is below rel_floor."""
    q = np.asarray(q, dtype=np.float64)
    lr = np.asarray(log_ratio, dtype=np.float64)
    spacing = list(np.atleast_1d(spacing).astype(float))
    ok = q > rel_floor * float(q.max())
    lr = np.where(ok, lr, 0.0)
    keep = ok.copy()
    sq = np.zeros_like(q)
    for ax, h in enumerate(spacing):
        g = _grad4(lr, h, ax)
        sq += g * g
        o = np.moveaxis(ok, ax, -1)
        k = np.moveaxis(keep, ax, -1)
        for sh in (1, 2):
            k[..., sh:] &= o[..., :-sh]
            k[..., :-sh] &= o[..., sh:]
    return float(np.sum(np.where(keep, q * sq, 0.0)) * float(np.prod(spacing)))


def fisher_grid_scores(q: np.ndarray, score_q: np.ndarray, score_p: np.ndarray, cell_volume: float) -> float:
    """sum_cells q ||s_q - s_p||^2 dV given score arrays with a trailing dimension axis."""
    diff = np.asarray(score_q) - np.asarray(score_p)
    return float(np.sum(np.asarray(q) * np.sum(diff * diff, axis=-1)) * cell_volume)


def mc_mean(values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Sample mean and half-width z * std / sqrt(n) of a normal-approximation confidence interval."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(z * v.std(ddof=1) / math.sqrt(v.size))


def kl_mc(samples_q: np.ndarray, log_q: Callable[[np.ndarray], np.ndarray],
          log_p: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """KL(q||p) = E_q[log q - log p] by Monte Carlo with x ~ q; returns (estimate, 95% half-width)."""
    return mc_mean(log_q(samples_q) - log_p(samples_q))


def fisher_mc(samples_q: np.ndarray, score_q: Callable[[np.ndarray], np.ndarray],
              score_p: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """F(q,p) = E_q ||s_q - s_p||^2 by Monte Carlo; returns (estimate, 95% half-width)."""
    d = score_q(samples_q) - score_p(samples_q)
    return mc_mean(np.sum(d * d, axis=1))


def knn_entropy(samples: np.ndarray, k: int = 5) -> float:
    """Kozachenko-Leonenko: H = psi(n) - psi(k) + log V_d + (d/n) sum_i log eps_i, eps_i = distance to k-th neighbour."""
    from scipy.spatial import cKDTree

    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, d = x.shape
    dist, _ = cKDTree(x).query(x, k=k + 1)
    eps = np.maximum(dist[:, k], 1e-300)
    log_vd = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1.0)
    return float(digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(eps)))


def kl_knn_one_sample(samples_q: np.ndarray, log_p: Callable[[np.ndarray], np.ndarray], k: int = 5) -> float:
    """One-sample KL(q||p) = -H_kNN(q) - E_q[log p] (exact log p, estimated entropy of q)."""
    x = np.asarray(samples_q, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return float(-knn_entropy(x, k) - np.mean(log_p(x)))
