"""Gaussian mixtures in any dimension: log-density, score, Laplacian of log-density, sampling, forward marginals.

All evaluation uses Cholesky factors and log-sum-exp / softmax responsibilities (never ratios of pdfs).
Points are arrays of shape [n, d].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.special import logsumexp, softmax

from .errors import ConfigError
from .schedules import Schedule


def _check_cov(c: np.ndarray, k: int) -> None:
    if not np.all(np.isfinite(c)):
        raise ConfigError(f"covariance {k} has non-finite entries")
    scale = max(float(np.max(np.abs(c))), 1e-300)
    if np.max(np.abs(c - c.T)) > 1e-10 * scale:
        raise ConfigError(f"covariance {k} is not symmetric")
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ConfigError(f"covariance {k} is not positive definite") from None
    if np.min(np.linalg.eigvalsh(c)) <= 1e-14 * scale:
        raise ConfigError(f"covariance {k} is not positive definite (numerically singular)")


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """p(x) = sum_k w_k N(x; m_k, C_k), validated (weights > 0 summing to 1, symmetric positive-definite C_k)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self) -> None:
        try:
            w = np.asarray(self.weights, dtype=np.float64)
            m = np.asarray(self.means, dtype=np.float64)
            c = np.asarray(self.covs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"mixture entries must be numeric arrays: {exc}") from None
        if w.ndim != 1 or w.size == 0:
            raise ConfigError("weights must be a non-empty list")
        K = w.size
        if m.ndim != 2 or m.shape[0] != K or m.shape[1] == 0:
            raise ConfigError(f"means must have shape [{K}, d] (one mean per weight), got {list(m.shape)}")
        d = m.shape[1]
        if c.shape != (K, d, d):
            raise ConfigError(f"covs must have shape [{K}, {d}, {d}], got {list(c.shape)}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(m))):
            raise ConfigError("weights and means must be finite")
        if np.any(w <= 0):
            raise ConfigError("weights must be positive")
        if abs(w.sum() - 1.0) > 1e-6:
            raise ConfigError(f"weights must sum to 1, got {w.sum():.9g}")
        if not getattr(self, "_trusted", False):
            for k in range(K):
                _check_cov(c[k], k)
        c = 0.5 * (c + np.swapaxes(c, 1, 2))
        chol = np.linalg.cholesky(c)
        prec = np.linalg.inv(c)
        prec = 0.5 * (prec + np.swapaxes(prec, 1, 2))
        object.__setattr__(self, "weights", w / w.sum())
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "covs", c)
        object.__setattr__(self, "_chol", chol)
        object.__setattr__(self, "_prec", prec)
        object.__setattr__(self, "_logw", np.log(w / w.sum()))
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        object.__setattr__(self, "_lognorm", -0.5 * (d * math.log(2 * math.pi) + logdet))

    @property
    def dim(self) -> int:
        """Dimension d."""
        return int(self.means.shape[1])

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return int(self.weights.size)

    def is_gaussian(self) -> bool:
        """True when the mixture has a single component."""
        return self.n_components == 1

    def _as_points(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"points must have shape [n, {self.dim}], got {x.shape}")
        return x

    def _parts(self, x: np.ndarray):
        """Per-component log(w_k N_k(x)) [n, K] and precision-weighted residuals P_k (x - m_k) [n, K, d]."""
        diff = x[:, None, :] - self.means[None, :, :]
        pd = np.einsum("kij,nkj->nki", self._prec, diff)
        quad = np.einsum("nki,nki->nk", diff, pd)
        return self._logw + self._lognorm - 0.5 * quad, pd

    def component_log_probs(self, x: np.ndarray) -> np.ndarray:
        """log(w_k N(x; m_k, C_k)) for every component, shape [n, K]."""
        return self._parts(self._as_points(x))[0]

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log p(x) = logsumexp_k [log w_k + log N(x; m_k, C_k)], shape [n]."""
        return logsumexp(self.component_log_probs(x), axis=1)

    def component_posteriors(self, x: np.ndarray) -> np.ndarray:
        """Responsibilities r_k(x) = softmax_k(log w_k N_k(x)), shape [n, K]."""
        return softmax(self.component_log_probs(x), axis=1)

    def score(self, x: np.ndarray) -> np.ndarray:
        """grad log p(x) = -sum_k r_k(x) C_k^{-1}(x - m_k), shape [n, d]."""
        lp, pd = self._parts(self._as_points(x))
        r = softmax(lp, axis=1)
        return -np.einsum("nk,nki->ni", r, pd)

    def laplacian_log_prob(self, x: np.ndarray) -> np.ndarray:
        """Delta log p = sum_k r_k (||s_k||^2 - tr P_k) - ||s||^2 with s_k = -P_k (x - m_k), shape [n]."""
        lp, pd = self._parts(self._as_points(x))
        r = softmax(lp, axis=1)
        s = -np.einsum("nk,nki->ni", r, pd)
        tr = np.trace(self._prec, axis1=1, axis2=2)
        return np.einsum("nk,nk->n", r, np.einsum("nki,nki->nk", pd, pd) - tr) - np.einsum("ni,ni->n", s, s)

    def hessian_and_grad_laplacian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score [n, d], Hessian of log p [n, d, d], grad of Laplacian of log p [n, d]), closed form:
        H = sum_k r_k (s_k s_k^T - P_k) - s s^T;  with L = Delta log p = sum_k r_k (|s_k|^2 - tr P_k) - |s|^2,
        grad L = sum_k r_k [(s_k - s)(|s_k|^2 - tr P_k) - 2 P_k s_k] - 2 H s   (grad r_k = r_k (s_k - s))."""
        lp, pd = self._parts(self._as_points(x))
        r = softmax(lp, axis=1)
        sk = -pd                                                    # [n, K, d]
        s = np.einsum("nk,nki->ni", r, sk)
        H = np.einsum("nk,nki,nkj->nij", r, sk, sk) - np.einsum("nk,kij->nij", r, self._prec) \
            - np.einsum("ni,nj->nij", s, s)
        tr = np.trace(self._prec, axis1=1, axis2=2)
        a = np.einsum("nki,nki->nk", sk, sk) - tr                   # |s_k|^2 - tr P_k
        Ps = np.einsum("kij,nkj->nki", self._prec, sk)
        gL = np.einsum("nk,nki->ni", r * a, sk - s[:, None, :]) - 2.0 * np.einsum("nk,nki->ni", r, Ps) \
            - 2.0 * np.einsum("nij,nj->ni", H, s)
        return s, H, gL

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n i.i.d. draws: component k ~ Categorical(w), x = m_k + L_k z."""
        k = rng.choice(self.n_components, size=n, p=self.weights)
        z = rng.standard_normal((n, self.dim))
        return self.means[k] + np.einsum("nij,nj->ni", self._chol[k], z)

    def mean(self) -> np.ndarray:
        """Mixture mean sum_k w_k m_k."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """Mixture covariance sum_k w_k (C_k + m_k m_k^T) - m m^T."""
        m = self.mean()
        second = np.einsum("k,kij->ij", self.weights, self.covs + np.einsum("ki,kj->kij", self.means, self.means))
        return second - np.outer(m, m)

    def marginal(self, schedule: Schedule, t: float) -> "GaussianMixture":
        """Exact forward marginal p_t: components N(alpha_t m_k, alpha_t^2 C_k + sigma_t^2 I)."""
        a = float(schedule.alpha(t))
        s2 = float(schedule.sigma(t)) ** 2
        return self.affine(a, s2)

    def affine(self, scale: float, var_add: float) -> "GaussianMixture":
        """Law of scale X + sqrt(var_add) Z: components N(scale m_k, scale^2 C_k + var_add I).

        Built without re-validating (an SPD covariance stays SPD), which keeps repeated score calls cheap."""
        c = scale * scale * self.covs + var_add * np.eye(self.dim)
        if var_add < 0 or scale == 0:
            return GaussianMixture(self.weights, scale * self.means, c)
        obj = object.__new__(GaussianMixture)
        object.__setattr__(obj, "_trusted", True)
        object.__setattr__(obj, "weights", self.weights)
        object.__setattr__(obj, "means", scale * self.means)
        object.__setattr__(obj, "covs", c)
        obj.__post_init__()
        return obj

    def std_extent(self, n_std: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box covering every component's mean +- n_std marginal standard deviations."""
        sd = np.sqrt(np.diagonal(self.covs, axis1=1, axis2=2))
        return (self.means - n_std * sd).min(axis=0), (self.means + n_std * sd).max(axis=0)

    def to_dict(self) -> dict:
        """Config dictionary accepted by mixture_from_dict."""
        return {"weights": self.weights.tolist(), "means": self.means.tolist(), "covs": self.covs.tolist()}


def mixture_from_dict(d: Mapping[str, Any], name: str = "mixture") -> GaussianMixture:
    """Parse {"weights": [K], "means": [K][d], "covs": [K][d][d]} into a validated GaussianMixture."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{name} must be an object with weights, means, covs")
    missing = [k for k in ("weights", "means", "covs") if k not in d]
    if missing:
        raise ConfigError(f"{name} is missing {missing}")
    extra = set(d) - {"weights", "means", "covs"}
    if extra:
        raise ConfigError(f"{name} has unknown keys {sorted(extra)}")
    try:
        w = np.array(d["weights"], dtype=np.float64)
        m = np.array(d["means"], dtype=np.float64)
        c = np.array(d["covs"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: weights, means and covs must be (ragged-free) numeric arrays") from None
    try:
        return GaussianMixture(w, m, c)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def gaussian(mean: np.ndarray, cov: np.ndarray) -> GaussianMixture:
    """Single Gaussian N(mean, cov) as a one-component mixture."""
    mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    cov = np.asarray(cov, dtype=np.float64).reshape(mean.size, mean.size)
    return GaussianMixture(np.ones(1), mean[None, :], cov[None, :, :])
