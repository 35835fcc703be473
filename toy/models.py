"""Small MLP ε-models with a time embedding for d-dimensional toy data (d = 1, 2, ..., 64).

The network predicts ε(x, t) = −σ_t ∇log p_t(x).  It is *preconditioned* by the exact ε of a Gaussian fitted to
the data (mean ``mu``, per-coordinate variance ``var``): ε_θ = ε_Gauss(x, t) + c_out(t) · MLP(c_in(t) x, emb(t)),
so an untrained net is already the best Gaussian approximation and the MLP only learns the non-Gaussian part.

The model is a diffsamplers ``EpsModel``: ``model(x, t)`` with ``x`` of shape [n, d] and ``t`` a float, a 0-d
tensor or an [n] tensor of continuous times in [0, 1].  α_t and σ_t are stored as a fine lookup table of the
schedule so the model is a pure torch module (no numpy in the forward pass) and checkpoints are self-contained.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ModelConfig", "EpsMLP", "schedule_table", "seeded_init"]


@dataclass
class ModelConfig:
    """Architecture of :class:`EpsMLP`."""

    dim: int = 2
    hidden: int = 128
    depth: int = 3
    emb_dim: int = 32
    activation: str = "silu"
    table_points: int = 2001

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules inside this block: ``nn.Module`` initialisers draw from torch's global CPU generator, so it is
    seeded with ``seed`` here and the caller's RNG state is restored on exit (library code leaves global state alone;
    the weights equal those after ``torch.manual_seed(seed)``)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


def schedule_table(schedule, n: int = 2001, t_max: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, log α_t, log σ_t) on a uniform grid of [0, t_max] for interpolation (σ_0 clipped at 1e-12)."""
    tm = float(schedule.t_max()) if t_max is None and hasattr(schedule, "t_max") else (t_max or 1.0)
    t = np.linspace(0.0, tm, n)
    a = np.asarray(schedule.alpha(t), dtype=np.float64) * np.ones_like(t)
    s = np.asarray(schedule.sigma(t), dtype=np.float64) * np.ones_like(t)
    return t, np.log(a), np.log(np.maximum(s, 1e-12))


class EpsMLP(nn.Module):
    """ε-prediction MLP with a Fourier time embedding and a Gaussian skip (see module docstring)."""

    def __init__(self, config: ModelConfig, schedule, mu=None, var=None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        t, la, ls = schedule_table(schedule, config.table_points)
        self.register_buffer("_t", torch.as_tensor(t, dtype=torch.float64))
        self.register_buffer("_log_alpha", torch.as_tensor(la, dtype=torch.float64))
        self.register_buffer("_log_sigma", torch.as_tensor(ls, dtype=torch.float64))
        mu = np.zeros(d) if mu is None else np.array(mu, dtype=np.float64).reshape(d)
        var = np.ones(d) if var is None else np.array(var, dtype=np.float64).reshape(d)
        self.register_buffer("mu", torch.as_tensor(mu, dtype=dtype))
        self.register_buffer("var", torch.as_tensor(var, dtype=dtype))
        self.register_buffer("freqs", torch.arange(1, config.emb_dim // 2 + 1, dtype=dtype) * math.pi)
        act = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[config.activation]
        layers: list[nn.Module] = []
        width_in = d + config.emb_dim
        for _ in range(config.depth):
            layers += [nn.Linear(width_in, config.hidden), act()]
            width_in = config.hidden
        out = nn.Linear(width_in, d)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        layers.append(out)
        self.net = nn.Sequential(*layers)
        self.schedule_dict = schedule.to_dict() if hasattr(schedule, "to_dict") else None
        self.to(dtype)
        # the lookup tables stay float64 whatever the parameter dtype
        self._t.data = self._t.data.double()
        self._log_alpha.data = self._log_alpha.data.double()
        self._log_sigma.data = self._log_sigma.data.double()

    # --- schedule lookup -------------------------------------------------------------------------------------
    def _interp(self, table: Tensor, t: Tensor) -> Tensor:
        tt = self._t
        h = tt[1] - tt[0]
        u = ((t.double() - tt[0]) / h).clamp(0, tt.shape[0] - 1 - 1e-9)
        i = u.floor().long()
        w = u - i
        return table[i] * (1 - w) + table[i + 1] * w

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """α_t, σ_t (float64) interpolated in log space from the stored schedule table."""
        return self._interp(self._log_alpha, t).exp(), self._interp(self._log_sigma, t).exp()

    def embed(self, t: Tensor) -> Tensor:
        """Fourier features [sin(kπt), cos(kπt)], k = 1..emb_dim/2."""
        ang = t[:, None] * self.freqs[None, :]
        return torch.cat([ang.sin(), ang.cos()], dim=1)

    # --- forward ----------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, t) -> Tensor:
        n = x.shape[0]
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        if t.ndim == 0:
            t = t.expand(n)
        t = t.reshape(n)
        a64, s64 = self.alpha_sigma(t)
        a = a64.to(x.dtype)[:, None]
        s = s64.to(x.dtype)[:, None]
        var_t = a * a * self.var + s * s
        eps_gauss = s * (x - a * self.mu) / var_t
        c_in = var_t.rsqrt()
        h = torch.cat([c_in * (x - a * self.mu), self.embed(t.to(x.dtype))], dim=1)
        c_out = s * c_in  # σ_t / sqrt(α² var + σ²) ≤ 1: the residual vanishes as σ → 0 like the true ε does
        return eps_gauss + c_out * self.net(h)

    def score(self, x: Tensor, t) -> Tensor:
        """∇log p_t(x) = −ε(x, t)/σ_t."""
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        tt = t.expand(x.shape[0]) if t.ndim == 0 else t.reshape(x.shape[0])
        _, s = self.alpha_sigma(tt)
        return -self(x, t) / s.to(x.dtype)[:, None]
