"""A fixed, seeded set of random verification configs (issue 12): the bar the grid defaults must meet.

random_configs(dim, n, seed) draws, deterministically from the seed, n configs with
  schedule  cycling vp-linear, vp-cosine, ve (default parameters),
  data      a mixture of 2-4 components (means U(-2, 2)^d, weights Dirichlet(2), covariances with eigenvalues in
            [0.03, 0.6] and a random rotation),
  edited    q_t0 = the forward marginal at t0 of a second such mixture (an "edited image" noised to t0),
  t0        U(0.3, 0.8), t_end U(0.002, 0.02), sampler "sde".
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .mixtures import GaussianMixture
from .schedules import schedule_from_dict

KINDS = ("vp-linear", "vp-cosine", "ve")


def _random_mixture(rng: np.random.Generator, dim: int) -> GaussianMixture:
    k = int(rng.integers(2, 5))
    w = rng.dirichlet(2.0 * np.ones(k))
    means = rng.uniform(-2.0, 2.0, size=(k, dim))
    covs = []
    for _ in range(k):
        ev = rng.uniform(0.03, 0.6, size=dim)
        Q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        covs.append((Q * ev) @ Q.T)
    return GaussianMixture(w, means, np.array(covs))


def random_configs(dim: int = 1, n: int = 12, seed: int = 0) -> list[dict[str, Any]]:
    """n config dictionaries (see module docstring); the same (dim, n, seed) always gives the same set."""
    rng = np.random.default_rng([seed, dim])
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        data = _random_mixture(rng, dim)
        edited_data = _random_mixture(rng, dim)
        t0 = float(rng.uniform(0.3, 0.8))
        t_end = float(rng.uniform(0.002, 0.02))
        sch = schedule_from_dict({"kind": kind})
        out.append({"schedule": {"kind": kind}, "data": data.to_dict(),
                    "edited": edited_data.marginal(sch, t0).to_dict(), "t0": t0, "t_end": t_end, "sampler": "sde"})
    return out
