"""Gaussian mixtures in any dimension: log-density, score, Laplacian of log-density, sampling, forward marginals.

All evaluation uses Cholesky factors and log-sum-exp / softmax responsibilities (never ratios of pdfs).
Points are arrays of shape [n, d].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError, numeric_array
from .schedules import Schedule


def logsumexp(a: np.ndarray, axis: int = 1) -> np.ndarray:
    """log sum exp along axis (max-shifted; rows that are all -inf give -inf).  A lean stand-in for
    scipy.special.logsumexp, whose array-API dispatch costs ~0.2 ms a call -- a quarter of a small grid step."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(a - m), axis=axis)) + np.squeeze(m, axis=axis)


def softmax(a: np.ndarray, axis: int = 1) -> np.ndarray:
    """exp(a - logsumexp(a)) along axis."""
    m = np.max(a, axis=axis, keepdims=True)
    e = np.exp(a - np.where(np.isfinite(m), m, 0.0))
    return e / np.sum(e, axis=axis, keepdims=True)


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
        d = x.shape[1]
        if 1 < d <= 3:
            lpT, pdT = self._parts_small(x)
            return lpT.T, np.transpose(pdT, (2, 1, 0))
        diff = x[:, None, :] - self.means[None, :, :]
        if d == 1:  # 1-D: plain products (einsum's set-up dominates on small arrays)
            pd = diff * self._prec[:, 0, 0][None, :, None]
            return self._logw + self._lognorm - 0.5 * (diff * pd)[:, :, 0], pd
        pd = np.einsum("kij,nkj->nki", self._prec, diff)
        quad = np.einsum("nki,nki->nk", diff, pd)
        return self._logw + self._lognorm - 0.5 * quad, pd

    def _parts_small(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """_parts for d = 2, 3 in a component-major layout: d^2 contiguous multiply-adds over [K, n] rows (einsum is
        ~5-10x slower on these shapes, and reductions over K are then elementwise across rows).
        Returns (log(w_k N_k(x)) as [K, n], P_k (x - m_k) as [d, K, n])."""
        d = x.shape[1]
        D = x.T[:, None, :] - self.means.T[:, :, None]               # [d, K, n]
        P = self._prec
        pdT = np.empty_like(D)
        quad = 0.0
        for i in range(d):
            acc = D[0] * P[:, i, 0, None]
            for j in range(1, d):
                acc += D[j] * P[:, i, j, None]
            pdT[i] = acc
            quad = quad + D[i] * acc
        return (self._logw + self._lognorm)[:, None] - 0.5 * quad, pdT

    @staticmethod
    def _lse_rows(lpT: np.ndarray) -> np.ndarray:
        """log sum_k exp(lpT[k]) for a [K, n] array (elementwise across the K rows)."""
        m = lpT.max(axis=0)
        m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.exp(lpT - m).sum(axis=0)) + m

    def component_log_probs(self, x: np.ndarray) -> np.ndarray:
        """log(w_k N(x; m_k, C_k)) for every component, shape [n, K]."""
        return self._parts(self._as_points(x))[0]

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log p(x) = logsumexp_k [log w_k + log N(x; m_k, C_k)], shape [n]."""
        x = self._as_points(x)
        if 1 < x.shape[1] <= 3:
            return self._lse_rows(self._parts_small(x)[0])
        return logsumexp(self.component_log_probs(x), axis=1)

    def component_posteriors(self, x: np.ndarray) -> np.ndarray:
        """Responsibilities r_k(x) = softmax_k(log w_k N_k(x)), shape [n, K]."""
        return softmax(self.component_log_probs(x), axis=1)

    def score(self, x: np.ndarray) -> np.ndarray:
        """grad log p(x) = -sum_k r_k(x) C_k^{-1}(x - m_k), shape [n, d]."""
        x = self._as_points(x)
        if 1 < x.shape[1] <= 3:
            lpT, pdT = self._parts_small(x)
            r = np.exp(lpT - self._lse_rows(lpT))
            return -np.stack([(r * pdT[i]).sum(axis=0) for i in range(x.shape[1])], axis=1)
        lp, pd = self._parts(x)
        r = softmax(lp, axis=1)
        if pd.shape[2] == 1:
            return -np.sum(r * pd[:, :, 0], axis=1, keepdims=True)
        return -np.einsum("nk,nki->ni", r, pd)

    def log_prob_and_score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log p(x) [n], grad log p(x) [n, d]) from one pass over the components."""
        lp, pd = self._parts(self._as_points(x))
        lse = logsumexp(lp, axis=1)
        r = np.exp(lp - lse[:, None])
        return lse, -np.einsum("nk,nki->ni", r, pd)

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
        """n i.i.d. draws: component k ~ Categorical(w), x = m_k + L_k z (L_k: Cholesky factor of C_k)."""
        if self._chol is None:
            object.__setattr__(self, "_chol", np.linalg.cholesky(self.covs))
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

    def _eig(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigen-decomposition C_k = U_k diag(lam_k) U_k^T of every component (cached)."""
        e = self.__dict__.get("_eig_cache")
        if e is None:
            lam, U = np.linalg.eigh(self.covs)
            e = (lam, U)
            object.__setattr__(self, "_eig_cache", e)
        return e

    def affine(self, scale: float, var_add: float) -> "GaussianMixture":
        """Law of scale X + sqrt(var_add) Z: components N(scale m_k, scale^2 C_k + var_add I).

        Built without re-validating or refactoring: from the cached eigen-decomposition of C_k, the new covariance
        U diag(s^2 lam + v) U^T has precision U diag(1 / (s^2 lam + v)) U^T and log-determinant sum log(s^2 lam + v)
        in closed form (the Cholesky factor, needed only to sample, is made on first use).  That keeps the
        marginal p_t, asked for at every time of a solver, cheap (~10 us instead of ~80 us)."""
        if var_add < 0 or scale == 0:
            c = scale * scale * self.covs + var_add * np.eye(self.dim)
            return GaussianMixture(self.weights, scale * self.means, c)
        lam, U = self._eig()
        lam2 = scale * scale * lam + var_add                       # [K, d]
        if np.any(lam2 <= 0) or not np.all(np.isfinite(lam2)):
            c = scale * scale * self.covs + var_add * np.eye(self.dim)
            return GaussianMixture(self.weights, scale * self.means, c)
        d = self.dim
        obj = object.__new__(GaussianMixture)
        covs = scale * scale * self.covs + var_add * np.eye(d)
        prec = (U * (1.0 / lam2)[:, None, :]) @ np.swapaxes(U, 1, 2)
        for k, v in (("_trusted", True), ("weights", self.weights), ("means", scale * self.means), ("covs", covs),
                     ("_chol", None), ("_prec", prec), ("_logw", self._logw),
                     ("_lognorm", -0.5 * (d * math.log(2 * math.pi) + np.log(lam2).sum(axis=1))),
                     ("_eig_cache", (lam2, U))):
            object.__setattr__(obj, k, v)
        return obj

    def std_extent(self, n_std: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box covering every component's mean +- n_std marginal standard deviations."""
        sd = np.sqrt(np.diagonal(self.covs, axis1=1, axis2=2))
        return (self.means - n_std * sd).min(axis=0), (self.means + n_std * sd).max(axis=0)

    def to_dict(self) -> dict:
        """Config dictionary accepted by mixture_from_dict."""
        return {"weights": self.weights.tolist(), "means": self.means.tolist(), "covs": self.covs.tolist()}


MAX_COMPONENTS = 64   # bounds of a config's mixtures (memory and time stay sane)
MAX_DIM = 64


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
    w = numeric_array(d["weights"], f"{name}.weights", MAX_COMPONENTS)
    m = numeric_array(d["means"], f"{name}.means", MAX_COMPONENTS * MAX_DIM)
    c = numeric_array(d["covs"], f"{name}.covs", MAX_COMPONENTS * MAX_DIM * MAX_DIM)
    if w.ndim == 1 and w.size > MAX_COMPONENTS:
        raise ConfigError(f"{name} has {w.size} components; the bound is {MAX_COMPONENTS}")
    if m.ndim == 2 and m.shape[1] > MAX_DIM:
        raise ConfigError(f"{name} is {m.shape[1]}-D; the bound is {MAX_DIM} dimensions")
    try:
        return GaussianMixture(w, m, c)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def gaussian(mean: np.ndarray, cov: np.ndarray) -> GaussianMixture:
    """Single Gaussian N(mean, cov) as a one-component mixture."""
    mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    cov = np.asarray(cov, dtype=np.float64).reshape(mean.size, mean.size)
    return GaussianMixture(np.ones(1), mean[None, :], cov[None, :, :])
