"""Noise schedules in continuous time t in [0, 1]: x_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I).

Every schedule exposes alpha(t), sigma(t), f(t) = d log alpha / dt and g2(t) = d sigma^2/dt - 2 f sigma^2
(reference.md, "Notation"). All methods accept floats or numpy arrays and return float64.

Discrete DDPM schedules (``alphas_cumprod`` of length T, e.g. from a diffusers scheduler config) map the
discrete index i in {0, ..., T-1} to continuous time t_i = (i + 1) / T; between knots log(alpha_bar) is
linear in t, with alpha_bar = 1 at t = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import numpy as np

from .errors import ConfigError

ArrayLike = Union[float, np.ndarray]


def _arr(t: ArrayLike) -> np.ndarray:
    return np.asarray(t, dtype=np.float64)


class Schedule:
    """Base class: alpha, sigma, f, g2, g and helpers shared by all schedules."""

    kind: str = "base"

    def alpha(self, t: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sigma(self, t: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def f(self, t: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def g2(self, t: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def g(self, t: ArrayLike) -> np.ndarray:
        """Diffusion coefficient g(t) = sqrt(g2(t))."""
        return np.sqrt(self.g2(t))

    def t_max(self) -> float:
        """Largest t at which f and g2 are finite (1.0 except for VP cosine)."""
        return 1.0

    def to_dict(self) -> dict:
        """Config dictionary accepted by schedule_from_dict."""
        raise NotImplementedError  # pragma: no cover


@dataclass(frozen=True)
class VPLinear(Schedule):
    """VP with beta(t) = beta_min + t (beta_max - beta_min): log alpha = -(beta_min t + (beta_max-beta_min) t^2/2)/2."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    kind: str = field(default="vp-linear", init=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.beta_min) and np.isfinite(self.beta_max)) or self.beta_min <= 0 \
                or self.beta_max < self.beta_min:
            raise ConfigError(f"vp-linear needs 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}")

    def beta(self, t: ArrayLike) -> np.ndarray:
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        return self.beta_min + _arr(t) * (self.beta_max - self.beta_min)

    def log_alpha(self, t: ArrayLike) -> np.ndarray:
        """log alpha_t = -1/2 int_0^t beta."""
        t = _arr(t)
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha(self, t: ArrayLike) -> np.ndarray:
        return np.exp(self.log_alpha(t))

    def sigma(self, t: ArrayLike) -> np.ndarray:
        return np.sqrt(-np.expm1(2.0 * self.log_alpha(t)))

    def f(self, t: ArrayLike) -> np.ndarray:
        return -0.5 * self.beta(t)

    def g2(self, t: ArrayLike) -> np.ndarray:
        return self.beta(t)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "beta_min": self.beta_min, "beta_max": self.beta_max}


@dataclass(frozen=True)
class VPCosine(Schedule):
    """VP cosine (Nichol & Dhariwal): alpha_t^2 = cos^2(theta_t)/cos^2(theta_0), theta_t = (t+s)/(1+s) pi/2."""

    s: float = 0.008
    kind: str = field(default="vp-cosine", init=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.s) or self.s <= 0:
            raise ConfigError(f"vp-cosine needs s > 0, got {self.s}")

    def _theta(self, t: ArrayLike) -> np.ndarray:
        return (_arr(t) + self.s) / (1.0 + self.s) * (math.pi / 2)

    def alpha(self, t: ArrayLike) -> np.ndarray:
        return np.cos(self._theta(t)) / math.cos(self._theta(0.0))

    def sigma(self, t: ArrayLike) -> np.ndarray:
        a = self.alpha(t)
        return np.sqrt(np.clip(1.0 - a * a, 0.0, None))

    def f(self, t: ArrayLike) -> np.ndarray:
        return -np.tan(self._theta(t)) * (math.pi / (2.0 * (1.0 + self.s)))

    def g2(self, t: ArrayLike) -> np.ndarray:
        return -2.0 * self.f(t)

    def t_max(self) -> float:
        return 1.0 - 1e-9

    def to_dict(self) -> dict:
        return {"kind": self.kind, "s": self.s}


