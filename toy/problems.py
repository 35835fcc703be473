"""Built-in toy problems: the data mixture p_0, an 'edited' distribution q at t0, and score callables.

Score callables follow the convention of ``theory.fokker_planck``: ``score(x: ndarray [n, d], t: float) -> [n, d]``.
ε-models follow diffsamplers: ``model(x: Tensor [n, d], t) -> ε`` with ε = −σ_t ∇log p_t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from theory.mixtures import GaussianMixture

__all__ = [
    "builtin_mixture", "edited_mixture", "exact_score_fn", "exact_eps_model", "learned_score_fn",
    "TorchEps", "BUILTIN",
]

BUILTIN = ("1d", "2d", "nd")


def builtin_mixture(name: str = "2d", dim: int = 8) -> GaussianMixture:
    """The built-in data distributions p_0.

    - ``"1d"``: the paper's toy, 0.5 N(−2, 0.25) + 0.5 N(2, 0.25).
    - ``"2d"``: three anisotropic Gaussians (weights 0.4, 0.35, 0.25) on a triangle.
    - ``"nd"``: ``dim``-dimensional, two components at ±1.5·(1, …, 1)/√d·2 with covariance 0.3 I.
    """
    if name == "1d":
        return GaussianMixture(np.array([0.5, 0.5]), np.array([[-2.0], [2.0]]), np.array([[[0.25]], [[0.25]]]))
    if name == "2d":
        means = np.array([[-1.8, -0.8], [1.8, -0.8], [0.0, 1.9]])
        covs = np.array([
            [[0.30, 0.12], [0.12, 0.20]],
            [[0.25, -0.10], [-0.10, 0.22]],
            [[0.35, 0.0], [0.0, 0.15]],
        ])
        return GaussianMixture(np.array([0.4, 0.35, 0.25]), means, covs)
    if name == "nd":
        u = np.ones(dim) / np.sqrt(dim) * 2.0
        return GaussianMixture(np.array([0.5, 0.5]), np.stack([-u, u]), np.stack([0.3 * np.eye(dim)] * 2))
    raise ValueError(f"unknown built-in mixture {name!r}; choose one of {BUILTIN}")


def edited_mixture(p0: GaussianMixture, weights=None, shift=None) -> GaussianMixture:
    """The 'edited' data law: same components as p_0 with re-balanced weights and/or shifted means.

    Default: all mass but 10% per other component on the first component (a mismatched prior, as in the
    paper's toy), means shifted by 0.3 per coordinate.  Its marginal at t0 is the edited q_t0.
    """
    k = p0.n_components
    if weights is None:
        weights = np.full(k, 0.1 / max(k - 1, 1)) if k > 1 else np.ones(1)
        weights[0] = 1.0 - weights[1:].sum() if k > 1 else 1.0
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    s = np.full(p0.dim, 0.3) if shift is None else np.broadcast_to(np.asarray(shift, dtype=np.float64), (p0.dim,))
    return GaussianMixture(w, p0.means + s[None, :], p0.covs)


def exact_score_fn(mixture: GaussianMixture, schedule):
    """Exact ∇log p_t of the forward marginals of ``mixture`` as a numpy callable score(x, t)."""

    def score(x: np.ndarray, t: float) -> np.ndarray:
        return mixture.marginal(schedule, float(t)).score(np.asarray(x, dtype=np.float64).reshape(-1, mixture.dim))

    return score


@dataclass
class TorchEps:
    """Wrap a numpy score callable as a diffsamplers ε-model: ε(x, t) = −σ_t score(x, t)."""

    score: object
    schedule: object

    def __call__(self, x: Tensor, t) -> Tensor:
        tf = float(torch.as_tensor(t).reshape(-1)[0])
        s = self.score(x.detach().cpu().double().numpy().reshape(x.shape[0], -1), tf)
        eps = -float(self.schedule.sigma(tf)) * s
        return torch.as_tensor(eps, dtype=x.dtype, device=x.device).reshape(x.shape)


def exact_eps_model(mixture: GaussianMixture, schedule) -> TorchEps:
    """The exact ε of the mixture's marginals as a diffsamplers ``EpsModel``."""
    return TorchEps(exact_score_fn(mixture, schedule), schedule)


def learned_score_fn(model, dtype: torch.dtype | None = None):
    """Wrap a trained :class:`toy.models.EpsMLP` as a numpy score callable score(x [n, d], t) -> [n, d]."""
    p = next(model.parameters())
    dt = dtype or p.dtype

    @torch.no_grad()
    def score(x: np.ndarray, t: float) -> np.ndarray:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(-1, model.config.dim), dtype=dt)
        return model.score(xt, float(t)).double().numpy()

    return score
