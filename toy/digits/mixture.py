"""The exact digit model: a Gaussian mixture in pixel space whose components sit on real digit images.

p_0(x) = Σ_k π_k N(x; μ_k, Σ_k),  Σ_k = s_k² I + U_k diag(λ_k) U_kᵀ  (U_k: d×r orthonormal, from local PCA).

Under x_t = α x_0 + σ ε every component stays Gaussian, N(α μ_k, c_k I + α² U_k diag(λ_k) U_kᵀ) with
c_k = α² s_k² + σ², so p_t, its score and ε(x, t) = −σ ∇log p_t(x) are closed-form at every noise level:
Woodbury inverses (Σ_t,k⁻¹ v = (v − U_k diag(g_k) U_kᵀ v)/c_k, g_k = α²λ_k/(c_k + α²λ_k)), log-determinants
d log c_k + Σ log(1 + α²λ_k/c_k), and log-sum-exp responsibilities.  Cost per call: two [B, d] × [d, K r] matmuls.

Conditioning on known pixels (inpainting) gives again a mixture of the same form (see :meth:`DigitMixture.condition`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch
from torch import Tensor

from .data import DigitData

__all__ = ["DigitMixture", "MixtureConfig", "build_mixture"]

LOG2PI = math.log(2.0 * math.pi)


class DigitMixture:
    """Isotropic + low-rank Gaussian mixture (torch, batched).  All methods take x of shape [B, d] (or [B, ...])."""

    def __init__(self, weights: Tensor, means: Tensor, bases: Tensor, lambdas: Tensor, iso_var: Tensor,
                 labels: Tensor | None = None) -> None:
        k, d = means.shape
        r = bases.shape[-1]
        if weights.shape != (k,) or bases.shape != (k, d, r) or lambdas.shape != (k, r):
            raise ValueError("mixture shapes: weights [K], means [K, d], bases [K, d, r], lambdas [K, r]")
        iso_var = torch.as_tensor(iso_var, dtype=means.dtype)
        if iso_var.ndim == 0:
            iso_var = iso_var.expand(k).clone()
        if torch.any(iso_var <= 0) or torch.any(lambdas < 0) or torch.any(weights < 0):
            raise ValueError("need s² > 0, λ ≥ 0, π ≥ 0")
        self.weights = weights / weights.sum()
        self.means = means
        self.bases = bases
        self.lambdas = lambdas
        self.iso_var = iso_var
        self.labels = labels if labels is not None else torch.zeros(k, dtype=torch.long)
        self._prep()

    def _prep(self) -> None:
        k, d, r = self.bases.shape
        self.log_weights = torch.log(self.weights.clamp_min(torch.finfo(self.weights.dtype).tiny))
        self.umat = self.bases.permute(1, 0, 2).reshape(d, k * r).contiguous()   # [d, K r]
        self.u_mu = torch.einsum("kdr,kd->kr", self.bases, self.means)           # [K, r]
        self.mu_sq = (self.means ** 2).sum(-1)                                    # [K]

    # --- bookkeeping ---------------------------------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def rank(self) -> int:
        return self.bases.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "DigitMixture":
        f = lambda t: t.to(dtype=dtype, device=device)  # noqa: E731
        return DigitMixture(f(self.weights), f(self.means), f(self.bases), f(self.lambdas), f(self.iso_var),
                            self.labels.to(device=device))

    def subset(self, mask: Tensor) -> "DigitMixture":
        """The sub-mixture of the selected components (weights renormalised), e.g. one class."""
        return DigitMixture(self.weights[mask], self.means[mask], self.bases[mask], self.lambdas[mask],
                            self.iso_var[mask], self.labels[mask])

    def of_class(self, c: int) -> "DigitMixture":
        return self.subset(self.labels == c)

    def class_weights(self, num_classes: int = 10) -> Tensor:
        return torch.zeros(num_classes, dtype=self.dtype).index_add_(0, self.labels, self.weights)

    def covariance(self, k: int) -> Tensor:
        """Dense Σ_k (for tests)."""
        u = self.bases[k]
        return self.iso_var[k] * torch.eye(self.dim, dtype=self.dtype) + u @ torch.diag(self.lambdas[k]) @ u.T

    def moments(self) -> tuple[Tensor, Tensor]:
        """Exact mean and covariance of p_0 (dense d×d)."""
        m = self.weights @ self.means
        cov = torch.zeros(self.dim, self.dim, dtype=self.dtype)
        for k in range(self.num_components):
            dm = self.means[k] - m
            cov += self.weights[k] * (self.covariance(k) + torch.outer(dm, dm))
        return m, cov

    def state_dict(self) -> dict:
        return {"weights": self.weights, "means": self.means, "bases": self.bases, "lambdas": self.lambdas,
                "iso_var": self.iso_var, "labels": self.labels}

    # --- closed forms at noise level (alpha, sigma) ----------------------------------------------------------------
    def _terms(self, x: Tensor, alpha: float, sigma: float):
        a2 = alpha * alpha
        c = a2 * self.iso_var + sigma * sigma                                   # [K]
        al = a2 * self.lambdas                                                  # [K, r]
        g = al / (c[:, None] + al)                                              # [K, r]
        logdet = self.dim * torch.log(c) + torch.log1p(al / c[:, None]).sum(-1)  # [K]
        b = x.shape[0]
        proj = (x @ self.umat).view(b, self.num_components, self.rank) - alpha * self.u_mu  # Uᵀ(x − αμ)  [B, K, r]
        d2 = (x * x).sum(-1, keepdim=True) - 2 * alpha * (x @ self.means.T) + a2 * self.mu_sq  # |x − αμ|²  [B, K]
        maha = (d2 - (g * proj * proj).sum(-1)) / c
        logits = self.log_weights - 0.5 * (maha + logdet + self.dim * LOG2PI)
        return logits, proj, g, c

    def _flat(self, x: Tensor) -> tuple[Tensor, torch.Size, torch.dtype]:
        shape, dt = x.shape, x.dtype
        return x.reshape(shape[0], -1).to(self.dtype), shape, dt

    def log_prob(self, x: Tensor, alpha: float = 1.0, sigma: float = 0.0) -> Tensor:
        """log p_t(x) (log p_0 for the defaults), shape [B]."""
        xf, _, dt = self._flat(x)
        logits, *_ = self._terms(xf, float(alpha), float(sigma))
        return torch.logsumexp(logits, -1).to(dt)

    def responsibilities(self, x: Tensor, alpha: float = 1.0, sigma: float = 0.0) -> Tensor:
        """Posterior over components p(k | x_t), shape [B, K]."""
        xf, _, dt = self._flat(x)
        logits, *_ = self._terms(xf, float(alpha), float(sigma))
        return torch.softmax(logits, -1).to(dt)

    def class_posterior(self, x: Tensor, alpha: float = 1.0, sigma: float = 0.0, num_classes: int = 10) -> Tensor:
        """p(class | x_t) by summing component responsibilities, shape [B, num_classes]."""
        r = self.responsibilities(x, alpha, sigma)
        out = torch.zeros(r.shape[0], num_classes, dtype=r.dtype)
        return out.index_add_(1, self.labels, r)

    def precision_times_residual(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """Σ_k γ_k Σ_t,k⁻¹ (x − α μ_k) = −∇log p_t(x) on flattened float x [B, d]."""
        logits, proj, g, c = self._terms(x, alpha, sigma)
        gam = torch.softmax(logits, -1)                                         # [B, K]
        w = gam / c                                                             # [B, K]
        coef = (w[:, :, None] * g * proj).reshape(x.shape[0], -1)               # [B, K r]
        return w.sum(-1, keepdim=True) * x - alpha * (w @ self.means) - coef @ self.umat.T

    def score(self, x: Tensor, alpha: float = 1.0, sigma: float = 0.0) -> Tensor:
        """∇_x log p_t(x), same shape as x."""
        xf, shape, dt = self._flat(x)
        return (-self.precision_times_residual(xf, float(alpha), float(sigma))).reshape(shape).to(dt)

    def eps(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """ε(x, t) = −σ ∇log p_t(x), the exact noise prediction, same shape as x."""
        xf, shape, dt = self._flat(x)
        return (float(sigma) * self.precision_times_residual(xf, float(alpha), float(sigma))).reshape(shape).to(dt)

    def x0_mean(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """Tweedie: E[x_0 | x_t] = (x + σ² ∇log p_t) / α."""
        return (x + float(sigma) ** 2 * self.score(x, alpha, sigma)) / float(alpha)

    # --- sampling ----------------------------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator, alpha: float = 1.0, sigma: float = 0.0,
               return_components: bool = False):
        """n draws of x_t = α x_0 + σ ε with x_0 ~ p_0 (float64 draws, cast to the mixture dtype)."""
        k = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator)
        z_r = torch.randn(n, self.rank, generator=generator, dtype=torch.float64).to(self.dtype)
        z_d = torch.randn(n, self.dim, generator=generator, dtype=torch.float64).to(self.dtype)
        x0 = self.means[k] + torch.einsum("ndr,nr->nd", self.bases[k], self.lambdas[k].sqrt() * z_r) \
            + self.iso_var[k].sqrt()[:, None] * z_d
        x = alpha * x0
        if sigma > 0:
            x = x + sigma * torch.randn(n, self.dim, generator=generator, dtype=torch.float64).to(self.dtype)
        return (x, k) if return_components else x

    # --- conditioning on known coordinates ----------------------------------------------------------------------------
    def condition(self, known: Tensor, values: Tensor) -> "DigitMixture":
        """p_0(x_U | x_K = values) as a mixture of the same form over the unknown coordinates U = ~known.

        With B = U_k[K], C = U_k[U]: M = (Λ⁻¹ + Bᵀ B / s²)⁻¹ (r×r), mean μ_U + C M Bᵀ (x_K − μ_K)/s²,
        covariance s² I + C M Cᵀ (re-orthonormalised by an SVD), weights ∝ π_k N(x_K; μ_K, s² I + B Λ Bᵀ).
        """
        known = known.reshape(-1).to(torch.bool)
        unk = ~known
        v = values.reshape(-1).to(self.dtype)[known] if values.numel() == self.dim else values.to(self.dtype)
        B = self.bases[:, known, :]                                           # [K, dK, r]
        C = self.bases[:, unk, :]                                             # [K, dU, r]
        s2 = self.iso_var                                                     # [K]
        lam = self.lambdas.clamp_min(1e-12)
        btb = B.transpose(1, 2) @ B                                           # [K, r, r]
        eye = torch.eye(self.rank, dtype=self.dtype)
        Minv = torch.diag_embed(1.0 / lam) + btb / s2[:, None, None]
        M = torch.linalg.inv(Minv)
        delta = v[None, :] - self.means[:, known]                              # [K, dK]
        btd = torch.einsum("kdr,kd->kr", B, delta)                            # [K, r]
        mean_u = self.means[:, unk] + torch.einsum("kdr,kr->kd", C, (M @ (btd / s2[:, None])[..., None])[..., 0])
        # log N(x_K; μ_K, s² I + B Λ Bᵀ) via Woodbury / determinant lemma
        dk = int(known.sum())
        quad = ((delta ** 2).sum(-1) - torch.einsum("kr,krs,ks->k", btd, M, btd) / s2) / s2
        logdet = dk * torch.log(s2) + torch.logdet(eye + lam[:, :, None] * btb / s2[:, None, None])
        loglik = -0.5 * (quad + logdet + dk * LOG2PI)
        logw = self.log_weights + loglik
        w = torch.softmax(logw, 0)
        # orthonormal low-rank factor of C M Cᵀ
        L = torch.linalg.cholesky(0.5 * (M + M.transpose(1, 2)))
        Q, S, _ = torch.linalg.svd(C @ L, full_matrices=False)               # [K, dU, r], [K, r]
        out = DigitMixture(w, mean_u, Q, S ** 2, s2.clone(), self.labels.clone())
        out.evidence = torch.logsumexp(logw, 0)                               # log p_0(x_K)
        return out


@dataclass
class MixtureConfig:
    """How the exact model is built from the real digits."""

    per_class: int = 50          # components per class (centres = real training digits)
    rank: int = 6                # low-rank directions per component (local PCA)
    neighbours: int = 16         # same-class nearest neighbours used for local PCA
    lowrank_scale: float = 0.5   # λ = scale × local PCA variances
    iso_std: float = 0.08        # isotropic std s (pixel units, range [−1, 1])
    n_test_per_class: int = 50   # held-out digits per class (never centres, never PCA neighbours)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def build_mixture(data: DigitData, cfg: MixtureConfig = MixtureConfig(), dtype: torch.dtype = torch.float64) -> DigitMixture:
    """Components at ``per_class`` random training digits per class, equal weights, local-PCA low-rank covariances."""
    train, _ = data.split(cfg.n_test_per_class)
    g = torch.Generator().manual_seed(cfg.seed)
    means, bases, lams, labels = [], [], [], []
    for c in range(10):
        xc = train.images[train.labels == c]
        pick = torch.randperm(len(xc), generator=g)[: cfg.per_class]
        centres = xc[pick]
        dist = torch.cdist(centres, xc)
        nb = dist.topk(cfg.neighbours + 1, largest=False).indices[:, 1:]         # drop the centre itself
        diffs = xc[nb] - centres[:, None, :]                                     # [P, n, d]
        _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
        bases.append(vh[:, : cfg.rank, :].transpose(1, 2))
        lams.append(cfg.lowrank_scale * s[:, : cfg.rank] ** 2 / cfg.neighbours)
        means.append(centres)
        labels.append(torch.full((len(centres),), c, dtype=torch.long))
    means_t = torch.cat(means).to(dtype)
    k = len(means_t)
    return DigitMixture(torch.full((k,), 1.0 / k, dtype=dtype), means_t, torch.cat(bases).to(dtype),
                        torch.cat(lams).to(dtype), torch.tensor(cfg.iso_std ** 2, dtype=dtype), torch.cat(labels))