@dataclass(frozen=True)
class VE(Schedule):
    """VE: alpha = 1, sigma_t = sigma_min (sigma_max/sigma_min)^t, g2 = d sigma^2/dt = 2 sigma_t^2 log(sigma_max/sigma_min)."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    kind: str = field(default="ve", init=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sigma_min) and np.isfinite(self.sigma_max)) or self.sigma_min <= 0 \
                or self.sigma_max <= self.sigma_min:
            raise ConfigError(f"ve needs 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")

    def alpha(self, t: ArrayLike) -> np.ndarray:
        return np.ones_like(_arr(t))

    def sigma(self, t: ArrayLike) -> np.ndarray:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _arr(t)

    def f(self, t: ArrayLike) -> np.ndarray:
        return np.zeros_like(_arr(t))

    def g2(self, t: ArrayLike) -> np.ndarray:
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


@dataclass(frozen=True)
class RectifiedFlow(Schedule):
    """Rectified flow / flow matching (SD3, FLUX): x_t = (1 - t) x_0 + t eps, i.e. alpha = 1 - t, sigma = t on
    t in (0, 1).  f = d log alpha / dt = -1 / (1 - t);  g2 = d sigma^2/dt - 2 f sigma^2 = 2t + 2t^2 / (1 - t)
    = 2t / (1 - t).  Both blow up at t = 1 (alpha = 0: x_1 is pure noise, nothing of x_0 is left), so t0 < 1."""

    kind: str = field(default="rectified-flow", init=False)

    def alpha(self, t: ArrayLike) -> np.ndarray:
        return 1.0 - _arr(t)

    def sigma(self, t: ArrayLike) -> np.ndarray:
        return _arr(t) * 1.0

    def f(self, t: ArrayLike) -> np.ndarray:
        return -1.0 / (1.0 - _arr(t))

    def g2(self, t: ArrayLike) -> np.ndarray:
        t = _arr(t)
        return 2.0 * t / (1.0 - t)

    def t_max(self) -> float:
        return 1.0 - 1e-9

    def to_dict(self) -> dict:
        return {"kind": self.kind}


@dataclass(frozen=True, eq=False)
class DiscreteDDPM(Schedule):
    """Discrete DDPM alphas_cumprod; index i <-> t = (i+1)/T, log alpha_bar piecewise linear in t, f = (1/2) d log alpha_bar/dt, g2 = -2 f."""

    alphas_cumprod: np.ndarray
    kind: str = field(default="ddpm", init=False)

    def __post_init__(self) -> None:
        ac = np.asarray(self.alphas_cumprod, dtype=np.float64).ravel()
        if ac.size < 2 or not np.all(np.isfinite(ac)) or np.any(ac <= 0) or np.any(ac >= 1) \
                or np.any(np.diff(ac) > 0):
            raise ConfigError("alphas_cumprod must be a decreasing array in (0, 1) with >= 2 entries")
        object.__setattr__(self, "alphas_cumprod", ac)
        knots = np.arange(ac.size + 1, dtype=np.float64) / ac.size
        object.__setattr__(self, "_knots", knots)
        object.__setattr__(self, "_log_ab", np.concatenate([[0.0], np.log(ac)]))

    @property
    def num_timesteps(self) -> int:
        """Number of discrete timesteps T."""
        return int(self.alphas_cumprod.size)

    def index_to_t(self, i: ArrayLike) -> np.ndarray:
        """Continuous time of discrete index i: t = (i + 1) / T."""
        return (_arr(i) + 1.0) / self.num_timesteps

    def t_to_index(self, t: ArrayLike) -> np.ndarray:
        """Nearest discrete index of continuous time t: i = round(t T) - 1, clipped to [0, T-1]."""
        return np.clip(np.rint(_arr(t) * self.num_timesteps) - 1, 0, self.num_timesteps - 1).astype(int)

    def log_alpha_bar(self, t: ArrayLike) -> np.ndarray:
        """Piecewise-linear interpolation of log alpha_bar over knots t_i = i/T (alpha_bar(0) = 1)."""
        return np.interp(_arr(t), self._knots, self._log_ab)

    def alpha(self, t: ArrayLike) -> np.ndarray:
        return np.exp(0.5 * self.log_alpha_bar(t))

    def sigma(self, t: ArrayLike) -> np.ndarray:
        return np.sqrt(-np.expm1(self.log_alpha_bar(t)))

    def f(self, t: ArrayLike) -> np.ndarray:
        t = _arr(t)
        slopes = np.diff(self._log_ab) / np.diff(self._knots)
        idx = np.clip(np.floor(t * self.num_timesteps).astype(int), 0, self.num_timesteps - 1)
        return 0.5 * slopes[idx]

    def g2(self, t: ArrayLike) -> np.ndarray:
        return -2.0 * self.f(t)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "alphas_cumprod": self.alphas_cumprod.tolist()}

    @classmethod
    def from_betas(cls, betas: np.ndarray) -> "DiscreteDDPM":
        """alpha_bar_i = prod_{j<=i} (1 - beta_j)."""
        return cls(np.cumprod(1.0 - np.asarray(betas, dtype=np.float64)))

    @classmethod
    def from_diffusers_config(cls, cfg: Mapping[str, Any]) -> "DiscreteDDPM":
        """Build from a diffusers scheduler config (beta_schedule linear or scaled_linear)."""
        T = cfg.get("num_train_timesteps", 1000)
        if isinstance(T, bool) or not isinstance(T, int) or not 2 <= T <= MAX_DDPM_STEPS:
            raise ConfigError(f"schedule.num_train_timesteps must be an integer in [2, {MAX_DDPM_STEPS}], got {T!r}")
        b0, b1 = _num(cfg, "beta_start", 1e-4), _num(cfg, "beta_end", 0.02)
        if not 0.0 < b0 <= b1 < 1.0:
            raise ConfigError(f"ddpm needs 0 < beta_start <= beta_end < 1, got {b0}, {b1}")
        kind = cfg.get("beta_schedule", "linear")
        if kind == "linear":
            betas = np.linspace(b0, b1, T)
        elif kind == "scaled_linear":
            betas = np.linspace(b0 ** 0.5, b1 ** 0.5, T) ** 2
        else:
            raise ConfigError(f"unsupported beta_schedule {kind!r} (linear, scaled_linear)")
        return cls.from_betas(betas)


MAX_DDPM_STEPS = 100_000   # bound on a discrete schedule's length


def _num(d: Mapping[str, Any], key: str, default: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ConfigError(f"schedule.{key} must be a finite number, got {v!r}")
    return float(v)


def schedule_from_dict(d: Mapping[str, Any]) -> Schedule:
    """Parse {"kind": "vp-linear"|"vp-cosine"|"ve"|"rectified-flow"|"ddpm", ...parameters} into a Schedule."""
    if not isinstance(d, Mapping):
        raise ConfigError("schedule must be an object with a 'kind'")
    kind = d.get("kind")
    allowed = {"vp-linear": {"beta_min", "beta_max"}, "vp-cosine": {"s"}, "ve": {"sigma_min", "sigma_max"},
               "rectified-flow": set(),
               "ddpm": {"alphas_cumprod", "num_train_timesteps", "beta_start", "beta_end", "beta_schedule"}}
    if kind not in allowed:
        raise ConfigError(f"unknown schedule kind {kind!r}; expected one of vp-linear, vp-cosine, ve, "
                          "rectified-flow, ddpm")
    extra = set(d) - allowed[kind] - {"kind"}
    if extra:
        raise ConfigError(f"unknown keys for schedule {kind}: {sorted(extra)}")
    if kind == "vp-linear":
        return VPLinear(_num(d, "beta_min", 0.1), _num(d, "beta_max", 20.0))
    if kind == "vp-cosine":
        return VPCosine(_num(d, "s", 0.008))
    if kind == "rectified-flow":
        return RectifiedFlow()
    if kind == "ve":
        return VE(_num(d, "sigma_min", 0.01), _num(d, "sigma_max", 50.0))
    if "alphas_cumprod" in d:
        from .errors import numeric_array

        ac = numeric_array(d["alphas_cumprod"], "schedule.alphas_cumprod", MAX_DDPM_STEPS)
        if ac.ndim != 1:
            raise ConfigError("schedule.alphas_cumprod must be a flat list of numbers")
        return DiscreteDDPM(ac)
    return DiscreteDDPM.from_diffusers_config(d)
